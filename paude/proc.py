"""The only place paude starts subprocesses: argv lists in, typed results out."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import termios
import tty
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import NoReturn, Protocol

from paude.errors import CommandFailedError, PaudeError, SessionNotFoundError, ToolNotFoundError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CommandResult:
    """What a finished command returned."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.returncode == 0


# stderr patterns that mean something a user can act on; checked in order.
_ERROR_PATTERNS: list[tuple[re.Pattern[str], Callable[[CommandResult], PaudeError]]] = [
    (
        re.compile(r"no such container|no container with name or ID", re.I),
        lambda r: SessionNotFoundError(
            f"container not found: {r.stderr.strip().splitlines()[-1] if r.stderr else ''}",
            hint="run `paude apply NAME` to (re)create the session's containers",
        ),
    ),
    (
        re.compile(r"cgroups in hybrid mode not supported", re.I),
        lambda r: CommandFailedError(
            r.argv, r.returncode, r.stderr,
            hint='crun cannot run here; install runc and set runtime = "runc" under [engine] '
            "in /etc/containers/containers.conf",
        ),
    ),
    (
        re.compile(r"setrlimit `?RLIMIT_(NOFILE|NPROC)", re.I),
        lambda r: CommandFailedError(
            r.argv, r.returncode, r.stderr,
            hint='lower podman\'s default limits: default_ulimits = ["nofile=1024:1024", '
            '"nproc=1000:1000"] under [containers] in /etc/containers/containers.conf',
        ),
    ),
]


def classify_failure(result: CommandResult) -> PaudeError:
    """Map a failed command to the most specific paude error for its stderr."""
    for pattern, factory in _ERROR_PATTERNS:
        if pattern.search(result.stderr):
            return factory(result)
    return CommandFailedError(result.argv, result.returncode, result.stderr)


def _unrunnable(tool: str, exc: OSError) -> ToolNotFoundError:
    if isinstance(exc, PermissionError):
        return ToolNotFoundError(f"{tool} is not executable: {exc.strerror}",
                                 hint=f"check the permissions of {tool}")
    return ToolNotFoundError(
        f"{tool} is not installed or not on PATH",
        hint=f"install {tool} and make sure it is on PATH; `paude doctor` checks everything")


def which(tool: str) -> str | None:
    """Locate an executable on PATH."""
    return shutil.which(tool)


def run(
    argv: Sequence[str],
    *,
    cwd: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    input: str | None = None,
    timeout: float | None = None,
    log_output: bool = True,
    inherit_env: bool = True,
    finish_alone: bool = False,
) -> CommandResult:
    """Run argv to completion and capture its output; raise a typed error on failure.

    `log_output=False` keeps stdout out of the debug log (e.g. `podman inspect`, whose
    output holds a container's environment, secrets included). `inherit_env=False` runs
    with `env` alone (image builds: nothing of paude's environment reaches them).
    `finish_alone=True`: the command finishes even when its caller is killed
    (_run_to_the_end)."""
    args = tuple(str(a) for a in argv)
    if not args:
        raise ValueError("empty argv")
    log.info("run: %s", " ".join(args))
    full_env = None
    if not inherit_env:
        full_env = dict(env or {})
    elif env is not None:
        full_env = {**os.environ, **env}
    try:
        if finish_alone:
            completed = _run_to_the_end(args, cwd=cwd, env=full_env, input=input,
                                        timeout=timeout)
        else:
            completed = subprocess.run(args, cwd=cwd, env=full_env, input=input,
                                       capture_output=True, text=True, timeout=timeout,
                                       check=False)
    except FileNotFoundError as exc:
        if cwd is not None and not Path(cwd).is_dir():
            raise PaudeError(f"cannot run {args[0]}: the folder {cwd} does not exist") from exc
        raise _unrunnable(args[0], exc) from exc
    except PermissionError as exc:
        raise _unrunnable(args[0], exc) from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandFailedError(
            args, -1, f"{args[0]} did not finish within {timeout:g}s",
            hint="see `paude doctor`; PAUDE_DEBUG=1 logs every command") from exc
    result = CommandResult(args, completed.returncode, completed.stdout, completed.stderr)
    log.debug("exit %d\nstdout: %s\nstderr: %s", result.returncode,
              result.stdout if log_output else "(not logged)", result.stderr)
    if check and not result.ok:
        raise classify_failure(result)
    return result


def _run_to_the_end(args: tuple[str, ...], *, cwd: Path | str | None,
                    env: Mapping[str, str] | None, input: str | None,
                    timeout: float | None) -> subprocess.CompletedProcess[str]:
    """Run a command that must not be stopped partway, in its own session with its output
    in files: a kill of the caller's process group (Ctrl-C, a closed terminal,
    `kill -9 -PGID`) or of the caller alone leaves it to finish, and with no pipe to write
    to it cannot die of SIGPIPE either. podman cannot undo some of its steps once stopped
    inside them: a `podman run` killed while it sets up the network leaves the container's
    fixed address allocated to a container that no longer exists, and no later podman
    command frees it (podman 4.3 keeps it past `network rm`, until a reboot); a killed
    `podman rm` can leave a mount that makes the next one fail. Unlike subprocess.run, an
    exception in the caller (KeyboardInterrupt) does not kill it either."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.TemporaryFile() as given:
        given.write((input or "").encode())
        given.seek(0)
        child = subprocess.Popen(args, cwd=cwd, env=env, stdin=given, stdout=out, stderr=err,
                                 start_new_session=True)
        try:
            code = child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()  # asked for: a hung command is worse than a half-done one
            child.wait()
            raise
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(args, code, out.read().decode("utf-8", "replace"),
                                           err.read().decode("utf-8", "replace"))


def run_bytes(argv: Sequence[str], *, cwd: Path | str | None = None, input: bytes = b"",
              timeout: float | None = None) -> bytes:
    """Run argv with bytes in and out (file contents read from git objects); its stdout,
    or a typed error when it fails."""
    args = tuple(str(a) for a in argv)
    log.info("run: %s", " ".join(args))
    try:
        completed = subprocess.run(args, cwd=cwd, input=input, capture_output=True,
                                   timeout=timeout, check=False)
    except (FileNotFoundError, PermissionError) as exc:
        raise _unrunnable(args[0], exc) from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandFailedError(args, -1, f"{args[0]} did not finish within {timeout:g}s") \
            from exc
    if completed.returncode != 0:
        stderr = completed.stderr.decode("utf-8", "replace")
        raise classify_failure(CommandResult(args, completed.returncode, "", stderr))
    return completed.stdout


class StreamFilter(Protocol):
    """What run_on_pty passes a command's output through on its way to the terminal."""

    def feed(self, data: bytes) -> bytes:
        """The bytes to write for `data` (state carries over calls)."""

    def flush(self) -> bytes:
        """The bytes to write at the end of the stream."""


def run_on_pty(argv: Sequence[str], output: StreamFilter, *, stdin_fd: int = 0,
               stdout_fd: int = 1) -> int:
    """Run an interactive command on a pseudo-terminal of paude's own and relay it: the
    user's keys go in unchanged, its output reaches the user's terminal only through
    `output`. Returns the command's exit code."""
    args = [str(a) for a in argv]
    log.info("run (interactive, filtered): %s", " ".join(args))
    master, slave = os.openpty()
    _copy_size(stdin_fd, master)
    try:
        # Its own session: the user's terminal is not its controlling terminal, so nothing
        # it does can reach that terminal except through the relay below.
        child = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave,
                                 start_new_session=True)
    except FileNotFoundError as exc:
        os.close(master)
        raise ToolNotFoundError(f"{args[0]} is not installed or not on PATH") from exc
    finally:
        os.close(slave)

    def resized(signum: int, frame: FrameType | None) -> None:
        _copy_size(stdin_fd, master)
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGWINCH)  # not its controlling tty: tell it directly

    def ended(signum: int, frame: FrameType | None) -> None:
        # A closed terminal (SIGHUP) or a kill (SIGTERM): pass it on; the relay then ends
        # with the command and the terminal's mode is restored on the way out.
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    handlers = {signal.SIGWINCH: resized, signal.SIGHUP: ended, signal.SIGTERM: ended}
    previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
    try:
        with _raw(stdin_fd):
            _relay(master, child, output, stdin_fd, stdout_fd)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        os.close(master)
        with contextlib.suppress(OSError):
            _write_all(stdout_fd, output.flush())
    try:
        code = child.wait(timeout=10)
    except subprocess.TimeoutExpired:  # it outlived its terminal: end it
        child.terminate()
        code = child.wait()
    return 128 - code if code < 0 else code  # killed by a signal: 128 + its number, as shells


def _relay(master: int, child: subprocess.Popen[bytes], output: StreamFilter, stdin_fd: int,
           stdout_fd: int) -> None:
    watched = [master, stdin_fd]
    while True:
        ready, _, _ = select.select(watched, [], [], 0.5)
        if master in ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every holder of the other side has closed it
                data = b""
            if not data:
                return
            try:
                _write_all(stdout_fd, output.feed(data))
            except OSError:  # the user's terminal is gone: nobody to show anything to
                return
        if stdin_fd in ready:
            try:
                keys = os.read(stdin_fd, 4096)
            except OSError:
                keys = b""
            if keys:
                _write_all(master, keys)
            else:
                watched.remove(stdin_fd)  # input ended (not a terminal); output goes on
        if not ready and child.poll() is not None:
            return  # exited, and its output is drained; something it started holds the pty


@contextlib.contextmanager
def _raw(fd: int) -> Iterator[None]:
    """The user's terminal in raw mode while attached (keys go through as typed), restored
    however the attach ends."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)


def _copy_size(source: int, target: int) -> None:
    with contextlib.suppress(OSError):
        size = fcntl.ioctl(source, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(target, termios.TIOCSWINSZ, size)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def exec_replace(argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> NoReturn:
    """Replace the current process with argv (os.execvpe); `env` adds to the environment, as
    in run()."""
    args = [str(a) for a in argv]
    if not args:
        raise ValueError("empty argv")
    log.info("exec: %s", " ".join(args))
    try:
        os.execvpe(args[0], args, {**os.environ, **(env or {})})
    except FileNotFoundError as exc:
        raise _unrunnable(args[0], exc) from exc
    except PermissionError as exc:
        raise _unrunnable(args[0], exc) from exc
