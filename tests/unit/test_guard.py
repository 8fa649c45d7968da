"""The no-lost-work guard of destroy --delete-data and delete: what it refuses, and that it
leaves the session as it found it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from paude import guard as guard_module
from paude import sessions
from paude.backends.base import RuntimeStatus
from paude.errors import UnfetchedWorkError
from paude.gitsync import BranchLag


class FakeBackend:
    """Containers that exist (or not), a workspace that exists (or not), and a log."""

    def __init__(self, *, exists: bool, running: bool, data: bool) -> None:
        self.exists, self.running, self.data = exists, running, data
        self.calls: list[str] = []

    def status(self, *, session: str) -> RuntimeStatus:
        return RuntimeStatus(self.exists, self.running, self.running, self.running)

    def data_exists(self, *, session: str) -> bool:
        return self.data

    def start(self, *, session: str) -> None:
        self.calls.append("start")
        self.running = True

    def stop(self, *, session: str) -> None:
        self.calls.append("stop")
        self.running = False


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    return tmp_path


class FakeReport:
    """What the work report says, as far as the guard reads it."""

    def __init__(self, lags: list[BranchLag]) -> None:
        self.blocking = bool(lags)


def guard(repo: Path, monkeypatch: pytest.MonkeyPatch, backend: FakeBackend,
          lags: list[BranchLag], *, container_expected: bool = True) -> None:
    monkeypatch.setattr(guard_module, "get_backend", lambda name, session=None: backend)
    monkeypatch.setattr(guard_module, "report_work", lambda repo, backend, name: FakeReport(lags))
    monkeypatch.setattr(guard_module, "describe_work", lambda report, name: "unfetched work")
    sessions.guard_unfetched(repo, "podman", "demo", container_expected=container_expected)


LAG = [BranchLag("main", 2, "a" * 40)]


def test_a_kept_workspace_without_containers_is_not_taken_as_empty(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # After `paude destroy` (no stack, no containers) the kept volume may hold commits the
    # host never fetched: nothing can look into it, so deleting it needs --force.
    backend = FakeBackend(exists=False, running=False, data=True)
    with pytest.raises(UnfetchedWorkError) as refused:
        guard(repo, monkeypatch, backend, LAG, container_expected=False)
    assert "cannot check session demo" in refused.value.message
    assert "paude apply demo" in (refused.value.hint or "")
    assert "--force" in (refused.value.hint or "")


def test_nothing_left_at_all_passes(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The control: no containers and no workspace; there is nothing to lose.
    backend = FakeBackend(exists=False, running=False, data=False)
    guard(repo, monkeypatch, backend, LAG, container_expected=False)
    assert backend.calls == []


def test_a_stopped_session_stays_stopped_when_the_guard_refuses(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = FakeBackend(exists=True, running=False, data=True)
    with pytest.raises(UnfetchedWorkError):
        guard(repo, monkeypatch, backend, LAG)
    assert backend.calls == ["start", "stop"]
    assert backend.running is False


def test_a_stopped_session_stays_stopped_when_the_guard_passes(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = FakeBackend(exists=True, running=False, data=True)
    guard(repo, monkeypatch, backend, [])
    assert backend.calls == ["start", "stop"]


def test_a_running_session_is_left_running(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = FakeBackend(exists=True, running=True, data=True)
    with pytest.raises(UnfetchedWorkError):
        guard(repo, monkeypatch, backend, LAG)
    assert backend.calls == []
    guard(repo, monkeypatch, backend, [])
    assert backend.calls == [] and backend.running
