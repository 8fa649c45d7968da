"""No work is lost, end to end: each kind of work the host lacks makes `paude delete` refuse
(naming the kind and the command that brings it back), that command or `paude rescue` brings
it back, and then delete goes through. Real podman, engine, git and git-remote-paude."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.integration.helpers import Paude, podman

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

GITCONFIG = "[user]\n\tname = Test User\n\temail = test@example.invalid\n"


def git(paude: Paude, *args: str) -> str:
    env = paude.env()
    env["PATH"] = f"{paude.exe.parent}{os.pathsep}{env.get('PATH', '')}"  # git-remote-paude
    result = subprocess.run(["git", *args], cwd=paude.repo, env=env, capture_output=True,
                            text=True, check=False, timeout=120)
    assert result.returncode == 0, f"git {' '.join(args)}:\n{result.stderr}"
    return result.stdout


def inside(paude: Paude, script: str) -> str:
    """A shell script in the agent container, in /workspace."""
    result = podman("exec", "-w", "/workspace", f"paude-{paude.session}-agent",
                    "sh", "-ec", script, check=False)
    assert result.returncode == 0, f"in the agent: {script}\n{result.stderr}"
    return result.stdout


def volume_exists(paude: Paude) -> bool:
    name = f"paude-{paude.session}-workspace"
    return podman("volume", "exists", name, check=False).returncode == 0


def refused(paude: Paude, *parts: str) -> str:
    """`paude delete NAME --confirm` refuses, keeps the workspace, and says each part."""
    result = paude.run("delete", paude.session, "--confirm")
    assert result.returncode == 1, result.stdout + result.stderr
    for part in parts:
        assert part in result.stderr, f"{part!r} not in:\n{result.stderr}"
    assert "paude rescue" in result.stderr and "--force" in result.stderr
    assert volume_exists(paude)
    return result.stderr


def blocking(paude: Paude) -> bool:
    work = json.loads(paude.ok("status", paude.session, "--json").stdout)["work"]
    assert isinstance(work, dict), work
    return bool(work["blocking"])


def start_session(paude: Paude) -> str:
    (paude.home.parent / "user-home" / ".gitconfig").write_text(GITCONFIG, encoding="utf-8")
    git(paude, "symbolic-ref", "HEAD", "refs/heads/main")
    (paude.repo / "README.md").write_text("# demo\n", encoding="utf-8")
    git(paude, "add", "README.md", "paude.yaml")
    git(paude, "commit", "-qm", "start")
    paude.ok("apply", paude.session, "--yes")
    return paude.session


def test_each_kind_blocks_delete_until_fetched_or_rescued(paude: Paude) -> None:
    name = start_session(paude)
    remote = f"paude-{name}"
    paude.ok("remote", "add", "--push", name)
    assert not blocking(paude)

    # Ignored files alone never block: they are usually build output.
    inside(paude, "echo build/ > .gitignore && git add .gitignore && git commit -qm ignore")
    git(paude, "pull", "-q", "--ff-only", remote, "main")
    inside(paude, "mkdir build && echo obj > build/out.o")
    assert not blocking(paude)

    # 1. An uncommitted change to a tracked file.
    inside(paude, "echo edited >> README.md")
    refused(paude, "uncommitted changes: 1 changed tracked file (README.md)",
            f"`paude connect {name}` and commit them there, or `paude rescue {name}`")
    inside(paude, "git checkout -- README.md")

    # 2. An untracked file.
    inside(paude, "echo new > 'new file.txt'")
    refused(paude, "untracked files: 1 untracked path (new file.txt)")
    inside(paude, "rm 'new file.txt'")

    # 3. The stash.
    inside(paude, "echo stashed >> README.md && git stash -q")
    refused(paude, "stash: 1 stash entry", f"`paude rescue {name}` (saves them as "
            f"refs/paude/{name}/stash")
    inside(paude, "git stash drop -q")
    assert not blocking(paude)

    # 4. A commit on a detached HEAD, brought back by the command the refusal names.
    inside(paude, "git switch -q --detach && echo d > d.txt && git add d.txt && "
                  "git commit -qm detached")
    command = f"git fetch {remote} +HEAD:refs/paude/{name}/HEAD"
    refused(paude, "detached HEAD: 1 commit on no branch", f"`{command}`")
    git(paude, *command.split()[1:])
    assert not blocking(paude)
    assert git(paude, "show", f"refs/paude/{name}/HEAD:d.txt") == "d\n"
    inside(paude, "git switch -q main")

    # 5. A commit only a tag holds, brought back the same way.
    inside(paude, "git switch -q --detach && echo t > t.txt && git add t.txt && "
                  "git commit -qm tagged && git tag v1 && git switch -q main")
    refused(paude, "tags: 1 tag", "v1: 1 commit",
            f"`git fetch {remote} 'refs/tags/*:refs/tags/*'`")
    git(paude, "fetch", "-q", remote, "refs/tags/*:refs/tags/*")
    assert not blocking(paude)
    assert git(paude, "show", "v1:t.txt") == "t\n"

    # 6. All of it at once, saved by one rescue without changing the agent's files.
    inside(paude, "git switch -q --detach && echo w > w.txt && git add w.txt && "
                  "git commit -qm work && git tag v2 && echo s >> README.md && git stash -q && "
                  "echo changed >> README.md && echo fresh > fresh.txt")
    refused(paude, "tags: 1 tag", "detached HEAD: 1 commit", "stash: 1 stash entry",
            "uncommitted changes: 1 changed", "untracked files: 1 untracked path (fresh.txt)")
    status_before = inside(paude, "git status --porcelain")
    rescued = paude.ok("rescue", name)
    ns = f"refs/paude/{name}"
    assert f"  {ns}/worktree" in rescued.stdout and f"git log --stat {ns}/worktree" in \
        rescued.stdout
    assert "no longer refuses" in rescued.stdout
    assert inside(paude, "git status --porcelain") == status_before
    assert git(paude, "show", f"{ns}/worktree:README.md") == "# demo\nchanged\n"
    assert git(paude, "show", f"{ns}/worktree:fresh.txt") == "fresh\n"
    assert git(paude, "show", f"{ns}/stash:README.md") == "# demo\ns\n"
    assert git(paude, "show", f"{ns}/tags/v2:w.txt") == "w\n"
    assert git(paude, "show", f"{ns}/HEAD:w.txt") == "w\n"
    assert "v2" not in git(paude, "tag").split()  # nothing of the agent's in refs/tags

    # Everything is on the host (the ignored build/ is still there): delete goes through.
    paude.ok("delete", name, "--confirm")
    assert not volume_exists(paude)
    assert git(paude, "show", f"{ns}/worktree:fresh.txt") == "fresh\n"


def test_a_workspace_without_git_blocks_until_rescued(paude: Paude) -> None:
    name = start_session(paude)
    assert not blocking(paude)  # an empty workspace holds nothing
    inside(paude, "mkdir -p notes && echo 'worked without git' > notes/plan.md")
    refused(paude, "files outside git: /workspace is not a git repository; 1 file "
                   "(notes/plan.md)", f"bring it back: `paude rescue {name}`")
    rescued = paude.ok("rescue", name)
    assert f"refs/paude/{name}/worktree" in rescued.stdout
    assert git(paude, "show", f"refs/paude/{name}/worktree:notes/plan.md") == \
        "worked without git\n"
    assert not blocking(paude)
    # The workspace did not become a repository, and the scratch repository is gone.
    assert inside(paude, "ls -A") == "notes\n"
    assert inside(paude, "test ! -e /tmp/paude-rescue.git && echo gone") == "gone\n"

    # A later change is not saved yet; rescue starts a stopped session and stops it again.
    inside(paude, "echo 'second thoughts' >> notes/plan.md")
    refused(paude, "files outside git")
    paude.ok("stop", name)
    paude.ok("rescue", name)
    assert json.loads(paude.ok("list", "--json").stdout)[0]["status"] == "stopped"
    assert git(paude, "show", f"refs/paude/{name}/worktree:notes/plan.md") == \
        "worked without git\nsecond thoughts\n"
    paude.ok("delete", name, "--confirm")  # the guard starts the agent to check
    assert not volume_exists(paude)
