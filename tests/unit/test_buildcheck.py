"""The repository's Dockerfile and build context are checked before anything is built."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from paude.errors import ConfigError
from paude.models import PaudeFile, resolve
from paude.stacks.podman import buildcheck
from paude.stacks.podman.images import dockerfile_build


def problems(text: str) -> list[tuple[int | None, str]]:
    return [(p.line, p.message) for p in buildcheck.dockerfile_problems(text)]


def test_a_plain_dockerfile_passes() -> None:
    assert problems("FROM debian\nCOPY src/ /src/\nADD vendor.tar /opt/\n"
                    "RUN apt-get update \\\n && apt-get install -y make\n"
                    "COPY --from=builder /out /out\n") == []


@pytest.mark.parametrize(("text", "line", "says"), [
    ("FROM d\nADD https://example.com/x /x\n", 2, "outside the build proxy"),
    ("FROM d\nADD git@example.com:a/b.git /x\n", 2, "outside the build proxy"),
    ("FROM d\n\nRUN --mount=type=bind,source=/,target=/h cat /h/etc/shadow\n", 3, "RUN --mount"),
    ("FROM d\nRUN echo a \\\n  b\nCOPY ../secret /s\n", 4, "without '..'"),
    ("FROM d\nCOPY /etc/passwd /p\n", 2, "relative to it"),
    ("FROM d\nONBUILD ADD http://x.test/a /a\n", 2, "outside the build proxy"),
    ("FROM d\nonbuild run --mount=type=cache,target=/c true\n", 2, "RUN --mount"),
])
def test_refusals_name_the_line(text: str, line: int, says: str) -> None:
    found = problems(text)
    assert len(found) == 1 and found[0][0] == line and says in found[0][1], found


def test_heredoc_bodies_are_not_instructions() -> None:
    text = "FROM d\nRUN <<EOF\nADD http://not.an.instruction/ /x\nEOF\nCOPY a b\n"
    assert problems(text) == []


def session_with_dockerfile(root: Path, dockerfile: str = "Dockerfile",
                            context: str | None = None):  # type: ignore[no-untyped-def]
    image = {"dockerfile": dockerfile, **({"context": context} if context else {})}
    file = PaudeFile.model_validate({"version": 1, "sessions": {"demo": {"image": image}}})
    return resolve(file, "demo")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "docker").mkdir(parents=True)
    (root / "docker" / "Dockerfile").write_text("FROM debian\nCOPY . /src\n")
    (root / "docker" / "app.py").write_text("print(1)\n")
    return root


def test_symlinked_dockerfile_outside_the_repository_is_refused(repo: Path,
                                                                tmp_path: Path) -> None:
    outside = tmp_path / "host-secrets"
    outside.mkdir()
    (outside / "Dockerfile").write_text("FROM debian\n")
    (repo / "Dockerfile").symlink_to(outside / "Dockerfile")
    with pytest.raises(ConfigError) as exc:
        dockerfile_build(session_with_dockerfile(repo), repo)
    assert "outside the repository" in str(exc.value) and "image.dockerfile" in str(exc.value)
    # Control: the real file inside the repository builds.
    assert dockerfile_build(session_with_dockerfile(repo, "docker/Dockerfile"), repo)


def test_symlinked_context_outside_the_repository_is_refused(repo: Path,
                                                             tmp_path: Path) -> None:
    outside = tmp_path / "home"
    outside.mkdir()
    (repo / "ctx").symlink_to(outside)
    with pytest.raises(ConfigError) as exc:
        dockerfile_build(session_with_dockerfile(repo, "docker/Dockerfile", "ctx"), repo)
    assert "image.context" in str(exc.value) and str(outside) in str(exc.value)


def test_a_link_inside_the_context_to_a_host_file_is_refused(repo: Path,
                                                             tmp_path: Path) -> None:
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE\n")
    (repo / "docker" / "key").symlink_to(secret)
    with pytest.raises(ConfigError) as exc:
        dockerfile_build(session_with_dockerfile(repo, "docker/Dockerfile"), repo)
    assert "key -> " in str(exc.value)
    # Listed in .dockerignore, podman never reads it: accepted. And links that stay inside
    # the repository are fine.
    (repo / "docker" / ".dockerignore").write_text("key\n")
    os.symlink("app.py", repo / "docker" / "alias.py")
    assert dockerfile_build(session_with_dockerfile(repo, "docker/Dockerfile"), repo)


def test_dockerfile_refusals_name_the_file(repo: Path) -> None:
    (repo / "docker" / "Dockerfile").write_text("FROM debian\nADD https://x.test/a /a\n")
    with pytest.raises(ConfigError) as exc:
        dockerfile_build(session_with_dockerfile(repo, "docker/Dockerfile"), repo)
    text = str(exc.value)
    assert str(repo / "docker" / "Dockerfile") in text and "2" in text


def test_the_ignore_file_podman_uses_is_the_one_checked(repo: Path, tmp_path: Path) -> None:
    # podman prefers .containerignore to .dockerignore: a link that only .dockerignore
    # leaves out is still in the build, so it is refused.
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE\n")
    (repo / "docker" / "key").symlink_to(secret)
    (repo / "docker" / ".dockerignore").write_text("key\n")
    (repo / "docker" / ".containerignore").write_text("*.log\n")
    spec = session_with_dockerfile(repo, "docker/Dockerfile")
    with pytest.raises(ConfigError) as exc:
        dockerfile_build(spec, repo)
    assert "key -> " in str(exc.value)
    # Control: the file podman reads leaves the link out, and the build is told to read it.
    (repo / "docker" / ".containerignore").write_text("key\n")
    built = dockerfile_build(spec, repo)
    assert built is not None
    assert built.ignore_file == str((repo / "docker" / ".containerignore").resolve())
    # A Dockerfile's own ignore file comes first (podman 4.5 and later read it).
    (repo / "docker" / "Dockerfile.dockerignore").write_text("*.log\n")
    with pytest.raises(ConfigError, match="key -> "):
        dockerfile_build(spec, repo)


def test_an_ignore_file_linked_out_of_the_repository_is_refused(repo: Path,
                                                                tmp_path: Path) -> None:
    (tmp_path / "patterns").write_text("*\n")
    (repo / "docker" / ".containerignore").symlink_to(tmp_path / "patterns")
    with pytest.raises(ConfigError, match="outside the repository"):
        dockerfile_build(session_with_dockerfile(repo, "docker/Dockerfile"), repo)
    # Control: without an ignore file the build names none.
    (repo / "docker" / ".containerignore").unlink()
    built = dockerfile_build(session_with_dockerfile(repo, "docker/Dockerfile"), repo)
    assert built is not None and built.ignore_file is None
