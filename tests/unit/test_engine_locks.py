"""paude.locks: the per-session lock, and the file backend's lock files a crash leaves."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from paude import locks
from paude.errors import SessionBusyError

HOLDER = """
import sys, time
from pathlib import Path
from paude import locks
locks.hold_session(Path(sys.argv[1]), "demo", exclusive=sys.argv[2] == "ex")
print("held", flush=True)
time.sleep(60)
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def hold_elsewhere(home: Path, started: list[subprocess.Popen[str]], *,
                   exclusive: bool = True) -> subprocess.Popen[str]:
    """Another process holding the session's lock."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(home),
                             "ex" if exclusive else "sh"], stdout=subprocess.PIPE, text=True)
    started.append(proc)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture(autouse=True)
def _release(tmp_path: Path) -> Iterator[None]:
    yield
    locks.release_session(tmp_path, "demo")


# ---------------------------------------------------------------- the session lock


def test_a_busy_session_waits_then_names_the_holder(tmp_path: Path,
                                                    holder: list[subprocess.Popen[str]]) -> None:
    other = hold_elsewhere(tmp_path, holder)
    notices: list[str] = []
    began = time.monotonic()
    with pytest.raises(SessionBusyError) as caught:
        locks.hold_session(tmp_path, "demo", on_notice=notices.append, wait=0.6)
    assert time.monotonic() - began >= 0.6
    assert caught.value.message == (f"session demo is being changed by another paude process "
                                    f"(pid {other.pid})")
    assert caught.value.hint is not None and "PAUDE_LOCK_WAIT" in caught.value.hint
    assert notices == [f"session demo is being changed by another paude process "
                       f"(pid {other.pid}); waiting up to 1s for it to finish"]


def test_a_killed_holder_releases_the_session_at_once(
        tmp_path: Path, holder: list[subprocess.Popen[str]]) -> None:
    # The control, and the crash case: SIGKILL leaves nothing to clean up.
    other = hold_elsewhere(tmp_path, holder)
    other.send_signal(signal.SIGKILL)
    other.wait()
    notices: list[str] = []
    locks.hold_session(tmp_path, "demo", on_notice=notices.append, wait=0)
    assert notices == []
    assert (tmp_path / "locks" / "demo.lock").read_text() == f"{os.getpid()}\n"


def test_the_waiting_command_goes_ahead_when_the_holder_finishes(
        tmp_path: Path, holder: list[subprocess.Popen[str]]) -> None:
    other = hold_elsewhere(tmp_path, holder)
    threading.Timer(0.3, other.kill).start()
    notices: list[str] = []
    locks.hold_session(tmp_path, "demo", on_notice=notices.append, wait=10)
    assert len(notices) == 1 and "waiting up to" in notices[0]


def test_plans_share_the_session_and_changes_need_it_alone(
        tmp_path: Path, holder: list[subprocess.Popen[str]]) -> None:
    hold_elsewhere(tmp_path, holder, exclusive=False)
    locks.hold_session(tmp_path, "demo", exclusive=False, wait=0)  # a second plan: fine
    locks.release_session(tmp_path, "demo")
    with pytest.raises(SessionBusyError):
        locks.hold_session(tmp_path, "demo", exclusive=True, wait=0.2)


def test_holding_is_reentrant_and_upgrades(tmp_path: Path) -> None:
    locks.hold_session(tmp_path, "demo", exclusive=False, wait=0)
    locks.hold_session(tmp_path, "demo", exclusive=False, wait=0)
    locks.hold_session(tmp_path, "demo", exclusive=True, wait=0)  # plan, then create
    locks.hold_session(tmp_path, "demo", exclusive=False, wait=0)  # already more than enough
    probe = subprocess.run([sys.executable, "-c", HOLDER.replace("time.sleep(60)", ""),
                            str(tmp_path), "sh"], capture_output=True, text=True,
                           env={**os.environ, "PAUDE_LOCK_WAIT": "0"})
    assert probe.returncode == 1 and "SessionBusyError" in probe.stderr


def test_the_session_lock_is_not_inherited_by_children(tmp_path: Path) -> None:
    # A killed paude's engine and plugins live on for a moment: they must not keep it.
    locks.hold_session(tmp_path, "demo", wait=0)
    fd = locks._held[tmp_path / "locks" / "demo.lock"][0]
    assert not os.get_inheritable(fd)


@pytest.mark.parametrize(("raw", "seconds"), [("", 60.0), ("5", 5.0), ("0.5", 0.5),
                                               ("-3", 0.0), ("soon", 60.0)])
def test_the_wait_comes_from_paude_lock_wait(monkeypatch: pytest.MonkeyPatch, raw: str,
                                             seconds: float) -> None:
    monkeypatch.setenv("PAUDE_LOCK_WAIT", raw)
    assert locks.wait_seconds() == seconds


def test_serialized_blocks_run_one_at_a_time(tmp_path: Path) -> None:
    order: list[str] = []
    inside = threading.Event()

    def first() -> None:
        with locks.serialized(tmp_path, "git-config /repo"):
            inside.set()
            time.sleep(0.3)
            order.append("first done")

    thread = threading.Thread(target=first)
    thread.start()
    inside.wait()
    with locks.serialized(tmp_path, "git-config /repo"):
        order.append("second")
    thread.join()
    assert order == ["first done", "second"]


# ---------------------------------------------------------------- the file backend's locks


def lock_dir(state: Path, stack: str = "demo") -> Path:
    path = state / ".pulumi" / "locks" / "organization" / "paude" / stack
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_lock(state: Path, *, pid: int, host: str | None = None, stack: str = "demo",
               when: datetime | None = None, name: str = "0a1b.json") -> Path:
    path = lock_dir(state, stack) / name
    path.write_text(json.dumps({"pid": pid, "username": "me",
                                "hostname": host or socket.gethostname(),
                                "timestamp": (when or datetime.now(UTC)).isoformat()}))
    (path.parent / f"{name}.attrs").write_text("{}")
    return path


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_lock_left_by_a_dead_process_on_this_host_is_cleared(tmp_path: Path) -> None:
    pid = dead_pid()
    lock = write_lock(tmp_path, pid=pid)
    notices: list[str] = []
    locks.clear_stale_state_locks(f"file://{tmp_path}", "paude", "demo",
                                  on_notice=notices.append, wait=0)
    assert not lock.exists() and not (lock.parent / "0a1b.json.attrs").exists()
    assert notices == [f"cleared a stale lock on session demo left by pid {pid} "
                       "(no longer running)"]


def test_a_live_lock_is_waited_for_and_never_cleared(tmp_path: Path) -> None:
    lock = write_lock(tmp_path, pid=os.getpid())
    notices: list[str] = []
    with pytest.raises(SessionBusyError) as caught:
        locks.clear_stale_state_locks(f"file://{tmp_path}", "paude", "demo",
                                      on_notice=notices.append, wait=0.3)
    assert lock.exists()
    assert caught.value.message == ("session demo is being changed by another paude or pulumi "
                                    f"process (pid {os.getpid()})")
    assert notices == [f"session demo's state is locked by pid {os.getpid()} on this machine; "
                       "waiting up to 0s for it to finish"]


def test_a_live_lock_released_while_waiting_lets_the_command_go_ahead(tmp_path: Path) -> None:
    lock = write_lock(tmp_path, pid=os.getpid())
    threading.Timer(0.3, lock.unlink).start()
    locks.clear_stale_state_locks(f"file://{tmp_path}", "paude", "demo", wait=10)


def test_another_hosts_lock_and_other_stacks_are_left_alone(tmp_path: Path) -> None:
    theirs = write_lock(tmp_path, pid=dead_pid(), host="elsewhere.example")
    other_stack = write_lock(tmp_path, pid=dead_pid(), stack="other")
    locks.clear_stale_state_locks(f"file://{tmp_path}", "paude", "demo", wait=0)
    assert theirs.exists() and other_stack.exists()


def test_only_the_file_backend_is_touched(tmp_path: Path) -> None:
    assert locks.backend_root("s3://bucket/state") is None
    assert locks.backend_root("https://api.pulumi.com") is None
    assert locks.backend_root(f"file://{tmp_path}?no_legacy=1") == tmp_path
    locks.clear_stale_state_locks("s3://bucket/state", "paude", "demo", wait=0)


def test_a_zombie_holds_no_lock(tmp_path: Path) -> None:
    # Where nothing reaps orphans, a dead engine stays a zombie: os.kill still succeeds.
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    lock = write_lock(tmp_path, pid=zombie.pid)
    locks.clear_stale_state_locks(f"file://{tmp_path}", "paude", "demo", wait=0)
    assert not lock.exists()
    zombie.wait()


def test_a_pid_taken_over_by_a_younger_process_holds_no_lock(tmp_path: Path) -> None:
    # This process started long after the lock was written: it is not the lock's writer.
    lock = write_lock(tmp_path, pid=os.getpid(), when=datetime(2000, 1, 1, tzinfo=UTC))
    locks.clear_stale_state_locks(f"file://{tmp_path}", "paude", "demo", wait=0)
    assert not lock.exists()


def test_an_unfinished_lock_file_is_waited_for_then_removed(tmp_path: Path) -> None:
    # The engine counts every file in the folder as a lock, its temporary files included.
    partial = lock_dir(tmp_path) / "0a1b.json.18ed6ae6430e4c8f.tmp"
    partial.write_text('{"pid": 12')
    with pytest.raises(SessionBusyError):
        locks.clear_stale_state_locks(f"file://{tmp_path}", "paude", "demo", wait=0)
    assert partial.exists()
    old = time.time() - 60
    os.utime(partial, (old, old))
    notices: list[str] = []
    locks.clear_stale_state_locks(f"file://{tmp_path}", "paude", "demo",
                                  on_notice=notices.append, wait=0)
    assert not partial.exists()
    assert notices == ["removed a lock file of session demo that was never finished"]


def test_half_written_state_files_are_repaired(tmp_path: Path) -> None:
    stacks = tmp_path / ".pulumi" / "stacks" / "paude"
    history = tmp_path / ".pulumi" / "history" / "paude" / "demo"
    stacks.mkdir(parents=True)
    history.mkdir(parents=True)
    (stacks / "demo.json").write_text('{"version": 3}')
    (stacks / "demo.json.attrs").write_text("")  # killed while writing: the engine fails on it
    (stacks / "demo.json.bak.attrs").write_text('{"md5": "x"}')
    (stacks / "demo.json.18ed6ae6430e4c8f.tmp").write_text("{")
    (stacks / "other.json.attrs").write_text("")  # another session's: not ours to touch
    (history / "demo-1.checkpoint.json.attrs").write_text("{trunc")
    notices: list[str] = []
    removed = locks.repair_state_files(f"file://{tmp_path}", "paude", "demo",
                                       on_notice=notices.append)
    assert removed == 3
    assert sorted(p.name for p in stacks.iterdir()) == [
        "demo.json", "demo.json.bak.attrs", "other.json.attrs"]
    assert list(history.iterdir()) == []
    assert notices == ["repaired the state of session demo: removed 3 files a killed engine "
                       "left half-written"]


def test_nothing_is_repaired_while_someone_holds_the_stack(tmp_path: Path) -> None:
    stacks = tmp_path / ".pulumi" / "stacks" / "paude"
    stacks.mkdir(parents=True)
    (stacks / "demo.json.attrs").write_text("")
    write_lock(tmp_path, pid=os.getpid(), host="elsewhere.example")
    assert locks.repair_state_files(f"file://{tmp_path}", "paude", "demo") == 0
    assert (stacks / "demo.json.attrs").exists()
