"""A host repository and a stand-in agent container for git tests: a fake `podman` runs
each `podman exec` in a local folder that plays the agent container."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from paude.backends import get_backend
from paude.backends.base import Backend

SESSION = "demo"

# `podman exec [--interactive] [--tty] [--env K=V]... CONTAINER ARGV...`, run with the
# container's folder as /workspace (and rescue.git as the rescue repository) and an
# environment that keeps nothing of the host's.
FAKE_PODMAN = r"""#!/usr/bin/env bash
[ "$1" = exec ] || { echo "fake podman: only exec" >&2; exit 125; }
shift
envs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --interactive|--tty) shift ;;
    --env) envs+=("$2"); shift 2 ;;
    *) break ;;
  esac
done
root="$FAKE_PODMAN_ROOT/$1"
if [ ! -d "$root" ]; then
  echo "Error: no container with name or ID \"$1\" found: no such container" >&2; exit 125
fi
if [ -e "$root/stopped" ]; then
  echo "Error: can only create exec sessions on running containers: container state improper" >&2
  exit 125
fi
shift
printf '%s\n' "${envs[*]} $*" >> "$root/exec.log"
args=()
for a in "$@"; do
  case "$a" in
    /workspace) args+=("$root/workspace") ;;
    /tmp/paude-rescue.git) args+=("$root/rescue.git") ;;
    *) args+=("$a") ;;
  esac
done
cd "$root/workspace" || exit 125
exec env -i PATH="$PATH" HOME="$root/home" GIT_CONFIG_NOSYSTEM=1 "${envs[@]}" "${args[@]}"
"""


@dataclass
class World:
    """A host repository and a fake agent container for SESSION."""

    host: Path
    container: Path  # the folder standing in for the container; workspace/ is /workspace
    backend: Backend

    @property
    def workspace(self) -> Path:
        return self.container / "workspace"

    def exec_log(self) -> list[str]:
        log = self.container / "exec.log"
        return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run git in repo and return its stdout; fail the test on error."""
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                            env={**os.environ, **(env or {})}, check=False)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout


def commit(repo: Path, name: str, text: str = "x", *, env: dict[str, str] | None = None) -> str:
    """Write and commit one file; return the new head."""
    (repo / name).write_text(text, encoding="utf-8")
    git(repo, "add", name, env=env)
    git(repo, "commit", "-qm", f"add {name}", env=env)
    return git(repo, "rev-parse", "HEAD", env=env).strip()


def in_container(world: World, *args: str) -> str:
    """git inside the fake container, with the container's own (empty) global config."""
    return git(world.workspace, *args, env={"HOME": str(world.container / "home")})


def container_commit(world: World, name: str) -> str:
    return commit(world.workspace, name, env={"HOME": str(world.container / "home")})


def make_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    """Build the world for one test (each test module's `world` fixture calls this)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "podman").write_text(FAKE_PODMAN, encoding="utf-8")
    # git_env() puts the interpreter's folder first on PATH: point it at bin_dir, which
    # holds the stand-in podman and a git-remote-paude that runs this checkout's helper.
    python = bin_dir / "python"
    python.symlink_to(sys.executable)
    (bin_dir / "git-remote-paude").write_text(
        f"#!/bin/sh\nexec '{sys.executable}' -c "
        "'import sys; from paude.git_remote import main; sys.exit(main())' \"$@\"\n",
        encoding="utf-8")
    for tool in ("podman", "git-remote-paude"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(python))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PODMAN_ROOT", str(tmp_path / "containers"))
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "paude-home"))
    host_home = tmp_path / "host-home"
    host_home.mkdir()
    (host_home / ".gitconfig").write_text(
        "[user]\n\tname = Host User\n\temail = host@example.invalid\n"
        "[init]\n\tdefaultBranch = main\n", encoding="utf-8")
    monkeypatch.setenv("HOME", str(host_home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_CONFIG_GLOBAL", "GIT_PROTOCOL",
                 "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME",
                 "GIT_COMMITTER_EMAIL", "EMAIL"):
        monkeypatch.delenv(name, raising=False)
    container = tmp_path / "containers" / f"paude-{SESSION}-agent"
    (container / "workspace").mkdir(parents=True)
    (container / "home").mkdir()
    host = tmp_path / "host"
    host.mkdir()
    git(host, "init", "-q", "-b", "main")
    return World(host, container, get_backend("podman"))


def with_files(world: World, *names: str) -> World:
    for name in names:
        commit(world.host, name, f"{name}\n")
    return world
