"""git on the host runs with hooks and the fsmonitor off: a repository may point both at
files in its work tree, which the agent writes. Real git, a local bare repository as the
session's remote, and markers that prove what ran."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from paude import gitsync, proc
from paude.gitsync import HOST_GIT

HOOK = "#!/bin/sh\necho ran >> {marker}\n"


def git(repo: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr}"
    return result.stdout


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository whose configuration runs work-tree hooks, as many teams set it up, with a
    commit the agent made: .githooks/ holding a pre-push hook and an fsmonitor script."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text("[user]\n\tname = U\n\temail = u@example.invalid\n"
                                     "[init]\n\tdefaultBranch = main\n", encoding="utf-8")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_CONFIG_GLOBAL"):
        monkeypatch.delenv(name, raising=False)
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    hooks = repo / ".githooks"
    hooks.mkdir()
    for name in ("pre-push", "fsmonitor"):
        (hooks / name).write_text(HOOK.format(marker=tmp_path / f"{name}-ran"), encoding="utf-8")
        (hooks / name).chmod(0o755)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "hooks")
    git(repo, "config", "core.hooksPath", ".githooks")
    git(repo, "config", "core.fsmonitor", str(hooks / "fsmonitor"))
    git(tmp_path, "init", "-q", "--bare", "remote.git")
    git(repo, "remote", "add", gitsync.remote_name("demo"), str(tmp_path / "remote.git"))
    return repo


def test_host_git_options() -> None:
    assert HOST_GIT == ("git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
                        "-c", "protocol.ext.allow=never")


def test_exact_argv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    seen: list[list[str]] = []

    def fake_run(argv: list[str], **_: Any) -> proc.CommandResult:
        seen.append(list(argv))
        return proc.CommandResult(tuple(argv), 0, "", "")

    monkeypatch.setattr(proc, "run", fake_run)
    gitsync.require_repo(tmp_path)
    gitsync.push(tmp_path, "demo", "main")
    assert seen == [
        ["git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
         "-c", "protocol.ext.allow=never", "-C", str(tmp_path), "rev-parse", "--git-common-dir"],
        ["git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
         "-c", "protocol.ext.allow=never", "-C", str(tmp_path), "push", "paude-demo",
         "HEAD:refs/heads/main"],
    ]


def test_push_runs_no_hook_from_the_work_tree(repo: Path) -> None:
    marker = repo.parent / "pre-push-ran"
    gitsync.push(repo, "demo", "main")
    assert git(repo.parent / "remote.git", "rev-parse", "main") == git(repo, "rev-parse", "HEAD")
    assert not marker.exists()
    # Control: the user's own `git push` runs the hook.
    (repo / "more").write_text("x")
    git(repo, "add", "more")
    git(repo, "commit", "-qm", "more")
    git(repo, "push", "-q", gitsync.remote_name("demo"), "HEAD:refs/heads/main")
    assert marker.read_text() == "ran\n"


def test_no_fsmonitor_from_the_work_tree(repo: Path) -> None:
    marker = repo.parent / "fsmonitor-ran"
    gitsync._git(repo, "status", "--porcelain")
    assert not marker.exists()
    git(repo, "status", "--porcelain")  # control: plain git runs it
    assert marker.exists()


def test_every_host_git_command_of_gitsync_is_hardened(repo: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    real, argvs = proc.run, []

    def recording(argv: list[str], **kwargs: Any) -> proc.CommandResult:
        argvs.append(list(argv))
        return real(argv, **kwargs)

    monkeypatch.setattr(proc, "run", recording)
    assert gitsync.current_branch(repo) == "main"
    gitsync.add_remote(repo, "other")
    assert ("paude-other", "paude::other") in gitsync.list_remotes(repo)
    gitsync.push(repo, "demo", "main")
    gitsync.remove_remote(repo, "other")
    assert len(argvs) >= 8
    assert all(tuple(a[:len(HOST_GIT)]) == HOST_GIT for a in argvs), argvs
    assert not (repo.parent / "pre-push-ran").exists()
    assert not (repo.parent / "fsmonitor-ran").exists()
