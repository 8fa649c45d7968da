"""A session belongs to one repository: every session command run in another refuses, before
anything in the session changes. Podman and the index are faked; the integration test
(test_ownership.py) does the same against real sessions."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from paude import index, inspection, lifecycle, overview, ownership, proc, sessions
from paude.backends.base import RuntimeStatus
from paude.backends.podman import PodmanBackend
from paude.errors import OwnershipError
from paude.proc import CommandResult


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "paude-home"))
    return tmp_path


def git_repo(path: Path, *, paude_yaml: bool = True) -> Path:
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    if paude_yaml:
        (path / "paude.yaml").write_text("version: 1\nsessions:\n  demo: {}\n")
    return path.resolve()


class FakeBackend:
    """Records every operation; `label` is what the live objects say about their owner."""

    name = "podman"

    def __init__(self, label: str | None) -> None:
        self.label = label
        self.calls: list[str] = []

    def owner(self, *, session: str) -> str | None:
        self.owner_reads += 1
        return self.label

    owner_reads = 0

    def __getattr__(self, op: str) -> Callable[..., Any]:
        def record(*args: object, **kwargs: object) -> Any:
            self.calls.append(op)
            if op == "status":  # podman's reads the agent's label with its state
                return RuntimeStatus(True, True, True, True, owner=self.label)
            return []
        return record


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Repository a owns session demo (index and labels); b is another repository."""
    a, b = git_repo(tmp_path / "a"), git_repo(tmp_path / "b")
    index.write("demo", backend="podman", owner=str(a), outputs={})
    backend = FakeBackend(str(a))
    monkeypatch.setattr(lifecycle, "get_backend", lambda *args: backend)
    monkeypatch.setattr(overview, "get_backend", lambda *args: backend)
    monkeypatch.setattr(sessions, "get_backend", lambda *args: backend)
    monkeypatch.setattr(inspection, "get_backend", lambda *args: backend)
    real_run = proc.run

    def host_git_only(argv: Sequence[str], **kwargs: Any) -> CommandResult:
        if argv[0] != "git":  # git on the host repository is fine; podman, pulumi are not
            raise AssertionError(f"ran {list(argv)} before the ownership check")
        return real_run(argv, **kwargs)

    monkeypatch.setattr(proc, "run", host_git_only)
    monkeypatch.setattr(proc, "run_on_pty", host_git_only)
    return {"a": a, "b": b, "backend": backend}


def test_current_repository(tmp_path: Path) -> None:
    a = git_repo(tmp_path / "a")
    (a / "src" / "deep").mkdir(parents=True)
    plain = git_repo(tmp_path / "plain", paude_yaml=False)
    (tmp_path / "outside").mkdir()
    assert ownership.current_repository(a / "src" / "deep") == a
    assert ownership.current_repository(plain) == plain
    # A folder outside any repository has no repository to be confused with.
    assert ownership.current_repository(tmp_path / "outside") is None


def test_refusal_names_the_owner_and_the_fix(tmp_path: Path) -> None:
    a, b = git_repo(tmp_path / "a"), git_repo(tmp_path / "b")
    index.write("demo", backend="podman", owner=str(a), outputs={})
    with pytest.raises(OwnershipError) as exc:
        ownership.require("demo", cwd=b)
    assert exc.value.render() == (
        f"session demo belongs to the repository at {a}, not {b}\n"
        f"  fix: run paude from {a}, or choose another session name here")
    assert exc.value.exit_code == 1
    # Controls: the owner, a folder inside it, outside any repository, an unknown session.
    ownership.require("demo", cwd=a)
    (a / "sub").mkdir()
    ownership.require("demo", cwd=a / "sub")
    (tmp_path / "outside").mkdir()
    ownership.require("demo", cwd=tmp_path / "outside")
    ownership.require("other", cwd=b)


def test_the_live_label_counts_even_when_the_index_agrees(tmp_path: Path) -> None:
    """The labels on the containers are the truth on this machine: an index entry saying
    "mine" (stale, or from another PAUDE_HOME) does not override them."""
    a, b = git_repo(tmp_path / "a"), git_repo(tmp_path / "b")
    index.write("demo", backend="podman", owner=str(b), outputs={})
    with pytest.raises(OwnershipError, match=f"belongs to the repository at {a}, not {b}"):
        ownership.require("demo", cwd=b, backend=FakeBackend(str(a)))  # type: ignore[arg-type]
    ownership.require("demo", cwd=b, backend=FakeBackend(str(b)))  # type: ignore[arg-type]
    ownership.require("demo", cwd=b, backend=FakeBackend(None))  # type: ignore[arg-type]


INSPECT = ("podman", "inspect", "paude-demo-agent", "paude-demo-workspace")


def _agent(label: str | None) -> dict[str, object]:
    """A container as `podman inspect` shows it (the fields owner() reads)."""
    labels = {"paude.repository": label} if label is not None else {}
    return {"Name": "paude-demo-agent", "State": {"Status": "exited"},
            "Config": {"Labels": labels or None}}


def _volume(label: str | None) -> dict[str, object]:
    labels = {"paude.repository": label} if label is not None else {}
    return {"Name": "paude-demo-workspace", "Driver": "local", "Mountpoint": "/v/_data",
            "Labels": labels}


@pytest.mark.parametrize("answer, code, expected", [
    ([_agent("/home/u/a")], 125, "/home/u/a"),
    # Both labelled (a container made again elsewhere, say): the container's counts.
    ([_agent("/home/u/a"), _volume("/home/u/b")], 0, "/home/u/a"),
    # Destroyed, workspace kept: the volume still says whose work it holds.
    ([_volume("/home/u/a")], 125, "/home/u/a"),
    # A container without the label (made before it existed): the volume's counts.
    ([_agent(None), _volume("/home/u/a")], 0, "/home/u/a"),
    # Objects made before the label existed, or nothing at all.
    ([_agent(None), _volume(None)], 0, None),
    ([], 125, None),
    # Another kind of object that took a name (an image, a pod): no label is read from it.
    ([{"Name": "paude-demo-agent", "State": "Running", "Labels": {"paude.repository": "/x"}},
      {"Name": "paude-demo-workspace", "Config": {"Labels": {"paude.repository": "/y"}}}],
     0, None),
    # Podman answered something that is not its JSON.
    ("Error: no such object", 125, None),
])
def test_podman_reads_the_label_in_one_call(monkeypatch: pytest.MonkeyPatch, answer: object,
                                            code: int, expected: str | None) -> None:
    seen: list[tuple[str, ...]] = []

    def run(argv: Sequence[str], **kwargs: object) -> CommandResult:
        seen.append(tuple(argv))
        out = answer if isinstance(answer, str) else json.dumps(answer)
        return CommandResult(tuple(argv), code, out, "")

    monkeypatch.setattr(proc, "run", run)
    assert PodmanBackend().owner(session="demo") == expected
    assert seen == [INSPECT]  # one podman process for both objects


# Every command that touches a session, as its service function is called by the CLI.
COMMANDS: dict[str, Callable[[Path], object]] = {
    "start": lambda cwd: lifecycle.start("demo", cwd=cwd),
    "stop": lambda cwd: lifecycle.stop("demo", cwd=cwd),
    "connect": lambda cwd: lifecycle.attach_argv("demo", cwd=cwd),
    "status": lambda cwd: overview.status("demo", cwd=cwd),
    "status --verify": lambda cwd: lifecycle.verify("demo", cwd=cwd),
    "rescue": lambda cwd: lifecycle.rescue("demo", cwd=cwd),
    "delete": lambda cwd: lifecycle.delete("demo", cwd=cwd),
    "remote add": lambda cwd: lifecycle.remote_add("demo", push=True, cwd=cwd),
    "blocked / log": lambda cwd: inspection.audit("demo", cwd=cwd),
    "plan": lambda cwd: sessions.plan("demo", cwd=cwd),
    "apply": lambda cwd: sessions.apply("demo", cwd=cwd),
    "destroy": lambda cwd: sessions.destroy("demo", cwd=cwd),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_another_repository_is_refused_before_anything_runs(world: dict[str, Any],
                                                            command: str) -> None:
    with pytest.raises(OwnershipError, match=f"belongs to the repository at {world['a']}"):
        COMMANDS[command](world["b"])
    # No start, stop, exec, delete...: status only reads the state that carries the label.
    assert world["backend"].calls == (["status"] if command == "status" else [])


def test_status_checks_the_label_its_own_read_found(world: dict[str, Any]) -> None:
    backend = world["backend"]
    # Stopped: nothing to exec into, so the call ends after the check.
    backend.status = lambda **_kw: RuntimeStatus(True, False, False, False, owner=backend.label)
    overview.status("demo", cwd=world["a"])
    assert backend.owner_reads == 0  # one podman read, not two
    backend.label = str(world["b"])  # the live label now names b, the index a
    with pytest.raises(OwnershipError):
        overview.status("demo", cwd=world["a"])


def test_the_owner_reaches_the_backend(world: dict[str, Any]) -> None:
    """The control: the same calls from the owning repository get past the check."""
    lifecycle.stop("demo", cwd=world["a"])
    lifecycle.attach_argv("demo", cwd=world["a"])
    assert world["backend"].calls == ["stop", "status", "attach_argv"]


def test_create_in_another_repository_leaves_its_paude_yaml_alone(world: dict[str, Any]
                                                                  ) -> None:
    from paude.definition import CreateFlags

    before = (world["b"] / "paude.yaml").read_text()
    with pytest.raises(OwnershipError):
        lifecycle.create("demo", CreateFlags(yolo=True), cwd=world["b"])
    assert (world["b"] / "paude.yaml").read_text() == before
