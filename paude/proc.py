"""The only place paude starts subprocesses: argv lists in, typed results out."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

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
) -> CommandResult:
    """Run argv to completion and capture its output; raise a typed error on failure.

    `log_output=False` keeps stdout out of the debug log (e.g. `podman inspect`, whose
    output holds a container's environment, secrets included). `inherit_env=False` runs
    with `env` alone (image builds: nothing of paude's environment reaches them)."""
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
        completed = subprocess.run(
            args,
            cwd=cwd,
            env=full_env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
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


def run_interactive(argv: Sequence[str], *, cwd: Path | str | None = None) -> int:
    """Run argv attached to the user's terminal (attach, exec -it) and return its exit code."""
    args = [str(a) for a in argv]
    log.info("run (interactive): %s", " ".join(args))
    try:
        return subprocess.call(args, cwd=cwd)
    except FileNotFoundError as exc:
        raise ToolNotFoundError(f"{args[0]} is not installed or not on PATH") from exc


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
