"""`paude status`, `paude rescue` and the delete guard, with the service layer patched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from paude import guard as guard_module
from paude import lifecycle, overview, sessions
from paude.backends.base import RuntimeStatus
from paude.cli import main
from paude.errors import UnfetchedWorkError
from paude.rescue import RescueResult, SavedRef
from paude.work import Paths, RefWork, WorkReport

A = "a" * 40
BUSY = WorkReport(
    git=True,
    refs=(RefWork("refs/heads/main", "branch", A, 2), RefWork("refs/tags/v1", "tag", A, 1),
          RefWork("stash@{0}", "stash", A, 2)),
    changed=Paths(1, ("a.txt",)), untracked=Paths(6, tuple("bcdef")),
    ignored=Paths(1, ("build/",)), files_saved=False)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PAUDE_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def fake_status(monkeypatch: pytest.MonkeyPatch, found: WorkReport | None,
                error: str | None = None) -> None:
    def status(name: str, **_kw: Any) -> overview.SessionStatus:
        branches = {r.name: r.commits for r in found.of_kind("branch")} if found else {}
        return overview.SessionStatus(name, "podman", "running", True, True,
                                       found.commits if found else None, branches, found,
                                       error)

    monkeypatch.setattr(overview, "status", status)


def test_status_lists_each_kind(monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    fake_status(monkeypatch, BUSY)
    assert main(["status", "demo"]) == 0
    assert capsys.readouterr().out == (
        "Session demo (podman): running\n"
        "  agent alive:       yes\n"
        "  proxy alive:       yes\n"
        "  unfetched commits: 2\n"
        "    main: 2  (git pull paude-demo main)\n"
        "  unfetched work:    `paude delete` refuses until it is fetched or rescued\n"
        "    tags: 1 tag\n"
        f"      v1: 1 commit (at {A[:12]})\n"
        "      bring it back: `git fetch paude-demo 'refs/tags/*:refs/tags/*'`\n"
        "    stash: 1 stash entry\n"
        f"      stash@{{0}} (at {A[:12]})\n"
        "      bring it back: `paude rescue demo` (saves them as refs/paude/demo/stash, "
        "stash-1, ...)\n"
        "    uncommitted changes: 1 changed tracked file (a.txt)\n"
        "      bring it back: `paude connect demo` and commit them there, or "
        "`paude rescue demo`\n"
        "    untracked files: 6 untracked paths (b, c, d, e, f, ...)\n"
        "      bring it back: `paude connect demo` and commit them there, or "
        "`paude rescue demo`\n"
        "    ignored files: 1 ignored path (build/): usually build output, so they do not "
        "block a delete and paude rescue does not save them\n")


def test_status_when_the_work_cannot_be_read(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    fake_status(monkeypatch, None, "cannot tell what work session demo holds: garbled")
    assert main(["status", "demo"]) == 0
    out = capsys.readouterr().out
    assert "  unfetched commits: unknown (not running)\n" in out
    assert out.endswith("  unfetched work:    unknown (cannot tell what work session demo "
                        "holds: garbled)\n")


def test_status_json_keeps_the_old_keys_and_adds_work(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake_status(monkeypatch, BUSY)
    assert main(["status", "demo", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert list(data) == ["name", "backend", "state", "agent_alive", "proxy_alive",
                          "unfetched_commits", "unfetched_by_branch", "work", "work_error",
                          "memory", "setup"]
    assert (data["unfetched_commits"], data["unfetched_by_branch"]) == (2, {"main": 2})
    assert data["work"] == {
        "git": True, "blocking": True,
        "refs": [{"ref": "refs/heads/main", "kind": "branch", "commits": 2, "tip": A},
                 {"ref": "refs/tags/v1", "kind": "tag", "commits": 1, "tip": A},
                 {"ref": "stash@{0}", "kind": "stash", "commits": 2, "tip": A}],
        "changed": {"count": 1, "sample": ["a.txt"]},
        "untracked": {"count": 6, "sample": list("bcdef")},
        "ignored": {"count": 1, "sample": ["build/"]},
        "files": {"count": 0, "sample": []}, "embedded": {"count": 0, "sample": []},
        "files_saved": False}


def rescued(remaining: WorkReport) -> RescueResult:
    ns = "refs/paude/demo"
    return RescueResult("demo", Path("/repo"), (
        SavedRef(f"{ns}/heads/main", "branch main"), SavedRef(f"{ns}/HEAD", "HEAD"),
        SavedRef(f"{ns}/worktree", "uncommitted and untracked files (the working tree)")),
        remaining)


def test_rescue_prints_the_refs_and_how_to_look_at_them(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(lifecycle, "rescue", lambda name, **_kw: rescued(WorkReport(git=True)))
    assert main(["rescue", "demo"]) == 0
    assert capsys.readouterr().out == (
        "Saved session demo's work in /repo:\n"
        "  refs/paude/demo/heads/main  branch main\n"
        "  refs/paude/demo/HEAD        HEAD\n"
        "  refs/paude/demo/worktree    uncommitted and untracked files (the working tree)\n"
        "Look at them:\n"
        "  git log --stat refs/paude/demo/worktree\n"
        "  git checkout -b rescued refs/paude/demo/heads/main\n"
        "  git for-each-ref refs/paude/demo/\n"
        "The host has all of session demo's work: `paude delete demo --confirm` no longer "
        "refuses.\n")


def test_rescue_exits_1_when_work_remains(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    left = WorkReport(git=True, embedded=Paths(1, ("vendor/lib",)))
    monkeypatch.setattr(lifecycle, "rescue", lambda name, **_kw: rescued(left))
    assert main(["rescue", "demo"]) == 1
    err = capsys.readouterr().err
    assert "repositories inside the workspace: 1 repository (vendor/lib)" in err
    assert err.endswith("warning: `paude delete` still refuses: bring the rest back as shown, "
                        "or pass --force\n")


def test_rescue_with_nothing_to_save(monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    result = RescueResult("demo", Path("/repo"), (), WorkReport(git=False))
    monkeypatch.setattr(lifecycle, "rescue", lambda name, **_kw: result)
    assert main(["rescue", "demo"]) == 0
    assert capsys.readouterr().out.startswith("Session demo has nothing to save.\n")


# ---------------------------------------------------------------- the guard


class FakeBackend:
    def __init__(self, *, exists: bool = True, running: bool = True,
                 data: bool = False) -> None:
        self.state = RuntimeStatus(exists, running, running, running)
        self.data = data
        self.started = self.stopped = 0

    def status(self, *, session: str) -> RuntimeStatus:
        return self.state

    def data_exists(self, *, session: str) -> bool:
        return self.data

    def start(self, *, session: str) -> None:
        self.started += 1

    def stop(self, *, session: str) -> None:
        self.stopped += 1


def guard(monkeypatch: pytest.MonkeyPatch, backend: FakeBackend, found: WorkReport,
          *, expected: bool = True) -> None:
    monkeypatch.setattr(guard_module, "get_backend", lambda name, session: backend)
    monkeypatch.setattr(guard_module, "report_work", lambda repo, b, name: found)
    sessions.guard_unfetched(Path("/repo"), "podman", "demo", container_expected=expected)


def test_the_guard_starts_a_stopped_agent_and_refuses_each_kind(
        monkeypatch: pytest.MonkeyPatch) -> None:
    backend = FakeBackend(running=False)
    with pytest.raises(UnfetchedWorkError) as exc:
        guard(monkeypatch, backend, BUSY)
    assert backend.started == backend.stopped == 1  # left as it was found
    message = exc.value.render()
    for part in ("  branches: 2 commits on 1 branch\n", "  tags: 1 tag\n",
                 "  stash: 1 stash entry\n", "  uncommitted changes: 1 changed tracked file",
                 "  untracked files: 6 untracked paths", "  ignored files: 1 ignored path",
                 "fix: bring each kind back as shown, or save all of it under "
                 "refs/paude/demo/ with `paude rescue demo`; --force deletes it anyway"):
        assert part in message


@pytest.mark.parametrize("found", [
    WorkReport(git=True),
    WorkReport(git=True, ignored=Paths(3, ("build/",))),
    WorkReport(git=True, changed=Paths(1, ("a.txt",)), files_saved=True),
    WorkReport(git=False, files=Paths(4, ("notes.md",)), files_saved=True),
])
def test_the_guard_lets_saved_work_and_ignored_files_go(
        monkeypatch: pytest.MonkeyPatch, found: WorkReport) -> None:
    guard(monkeypatch, FakeBackend(), found)


def test_the_guard_refuses_unsaved_files_outside_git(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UnfetchedWorkError, match="files outside git: /workspace is not a git "
                                                 "repository; 4 files"):
        guard(monkeypatch, FakeBackend(), WorkReport(git=False, files=Paths(4, ("a",)),
                                                     files_saved=False))


def test_the_guard_without_a_container(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UnfetchedWorkError, match="its agent container is gone"):
        guard(monkeypatch, FakeBackend(exists=False), BUSY)
    guard(monkeypatch, FakeBackend(exists=False), BUSY, expected=False)  # nothing to lose


def test_the_remote_note_only_comes_with_git_commands() -> None:
    from paude.work import describe

    files = WorkReport(git=False, files=Paths(1, ("a",)), files_saved=False)
    assert describe(files, "demo") == (
        "session demo holds work the host does not have:\n"
        "  files outside git: /workspace is not a git repository; 1 file (a)\n"
        "    bring it back: `paude rescue demo`")
    assert describe(BUSY, "demo").endswith(
        "(no remote paude-demo in your repository? `paude remote add demo` adds it)")
