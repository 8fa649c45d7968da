"""The folders a fuzz target reads from: a repository with Dockerfiles and hostile links,
CA files of every kind, and a PAUDE_HOME, all under one temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from paude.errors import PaudeError
from paude.image_sources import IMAGE_SOURCES
from tests.certs import CERT_A
from tests.fuzz.checks import check_renders, run_cluster_program, run_podman_program


@dataclass(frozen=True)
class World:
    """A repository (root) and the paths the generated definitions may name."""

    root: Path
    home: Path
    ca_paths: tuple[str, ...]

    def clean_sources(self) -> None:
        """Remove every image source file a previous example wrote."""
        for source in IMAGE_SOURCES:
            (self.root / source).unlink(missing_ok=True)


# Names the strategies use; they exist (or are missing, or hostile) in every world.
CA_NAMES = ("ca.pem", "key.pem", "missing.pem", "empty.pem")
FIXED_CA_PATHS = ("~nosuchuser-fz/ca.pem", "relative/ca.pem", "/dev/null", "/")


def build_world(base: Path) -> World:
    """Create the repository, home and CA files under `base`."""
    root, home, cas = base / "repo", base / "home", base / "cas"
    for folder in (root / ".git", root / "docker", root / ".devcontainer", home, cas):
        folder.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text("FROM docker.io/library/debian:bookworm-slim\n")
    (root / "docker" / "Dockerfile").write_text("ARG B=x\nFROM $B AS one\nRUN true\n")
    (root / ".devcontainer" / "Dockerfile").write_text("FROM python:3.12\n")
    (root / "loop").symlink_to("loop")
    (root / "outside-link").symlink_to("/etc/hostname")
    (cas / "ca.pem").write_text(CERT_A)
    (cas / "key.pem").write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    (cas / "empty.pem").write_text("")
    return World(root, home, (*(str(cas / n) for n in CA_NAMES), *FIXED_CA_PATHS))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One world per module, with PAUDE_HOME and HOME pointing into it."""
    made = build_world(tmp_path_factory.mktemp("fuzz"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PAUDE_HOME", str(made.home))
        patch.setenv("HOME", str(made.home))
        patch.delenv("PAUDE_STATE_BACKEND", raising=False)
        patch.delenv("KUBECONFIG", raising=False)
        yield made


def check_sessions(world: World, file: object, names: list[str]) -> None:
    """Resolve, render and run both programs for the first few sessions of a definition."""
    from paude.config import session_from
    from paude.models import PaudeFile

    assert isinstance(file, PaudeFile)
    for name in names[:3]:
        try:
            session, _ = session_from(file, world.root, name)
        except PaudeError as exc:
            assert "Traceback" not in exc.render()
            continue
        check_renders(session)
        run_podman_program(session, world.root)
        run_cluster_program(session, world.root)


