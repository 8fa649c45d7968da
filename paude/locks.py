"""Who may change a session, and what a crash leaves behind.

Two kinds of lock guard a session. paude's own (PAUDE_HOME/locks/NAME.lock, an flock)
lets one paude process change a session at a time on this machine; the kernel releases it
when the process ends, however it ends, so it never goes stale. The file state backend's
lock (STATE/.pulumi/locks/ORG/PROJECT/STACK/ID.json, written by the engine around every
update) outlives an engine that was killed: such a lock is cleared here when it names this
host and a process that is no longer running.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from paude.errors import SessionBusyError

Notice = Callable[[str], None]

# How long a command waits for another one on the same session before giving up; long
# enough for the tail of an apply, short enough that a forgotten terminal is reported.
DEFAULT_WAIT = 60.0
WAIT_ENV = "PAUDE_LOCK_WAIT"
_POLL = 0.25
_REUSE_SLACK = 30.0
# A lock file this old and still unreadable was abandoned mid-write.
_UNFINISHED_AGE = 10.0

# Locks this process holds: (lock file) -> (descriptor, exclusive). Held until exit.
_held: dict[Path, tuple[int, bool]] = {}


def wait_seconds() -> float:
    """The bounded wait for a busy session: PAUDE_LOCK_WAIT seconds, default 60."""
    raw = os.environ.get(WAIT_ENV, "")
    try:
        return max(0.0, float(raw)) if raw.strip() else DEFAULT_WAIT
    except ValueError:
        return DEFAULT_WAIT


def _busy(name: str, pid: int | None, what: str = "paude") -> SessionBusyError:
    holder = f" (pid {pid})" if pid else ""
    return SessionBusyError(
        f"session {name} is being changed by another {what} process{holder}",
        hint=f"wait for it to finish and run the command again (paude waits up to "
             f"{WAIT_ENV} seconds, default {DEFAULT_WAIT:.0f})")


def hold_session(home: Path, name: str, *, exclusive: bool = True,
                 on_notice: Notice | None = None, wait: float | None = None) -> None:
    """Hold the session's lock until this process exits (plans share it, changes need it
    alone); waits up to `wait` seconds (PAUDE_LOCK_WAIT) for another holder, then raises
    SessionBusyError naming it."""
    path = home / "locks" / f"{name}.lock"
    held = _held.get(path)
    if held is not None and (held[1] or not exclusive):
        return
    if held is None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Not inherited by the engine and its plugins (os.open's default): a killed paude's
        # orphans must not keep the session locked.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    else:
        fd = held[0]  # upgrade a plan's shared hold to an exclusive one
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    deadline = time.monotonic() + (wait_seconds() if wait is None else wait)
    announced = False
    while True:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = _holder(path)
            if time.monotonic() >= deadline:
                # A failed upgrade may have dropped the shared hold too (flock converts by
                # unlocking first): hold nothing rather than believe otherwise.
                _held.pop(path, None)
                os.close(fd)
                raise _busy(name, holder) from None
            if not announced and on_notice is not None:
                on_notice(f"session {name} is being changed by another paude process"
                          f"{f' (pid {holder})' if holder else ''}; waiting up to "
                          f"{max(0.0, deadline - time.monotonic()):.0f}s for it to finish")
            announced = True
            time.sleep(_POLL)
    _held[path] = (fd, exclusive)
    if exclusive:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)


def release_session(home: Path, name: str) -> None:
    """Give the session's lock back before the process ends (long-lived callers, tests)."""
    held = _held.pop(home / "locks" / f"{name}.lock", None)
    if held is not None:
        os.close(held[0])  # closing the descriptor releases the flock


@contextlib.contextmanager
def serialized(home: Path, key: str) -> Iterator[None]:
    """Run a short block alone among paude processes (e.g. writes to one repository's git
    config, which git refuses while another writer holds its lock)."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = home / "locks" / f"{digest}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _holder(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


# ---------------------------------------------------------------- the file backend's locks


@dataclass(frozen=True)
class StateLock:
    """One lock file of the file state backend (the engine's JSON: pid, user, host, time);
    an unreadable one (pid 0) is a write the engine did not finish."""

    path: Path
    pid: int
    username: str
    hostname: str
    timestamp: str
    age: float = 0.0  # seconds since the file was last written


def backend_root(backend_url: str) -> Path | None:
    """The folder of a file:// state backend; None for any other backend."""
    if not backend_url.startswith("file://"):
        return None
    path = backend_url.removeprefix("file://").split("?", 1)[0]
    return Path(path).expanduser() if path else None


def state_locks(backend_url: str, project: str, stack: str) -> list[StateLock]:
    """The stack's lock files in a file backend (project-scoped and legacy layouts). The
    engine counts every file there as a lock, its unfinished temporary files included."""
    root = backend_root(backend_url)
    if root is None:
        return []
    base = root / ".pulumi" / "locks"
    found = []
    for folder in sorted({*base.glob(f"*/{project}/{stack}"), base / stack}):
        for path in sorted(folder.glob("*")):
            if not path.is_file() or path.name.endswith(".attrs"):
                continue
            try:
                age = max(0.0, time.time() - path.stat().st_mtime)
                data = json.loads(path.read_text(encoding="utf-8"))
                found.append(StateLock(path, int(data["pid"]), str(data.get("username", "")),
                                       str(data.get("hostname", "")),
                                       str(data.get("timestamp", "")), age))
            except (ValueError, TypeError, KeyError, AttributeError):
                found.append(StateLock(path, 0, "", "", "", age))
            except OSError:
                continue  # gone meanwhile
    return found


def clear_stale_state_locks(backend_url: str, project: str, stack: str, *,
                            on_notice: Notice | None = None, wait: float | None = None) -> None:
    """Remove the stack's backend locks whose writer is gone (this host, process not
    running) and lock files a writer left unfinished; wait (bounded) for live ones on this
    host, then raise SessionBusyError. Locks of other hosts stay: the engine reports them."""
    deadline = time.monotonic() + (wait_seconds() if wait is None else wait)
    host = socket.gethostname()
    announced = False
    while True:
        live = []
        for lock in state_locks(backend_url, project, stack):
            if lock.pid == 0:
                # Half-written: its writer died mid-write, or is writing this very moment.
                if lock.age < _UNFINISHED_AGE:
                    live.append(lock)
                    continue
                message = f"removed a lock file of session {stack} that was never finished"
            elif lock.hostname != host:
                continue
            elif _running(lock.pid, lock.timestamp):
                live.append(lock)
                continue
            else:
                message = (f"cleared a stale lock on session {stack} left by pid {lock.pid} "
                           "(no longer running)")
            for stale in (lock.path, lock.path.with_name(lock.path.name + ".attrs")):
                stale.unlink(missing_ok=True)
            if on_notice is not None:
                on_notice(message)
        if not live:
            return
        if time.monotonic() >= deadline:
            raise _busy(stack, live[0].pid or None, "paude or pulumi")
        if not announced and on_notice is not None:
            holder = f"pid {live[0].pid}" if live[0].pid else "a process"
            on_notice(f"session {stack}'s state is locked by {holder} on this machine; "
                      f"waiting up to {max(0.0, deadline - time.monotonic()):.0f}s for it to "
                      "finish")
        announced = True
        time.sleep(_POLL)


def repair_state_files(backend_url: str, project: str, stack: str, *,
                       on_notice: Notice | None = None) -> int:
    """Remove what a killed engine left half-written in a file backend: empty or broken
    metadata files (`*.attrs`, which the backend writes in place and then fails to read)
    and its temporary files. Call with no live writer (after clear_stale_state_locks);
    returns how many files went."""
    root = backend_root(backend_url)
    if root is None or state_locks(backend_url, project, stack):
        return 0  # someone holds the stack: what looks unfinished may be in progress
    base = root / ".pulumi"
    debris = []
    for folder, pattern in ((base / "stacks" / project, f"{stack}.json*"),
                            (base / "stacks", f"{stack}.json*"),
                            *((base / kind / project / stack, "*") for kind in ("history",
                                                                               "backups")),
                            *((base / kind / stack, "*") for kind in ("history", "backups"))):
        for path in folder.glob(pattern):
            if path.name.endswith(".tmp") or (path.name.endswith(".attrs")
                                              and not _valid_attrs(path)):
                debris.append(path)
    for path in debris:
        path.unlink(missing_ok=True)
    if debris and on_notice is not None:
        on_notice(f"repaired the state of session {stack}: removed {len(debris)} "
                  f"file{'s' if len(debris) != 1 else ''} a killed engine left half-written")
    return len(debris)


def _valid_attrs(path: Path) -> bool:
    try:
        return isinstance(json.loads(path.read_text(encoding="utf-8")), dict)
    except (OSError, ValueError):
        return False


def _running(pid: int, since: str) -> bool:
    """Whether the process that wrote a lock at `since` still runs. A zombie has ended, and
    a pid that a younger process took over (it started after the lock) names someone else."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    stat = _proc_stat(pid)
    if stat is None:
        return True  # no /proc (macOS): the signal test is all there is
    state, started = stat
    if state in ("Z", "X"):
        return False
    written = _epoch(since)
    # Generous slack: clock adjustments must never make a live writer look like a newcomer.
    return written is None or started is None or started <= written + _REUSE_SLACK


def _proc_stat(pid: int) -> tuple[str, float | None] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = text[text.rfind(")") + 2:].split()
    started = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        boot = next(float(line.split()[1]) for line in
                    Path("/proc/stat").read_text(encoding="utf-8").splitlines()
                    if line.startswith("btime "))
        started = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return (fields[0] if fields else "", started)


def _epoch(timestamp: str) -> float | None:
    try:
        return datetime.fromisoformat(timestamp).timestamp()
    except ValueError:
        return None
