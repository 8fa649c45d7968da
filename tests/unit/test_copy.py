"""`paude cp`: how SRC and DEST are read, and how a stream from the session is unpacked
(crafted archives refused whole, plain ones land in place)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from paude import copy, proc
from paude.backends.base import Backend
from paude.backends.kubernetes import KubernetesBackend
from paude.backends.podman import PodmanBackend
from paude.errors import ConfigError, PaudeError, UsageError


@pytest.mark.parametrize("spec, expected", [
    ("demo:src/a.py", copy.Endpoint("src/a.py", remote=True, session="demo")),
    (":a.py", copy.Endpoint("a.py", remote=True)),
    (":/etc/hosts", copy.Endpoint("/etc/hosts", remote=True)),
    ("demo:.", copy.Endpoint(".", remote=True, session="demo")),
    ("notes.md", copy.Endpoint("notes.md")),
    ("./a:b", copy.Endpoint("./a:b")),
    ("/tmp/x:y", copy.Endpoint("/tmp/x:y")),
])
def test_parse(spec: str, expected: copy.Endpoint) -> None:
    assert copy.parse(spec) == expected


@pytest.mark.parametrize("spec, error", [
    ("", UsageError), ("demo:", UsageError), (":", UsageError), ("Bad_Name:x", ConfigError),
    ("-rf:x", ConfigError),
])
def test_parse_refuses(spec: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        copy.parse(spec)


def test_paths_in_the_session_are_under_the_workspace_unless_absolute() -> None:
    assert copy.container_path("docs/a.md") == "/workspace/docs/a.md"
    assert copy.container_path(".") == "/workspace"
    assert copy.container_path("/tmp/x") == "/tmp/x"
    assert copy.container_path("../etc") == "/etc"  # the container's own file system


def archive(*members: tuple[str, str | None, bytes]) -> bytes:
    """(name, link target or None, data); a name ending in / is a folder."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, link, data in members:
            info = tarfile.TarInfo(name.rstrip("/"))
            if name.endswith("/"):
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def test_a_plain_folder_lands_in_place(tmp_path: Path) -> None:
    stream = archive(("out/", None, b""), ("out/a.txt", None, b"a"),
                     ("out/link", "a.txt", b""))
    assert copy._unpack(stream, tmp_path, "out", tmp_path / "renamed", "demo") == (1, 1)
    assert (tmp_path / "renamed" / "link").read_text() == "a"
    assert [p.name for p in tmp_path.iterdir()] == ["renamed"]


@pytest.mark.parametrize("members, says", [
    ([("out/", None, b""), ("out/../../escaped", None, b"x")], "outside the destination"),
    ([("out", "/etc", b"")], "link to an absolute path"),
    ([("out/", None, b""), ("out/hop", "../..", b""), ("out/hop/x", None, b"x")],
     "outside the destination"),
    ([("out/", None, b""), ("elsewhere", None, b"x")], "outside out"),
    ([("/abs", None, b"x")], "outside out"),
    # Inside the private folder, but not inside the copy once moved beside the user's files.
    ([("out", ".bashrc", b"")], "out -> .bashrc leads outside what was copied"),
    ([("out/", None, b""), ("out/q", ".", b""), ("out/p", "q/..", b"")],
     "out/p -> q/.. leads outside what was copied"),
])
def test_crafted_streams_are_refused_whole(tmp_path: Path, members: list[tuple[str, str | None,
                                                                                bytes]],
                                           says: str) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(PaudeError, match=says) as caught:
        copy._unpack(archive(*members), dest, "out", dest / "out", "demo")
    assert "nothing was copied" in caught.value.message
    assert list(dest.iterdir()) == [] and not (tmp_path / "escaped").exists()


def test_dest_through_a_link_in_the_repository_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "real").mkdir()
    (repo / "docs").symlink_to(tmp_path)
    copy._refuse_links(Path("real/x.txt"), repo)  # control
    copy._refuse_links(tmp_path / "outside.txt", repo)  # outside the repository: the user's
    for dest in ("docs", "docs/x.txt", str(repo / "docs" / "deeper" / "x")):
        with pytest.raises(PaudeError, match="is a symbolic link"):
            copy._refuse_links(Path(dest), repo)


def test_dest_given_through_a_linked_path_to_the_repository_is_still_checked(
        tmp_path: Path) -> None:
    repo = tmp_path / "data" / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "docs").symlink_to(tmp_path)
    (tmp_path / "src").symlink_to(tmp_path / "data")  # ~/src -> /data: the user's own link
    logical = tmp_path / "src" / "repo"
    copy._refuse_links(logical / "x.txt", repo)  # control: a real place in the repository
    with pytest.raises(PaudeError, match="is a symbolic link"):
        copy._refuse_links(logical / "docs" / "x.txt", repo)


def test_src_through_a_linked_folder_in_the_repository_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    home = tmp_path / "home"
    home.mkdir()
    (home / "credentials").write_text("secret\n")
    (repo / "config").symlink_to(home)  # committed by the agent
    (repo / "real").mkdir()
    (repo / "real" / "notes.md").write_text("notes\n")
    # Controls: a real file, and a link named as SRC itself (it goes in as a link).
    copy._refuse_links(Path("real/notes.md"), repo, itself=False, role="read")
    copy._refuse_links(Path("config"), repo, itself=False, role="read")
    with pytest.raises(PaudeError, match="does not read through links") as caught:
        copy._refuse_links(Path("config/credentials"), repo, itself=False, role="read")
    assert "config" in caught.value.message and caught.value.hint


@pytest.mark.parametrize("backend, prefix", [
    (PodmanBackend(), ["podman", "exec", "--interactive", "paude-demo-agent"]),
    (KubernetesBackend(context="prod", namespace="team", tool="kubectl"),
     ["kubectl", "--context", "prod", "--namespace", "team", "exec", "--stdin",
      "paude-demo-agent-0", "-c", "agent", "--"]),
])
def test_both_directions_are_tar_through_the_backends_exec(
        backend: Backend, prefix: list[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[tuple[str, ...], bytes]] = []

    def run_bytes(argv: list[str], *, input: bytes = b"", **_: object) -> bytes:
        sent.append((tuple(argv), input))
        if argv[-2:] == ["--", "out.txt"]:
            return archive(("out.txt", None, b"from the agent\n"))
        return b""

    monkeypatch.setattr(proc, "run_bytes", run_bytes)
    monkeypatch.setattr(proc, "run", lambda argv, **_: proc.CommandResult(
        tuple(argv), 0, "new\n", ""))
    (tmp_path / "in.txt").write_text("from the host\n")
    copied = copy._copy_in(backend, "demo", tmp_path / "in.txt", "/workspace/docs/in.txt",
                           force=False)
    assert copied.target == "/workspace/docs/in.txt"
    argv, stream = sent[-1]
    assert list(argv) == [*prefix, "tar", "-x", "--no-same-owner", "-f", "-", "-C",
                          "/workspace/docs"]
    with tarfile.open(fileobj=io.BytesIO(stream)) as tar:
        assert tar.getnames() == ["in.txt"]
        member = tar.extractfile("in.txt")
        assert member is not None and member.read() == b"from the host\n"

    out = copy._copy_out(backend, "demo", "/workspace/out.txt", str(tmp_path), force=False,
                         cwd=tmp_path)
    out_prefix = [a for a in prefix if a not in ("--interactive", "--stdin")]
    assert list(sent[-1][0]) == [*out_prefix, "tar", "-c", "-f", "-", "-C", "/workspace",
                                 "--", "out.txt"]
    assert Path(out.target).read_text() == "from the agent\n"


def test_a_dest_ending_in_a_slash_must_be_a_folder(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    probed: list[str] = []

    def run(argv: list[str], **_: object) -> proc.CommandResult:
        probed.append(argv[-2])
        # The session has /workspace but no /workspace/notes.
        return proc.CommandResult(tuple(argv), 0, "new\n", "")

    monkeypatch.setattr(proc, "run", run)
    monkeypatch.setattr(proc, "run_bytes", lambda *_a, **_k: pytest.fail("nothing is copied"))
    (tmp_path / "in.txt").write_text("x")
    with pytest.raises(PaudeError, match="demo:/workspace/notes is not a folder"):
        copy._copy_in(PodmanBackend(), "demo", tmp_path / "in.txt", "/workspace/notes",
                      force=False, into=True)
    with pytest.raises(PaudeError, match="newdir/ is not a folder on the host"):
        copy._copy_out(PodmanBackend(), "demo", "/workspace/out.txt",
                       str(tmp_path / "newdir") + "/", force=False, cwd=tmp_path, into=True)
    assert not (tmp_path / "newdir").exists()
