"""Git sync end to end: `paude remote add --push`, an agent commit, `git pull` on the host,
through git-remote-paude and a real session container."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from paude import gitsync
from paude.backends import get_backend
from paude.gitsync import BranchLag
from tests.integration.helpers import Paude, podman

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

FILES = {"README.md": "# demo\n", "src/app.py": "print('hello')\n", "docs/notes.txt": "notes\n"}
GITCONFIG = "[user]\n\tname = Test User\n\temail = test@example.invalid\n"


def host_env(paude: Paude) -> dict[str, str]:
    """The test user's environment, with git-remote-paude (beside paude) on PATH."""
    env = paude.env()
    env["PATH"] = f"{paude.exe.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def git(paude: Paude, *args: str, cwd: Path | None = None) -> str:
    result = subprocess.run(["git", *args], cwd=cwd or paude.repo, env=host_env(paude),
                            capture_output=True, text=True, check=False, timeout=120)
    assert result.returncode == 0, f"git {' '.join(args)}:\n{result.stderr}"
    return result.stdout


def global_config(paude: Paude) -> str:
    return git(paude, "config", "--global", "--list")


def in_agent(paude: Paude, script: str) -> str:
    result = podman("exec", f"paude-{paude.session}-agent", "sh", "-c", script, check=False)
    assert result.returncode == 0, f"in the agent: {script}\n{result.stderr}"
    return result.stdout


def test_push_agent_commit_and_pull_back(paude: Paude) -> None:
    name, repo = paude.session, paude.repo
    gitconfig = paude.home.parent / "user-home" / ".gitconfig"
    gitconfig.write_text(GITCONFIG, encoding="utf-8")
    git(paude, "symbolic-ref", "HEAD", "refs/heads/main")
    for path, text in FILES.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text, encoding="utf-8")
    git(paude, "add", *FILES)
    git(paude, "commit", "-qm", "three files")
    config_before = global_config(paude)

    paude.ok("apply", name, "--yes")
    # apply records the stack's remote in the owning repository; `remote add` prepares the
    # workspace and pushes.
    assert git(paude, "remote", "get-url", f"paude-{name}").strip() == f"paude::{name}"
    added = paude.ok("remote", "add", "--push", name)
    assert added.stdout == (f"remote paude-{name} (paude::{name}) already present\n"
                            f"pushed main to session {name}\n")

    # The push updated the container's checked-out work tree, not just its refs.
    for path, text in FILES.items():
        assert in_agent(paude, f"cat /workspace/{path}") == text
    assert in_agent(paude, "git -C /workspace status --porcelain") == ""

    in_agent(paude, "cd /workspace && echo x > agent.txt && git add . && git commit -qm agent")
    agent_head = in_agent(paude, "git -C /workspace rev-parse HEAD").strip()
    backend = get_backend("podman")
    assert gitsync.unfetched(repo, backend, name) == [BranchLag("main", 1, agent_head)]

    git(paude, "pull", "--ff-only", "-q", f"paude-{name}", "main")
    assert (repo / "agent.txt").read_text(encoding="utf-8") == "x\n"
    assert git(paude, "rev-parse", "HEAD").strip() == agent_head
    assert gitsync.unfetched(repo, backend, name) == []

    listed = paude.ok("remote", "list")
    assert listed.stdout == f"paude-{name}  paude::{name}\n"
    assert paude.ok("remote", "remove", name).stdout == f"remote paude-{name} removed\n"
    assert paude.ok("remote", "list").stdout == ""
    assert f"paude-{name}" not in git(paude, "remote").split()

    # No dangerous transport was enabled anywhere, and the user's config is untouched.
    assert global_config(paude) == config_before
    assert "protocol." not in git(paude, "config", "--list")


def test_remote_add_outside_a_repository_changes_nothing(paude: Paude, tmp_path: Path) -> None:
    plain = tmp_path / "not-a-repo"
    plain.mkdir()
    result = paude.run("remote", "add", "--push", paude.session, cwd=plain)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: not a git repository: {plain}\n  fix: ")
    assert list(plain.iterdir()) == []
    assert not (paude.home.parent / "user-home" / ".gitconfig").exists()
    label = f"label=paude.session={paude.session}"
    assert podman("ps", "-a", "-q", "--filter", label).stdout == ""
