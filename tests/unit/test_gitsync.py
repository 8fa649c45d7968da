"""paude.gitsync against real git: the host repository is a temporary one, and a stand-in
`podman` runs each `podman exec` in a local folder that plays the agent container."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from paude import gitsync, locks
from paude.errors import PaudeError, SessionNotFoundError
from paude.gitsync import BranchLag
from tests.unit.gitworld import (
    SESSION,
    World,
    commit,
    container_commit,
    git,
    in_container,
    make_world,
    with_files,
)


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return make_world(tmp_path, monkeypatch)


# ---------------------------------------------------------------- names and environment


def test_remote_name_and_url() -> None:
    assert gitsync.remote_name("demo") == "paude-demo"
    assert gitsync.remote_url("demo") == "paude::demo"


def test_git_env_puts_the_interpreter_folder_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "executable", "/opt/venv/bin/python")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    assert gitsync.git_env() == {"PATH": "/opt/venv/bin:/usr/bin:/bin"}


def test_session_backend_reads_the_index(world: World, tmp_path: Path) -> None:
    assert gitsync.session_backend(SESSION) == "podman"
    index = tmp_path / "paude-home" / "sessions" / f"{SESSION}.json"
    index.parent.mkdir(parents=True)
    record = {"name": SESSION, "backend": "openshift", "owner": "/repo", "applied_at": 0}
    index.write_text(json.dumps(record), encoding="utf-8")
    assert gitsync.session_backend(SESSION) == "openshift"
    index.write_text("{not json", encoding="utf-8")
    assert gitsync.session_backend(SESSION) == "podman"


# ---------------------------------------------------------------- remotes


def test_add_set_url_list_and_remove_remotes(world: World) -> None:
    host = world.host
    git(host, "remote", "add", "origin", "https://example.invalid/repo.git")
    assert gitsync.list_remotes(host) == []
    assert gitsync.add_remote(host, SESSION) is True
    assert gitsync.add_remote(host, SESSION) is False
    assert git(host, "remote", "get-url", "paude-demo").strip() == "paude::demo"
    git(host, "remote", "set-url", "paude-demo", "paude::other")
    assert gitsync.add_remote(host, SESSION) is True
    assert git(host, "remote", "get-url", "paude-demo").strip() == "paude::demo"
    gitsync.add_remote(host, "alpha")
    assert gitsync.list_remotes(host) == [("paude-alpha", "paude::alpha"),
                                          ("paude-demo", "paude::demo")]
    assert gitsync.remove_remote(host, SESSION) is True
    assert gitsync.remove_remote(host, SESSION) is False
    assert gitsync.list_remotes(host) == [("paude-alpha", "paude::alpha")]
    assert git(host, "remote").split() == ["origin", "paude-alpha"]


def test_remote_writes_take_one_lock_per_repository(world: World, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Two paudes writing one repository's config at once make git fail on its lock: they
    take paude's lock first, the same one from a subfolder and a linked worktree."""
    keys: list[str] = []
    serialized = locks.serialized

    def recorded(home: Path, key: str):  # type: ignore[no-untyped-def]
        keys.append(key)
        return serialized(home, key)

    monkeypatch.setattr(locks, "serialized", recorded)
    commit(world.host, "a.txt", "a")
    (world.host / "sub").mkdir()
    git(world.host, "worktree", "add", "-q", str(tmp_path / "wt"), "-b", "other")
    gitsync.add_remote(world.host, SESSION)
    gitsync.add_remote(world.host / "sub", "beta")
    gitsync.remove_remote(tmp_path / "wt", SESSION)
    assert len(keys) == 3 and len(set(keys)) == 1, keys
    assert git(world.host, "remote").split() == ["paude-beta"]  # the worktree's config is shared
    # Control: another repository takes another lock.
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    gitsync.add_remote(other, SESSION)
    assert len(set(keys)) == 2


@pytest.mark.parametrize("call", [
    lambda repo: gitsync.add_remote(repo, SESSION),
    lambda repo: gitsync.remove_remote(repo, SESSION),
    gitsync.list_remotes,
    gitsync.current_branch,
])
def test_outside_a_repository_is_an_error_with_a_fix(tmp_path: Path, call: object) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert callable(call)
    with pytest.raises(PaudeError) as exc:
        call(plain)
    assert exc.value.message == f"not a git repository: {plain}"
    assert exc.value.hint is not None and "git init" in exc.value.hint
    assert list(plain.iterdir()) == []


def test_current_branch(world: World) -> None:
    with pytest.raises(PaudeError) as exc:
        gitsync.current_branch(world.host)
    assert exc.value.message == f"branch main in {world.host} has no commits yet"
    assert exc.value.hint is not None and "git commit" in exc.value.hint
    commit(world.host, "a.txt")
    git(world.host, "switch", "-qc", "feature")
    assert gitsync.current_branch(world.host) == "feature"
    git(world.host, "switch", "-q", "--detach")
    with pytest.raises(PaudeError, match="HEAD is detached"):
        gitsync.current_branch(world.host)


# ---------------------------------------------------------------- the workspace


def test_init_workspace_makes_a_pushable_repository_with_an_identity(world: World) -> None:
    gitsync.init_workspace(world.backend, SESSION, "trunk")
    assert in_container(world, "symbolic-ref", "HEAD").strip() == "refs/heads/trunk"
    assert in_container(world, "config", "receive.denyCurrentBranch").strip() == "updateInstead"
    assert in_container(world, "config", "user.email").strip() == "agent@paude.invalid"
    assert in_container(world, "config", "user.name").strip() == "paude agent"
    logged = "\n".join(world.exec_log())
    assert logged.startswith(" sh -c ")
    assert logged.endswith(" sh /workspace trunk paude agent agent@paude.invalid")


def test_init_workspace_keeps_an_existing_repository_and_identity(world: World) -> None:
    (world.container / "home" / ".gitconfig").write_text(
        "[user]\n\tname = Agent\n\temail = agent@example.invalid\n", encoding="utf-8")
    git(world.workspace, "init", "-q", "-b", "work")
    head = container_commit(world, "agent.txt")
    gitsync.init_workspace(world.backend, SESSION, "main")
    assert in_container(world, "symbolic-ref", "--short", "HEAD").strip() == "work"
    assert in_container(world, "rev-parse", "HEAD").strip() == head
    assert not (world.workspace / ".git" / "config").read_text().count("[user]")


def test_missing_or_stopped_container(world: World) -> None:
    with pytest.raises(SessionNotFoundError):
        gitsync.init_workspace(world.backend, "other", "main")
    (world.container / "stopped").touch()
    for call in (lambda: gitsync.init_workspace(world.backend, SESSION, "main"),
                 lambda: gitsync.unfetched(world.host, world.backend, SESSION)):
        with pytest.raises(PaudeError, match="agent container of session demo is not running"):
            call()


# ---------------------------------------------------------------- push, fetch, unfetched


def test_remote_add_with_push_fills_the_work_tree(world: World) -> None:
    with_files(world, "a.txt", "b.txt", "c.txt")
    result = gitsync.remote_add(world.host, SESSION, push=True, backend=world.backend)
    assert result == gitsync.RemoteAddResult("paude-demo", "paude::demo", "main", True, True)
    assert sorted(p.name for p in world.workspace.iterdir()) == [".git", "a.txt", "b.txt",
                                                                 "c.txt"]
    assert (world.workspace / "b.txt").read_text() == "b.txt\n"
    assert in_container(world, "status", "--porcelain") == ""
    # The helper connected with the exact exec argv (logged by the stand-in podman).
    assert " git-receive-pack /workspace" in world.exec_log()


def test_remote_add_without_push_on_an_unborn_branch(world: World) -> None:
    result = gitsync.remote_add(world.host, SESSION, push=False, backend=world.backend)
    assert (result.branch, result.pushed) == ("main", False)
    assert in_container(world, "symbolic-ref", "HEAD").strip() == "refs/heads/main"
    assert gitsync.list_remotes(world.host) == [("paude-demo", "paude::demo")]


def test_remote_add_outside_a_repository_touches_nothing(world: World, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(PaudeError, match="not a git repository"):
        gitsync.remote_add(plain, SESSION, push=True, backend=world.backend)
    assert world.exec_log() == []
    assert list(world.workspace.iterdir()) == []


def test_push_refused_when_the_agent_has_uncommitted_changes(world: World) -> None:
    with_files(world, "a.txt")
    gitsync.remote_add(world.host, SESSION, push=True, backend=world.backend)
    (world.workspace / "a.txt").write_text("agent edit\n", encoding="utf-8")
    commit(world.host, "a.txt", "host edit\n")
    with pytest.raises(PaudeError) as exc:
        gitsync.push(world.host, SESSION, "main")
    assert exc.value.hint is not None and "has not committed" in exc.value.hint
    assert (world.workspace / "a.txt").read_text() == "agent edit\n"


def test_push_rejected_when_the_session_has_commits_the_host_lacks(world: World) -> None:
    with_files(world, "a.txt")
    gitsync.remote_add(world.host, SESSION, push=True, backend=world.backend)
    container_commit(world, "agent.txt")
    commit(world.host, "b.txt")
    with pytest.raises(PaudeError) as exc:
        gitsync.push(world.host, SESSION, "main")
    assert exc.value.hint == ("the session has commits you have not pulled: "
                              "`git pull paude-demo main` first")


def test_unfetched_counts_commits_per_branch(world: World) -> None:
    with_files(world, "a.txt", "b.txt")
    gitsync.remote_add(world.host, SESSION, push=True, backend=world.backend)
    backend, host = world.backend, world.host
    assert gitsync.unfetched(host, backend, SESSION) == []

    heads = [container_commit(world, f"agent{i}.txt") for i in range(3)]
    assert gitsync.unfetched(host, backend, SESSION) == [BranchLag("main", 3, heads[-1])]

    in_container(world, "switch", "-qc", "idea")
    idea = container_commit(world, "idea.txt")
    assert gitsync.unfetched(host, backend, SESSION) == [
        BranchLag("idea", 4, idea), BranchLag("main", 3, heads[-1])]

    git(host, "fetch", "-q", "paude-demo", env=gitsync.git_env())
    assert gitsync.unfetched(host, backend, SESSION) == []
    # After a fetch the remote-tracking heads are known, so only new work counts.
    second = container_commit(world, "idea2.txt")
    assert gitsync.unfetched(host, backend, SESSION) == [BranchLag("idea", 1, second)]

    git(host, "pull", "-q", "--ff-only", "paude-demo", "idea", env=gitsync.git_env())
    assert (host / "idea2.txt").exists()
    assert gitsync.unfetched(host, backend, SESSION) == []


def test_unfetched_uses_host_branches_the_container_also_has(world: World) -> None:
    with_files(world, "a.txt")
    gitsync.remote_add(world.host, SESSION, push=True, backend=world.backend)
    git(world.host, "remote", "remove", "paude-demo")  # no remote-tracking refs at all
    git(world.host, "branch", "pushed")  # a local head the container has
    commit(world.host, "host-only.txt")  # a local head the container lacks: must be skipped
    head = container_commit(world, "agent.txt")
    assert gitsync.unfetched(world.host, world.backend, SESSION) == [BranchLag("main", 1, head)]


def test_unfetched_is_empty_for_an_empty_or_missing_repository(world: World) -> None:
    assert gitsync.unfetched(world.host, world.backend, SESSION) == []  # not a repository
    git(world.workspace, "init", "-q")
    assert gitsync.unfetched(world.host, world.backend, SESSION) == []  # no commits


def test_unfetched_when_the_host_is_not_a_repository(world: World, tmp_path: Path) -> None:
    gitsync.init_workspace(world.backend, SESSION, "main")
    head = container_commit(world, "a.txt")
    container_commit(world, "b.txt")
    last = in_container(world, "rev-parse", "HEAD").strip()
    assert head != last
    plain = tmp_path / "plain"
    plain.mkdir()
    assert gitsync.unfetched(plain, world.backend, SESSION) == [BranchLag("main", 2, last)]


# ---------------------------------------------------------------- the CLI


@pytest.fixture
def cli(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """`paude remote` on the real app (registered here if the app does not have it yet)."""
    from paude.cli import app, remote

    monkeypatch.setattr(app, "registered_groups", list(app.registered_groups))
    if not any(group.name == "remote" for group in app.registered_groups):
        remote.register(app)
    monkeypatch.delenv("PAUDE_DEBUG", raising=False)
    monkeypatch.chdir(world.host)
    return world


def test_cli_add_list_remove(cli: World, capsys: pytest.CaptureFixture[str]) -> None:
    from paude.cli import main

    with_files(cli, "a.txt")
    assert main(["remote", "add", "--push", SESSION]) == 0
    assert capsys.readouterr().out == ("remote paude-demo (paude::demo) added\n"
                                       "pushed main to session demo\n")
    assert (cli.workspace / "a.txt").exists()
    assert main(["remote", "add", SESSION]) == 0
    captured = capsys.readouterr()
    assert captured.out == "remote paude-demo (paude::demo) already present\n"
    assert captured.err == "push your work with `git push paude-demo main`\n"
    gitsync.add_remote(cli.host, "alpha-two")
    assert main(["remote", "list"]) == 0
    assert capsys.readouterr().out == ("paude-alpha-two  paude::alpha-two\n"
                                       "paude-demo       paude::demo\n")
    assert main(["remote", "remove", SESSION]) == 0
    assert capsys.readouterr().out == "remote paude-demo removed\n"
    assert main(["remote", "remove", SESSION]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ("error: no remote paude-demo in this repository\n"
                            "  fix: `paude remote list` shows the paude remotes here\n")


def test_cli_list_without_remotes(cli: World, capsys: pytest.CaptureFixture[str]) -> None:
    from paude.cli import main

    assert main(["remote", "list"]) == 0
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == (
        "", "no paude remotes here; `paude remote add NAME` adds one\n")


def test_cli_add_outside_a_repository_exits_1(cli: World, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from paude.cli import main

    plain = tmp_path / "plain"
    plain.mkdir()
    monkeypatch.chdir(plain)
    assert main(["remote", "add", "--push", SESSION]) == 1
    assert capsys.readouterr().err.startswith(f"error: not a git repository: {plain}\n  fix: ")
    assert cli.exec_log() == []


def test_cli_add_for_a_session_without_container(cli: World,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from paude.cli import main

    with_files(cli, "a.txt")
    assert main(["remote", "add", "other"]) == 1
    assert "error: container not found" in capsys.readouterr().err
    assert gitsync.list_remotes(cli.host) == []


def test_cli_rejects_bad_names(cli: World, capsys: pytest.CaptureFixture[str]) -> None:
    from paude.cli import main

    assert main(["remote", "add", "--", "-rf"]) == 1
    assert "invalid session name '-rf'" in capsys.readouterr().err
    assert cli.exec_log() == []
