"""The undo of a failed `paude create` removes only what that create made."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from paude import lifecycle, sessions
from paude.definition import CreateFlags
from paude.errors import PolicyViolationError


class FakeBackend:
    """Records what the undo asks of the backend."""

    def __init__(self, data: bool) -> None:
        self.data = data
        self.deleted: list[str] = []

    def data_exists(self, *, session: str) -> bool:
        return self.data

    def delete_data(self, *, session: str) -> list[str]:
        self.deleted.append(session)
        return [f"paude-{session}-workspace"]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    path = tmp_path / "repo"
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "paude.yaml").write_text("version: 1\n")
    return path


def failing_create(repo: Path, monkeypatch: pytest.MonkeyPatch, *, data_before: bool,
                   stack_made: bool, remote_before: bool = False) -> tuple[FakeBackend,
                                                                          list[dict[str, Any]]]:
    backend = FakeBackend(data_before)
    destroyed: list[dict[str, Any]] = []
    monkeypatch.setattr(lifecycle, "_backend_for", lambda session: backend)
    if remote_before:
        subprocess.run(["git", "-C", str(repo), "remote", "add", "paude-demo", "paude::demo"],
                       check=True)

    def apply(name: str, **kwargs: Any) -> None:
        kwargs["receipt"].created_stack = stack_made
        backend.data = True  # whatever happens, a workspace exists now
        raise PolicyViolationError(name, ())

    def destroy(name: str, **kwargs: Any) -> None:
        destroyed.append({"name": name, **kwargs})

    monkeypatch.setattr(sessions, "apply", apply)
    monkeypatch.setattr(sessions, "destroy", destroy)
    with pytest.raises(PolicyViolationError):
        lifecycle.create("demo", CreateFlags(yolo=True), cwd=repo)
    return backend, destroyed


def test_a_kept_workspace_survives_a_refused_create(repo: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    backend, destroyed = failing_create(repo, monkeypatch, data_before=True, stack_made=False)
    assert backend.deleted == []
    assert destroyed == []  # no stack was made, so none is destroyed
    assert (repo / "paude.yaml").read_text() == "version: 1\n"


def test_a_workspace_the_create_made_goes_with_it(repo: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # The control: the same failure with no workspace before removes the one it made.
    backend, destroyed = failing_create(repo, monkeypatch, data_before=False, stack_made=True)
    assert backend.deleted == ["demo"]
    assert len(destroyed) == 1 and destroyed[0]["delete_data"] is False
    assert destroyed[0]["force"] is True


def test_a_stack_made_by_the_create_is_destroyed_keeping_old_data(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend, destroyed = failing_create(repo, monkeypatch, data_before=True, stack_made=True,
                                        remote_before=True)
    assert backend.deleted == []
    assert destroyed[0]["delete_data"] is False
    assert destroyed[0]["keep_remote"] is True


def test_remove_remote_keeps_unmerged_tracking_refs(tmp_path: Path) -> None:
    from paude import gitsync

    def git(repo: Path, *args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c",
                               "user.email=t@t", *args], check=True, capture_output=True,
                              text=True).stdout

    session = tmp_path / "session"
    host = tmp_path / "host"
    for path in (session, host):
        subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    git(host, "commit", "-q", "--allow-empty", "-m", "base")
    git(session, "pull", "-q", str(host), "main")
    git(session, "commit", "-q", "--allow-empty", "-m", "agent work")
    git(host, "remote", "add", "paude-demo", str(session))
    git(host, "fetch", "-q", "paude-demo")
    head = git(host, "rev-parse", "refs/remotes/paude-demo/main").strip()

    assert gitsync.remove_remote(host, "demo")
    assert "paude-demo" not in git(host, "remote").split()
    # Fetched but never merged: the tracking ref is the only thing holding the commit.
    assert git(host, "rev-parse", "refs/remotes/paude-demo/main").strip() == head

    # Control: once merged, the remote goes with its refs as `git remote remove` does.
    git(host, "merge", "-q", "--ff-only", head)
    git(host, "remote", "add", "paude-demo", str(session))
    git(host, "fetch", "-q", "paude-demo")
    assert gitsync.remove_remote(host, "demo")
    assert git(host, "for-each-ref", "refs/remotes/paude-demo/").strip() == ""
