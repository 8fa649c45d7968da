"""Fixtures for integration tests: a freshly installed paude, real podman, the real engine."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.helpers import (
    BASE_IMAGE,
    PROXY_BASE_IMAGE,
    Paude,
    make_home,
    make_repo,
    podman,
    remove_session_objects,
    write_paude_yaml,
)
from tests.integration.node import Node, start_node
from tests.integration.terminal import HostTerminal

REPO = Path(__file__).resolve().parents[2]




@pytest.fixture(scope="session")
def paude_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`paude` from a fresh virtualenv with the repository pip-installed (as a user would)."""
    if os.environ.get("PAUDE_IT_USE_CURRENT") == "1":
        exe = shutil.which("paude")
        assert exe, "PAUDE_IT_USE_CURRENT=1 but no paude on PATH"
        return Path(exe)
    env_dir = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    # A copy of the tree keeps build artefacts out of the checkout.
    src = tmp_path_factory.mktemp("src") / "paude"
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(
        ".git", ".venv", "*.egg-info", "build", "__pycache__", ".mypy_cache", ".pytest_cache"))
    subprocess.run([python, "-m", "pip", "install", "--quiet", str(src)], check=True)
    return env_dir / "bin" / "paude"


@pytest.fixture
def paude(paude_exe: Path, tmp_path: Path) -> Iterator[Paude]:
    """A fresh repository, PAUDE_HOME and unique session name, cleaned up afterwards."""
    if podman("image", "exists", BASE_IMAGE, check=False).returncode != 0:
        pytest.fail(f"base image {BASE_IMAGE} is missing; run scripts/build-base-image.sh")
    if podman("image", "exists", PROXY_BASE_IMAGE, check=False).returncode != 0:
        pytest.fail(f"the proxy's base image {PROXY_BASE_IMAGE} is missing; run "
                    "scripts/build-proxy-base.sh (or unset PAUDE_TEST_PROXY_BASE_IMAGE)")
    home = make_home(tmp_path / "paude-home")
    (tmp_path / "user-home").mkdir()
    session = f"it-{secrets.token_hex(3)}"
    repo = make_repo(tmp_path / "repo")
    write_paude_yaml(repo, session)
    try:
        yield Paude(paude_exe, home, repo, session)
    finally:
        remove_session_objects(session)


@pytest.fixture
def terminal(paude: Paude) -> Iterator[HostTerminal]:
    """A terminal on the host, closed afterwards."""
    term = HostTerminal(paude)
    try:
        yield term
    finally:
        term.close()


@pytest.fixture(scope="session")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """The test cluster with a node, shared by every test that runs pods: a node takes
    about a minute to start, and only one can run on a machine at a time."""
    yield from start_node(tmp_path_factory.mktemp("node"))
