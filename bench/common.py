"""Helpers shared by the benchmarks: run, time and summarise commands, describe the
machine, and clean up what a benchmark made."""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

COMMAND_TIMEOUT = 900.0
BENCH_DIR = Path(__file__).resolve().parent


class BenchError(Exception):
    """A command the benchmark depends on failed, or the setup is unusable."""


@dataclass(frozen=True)
class Stats:
    """Median, minimum and maximum of one step's samples, in seconds."""

    median: float
    minimum: float
    maximum: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        """Summarise a non-empty list of durations."""
        return cls(statistics.median(samples), min(samples), max(samples))


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
        cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command with captured text output; raise BenchError when it fails."""
    try:
        result = subprocess.run(list(argv), cwd=cwd, env=dict(env) if env else None,
                                capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                                check=False)
    except FileNotFoundError as exc:
        raise BenchError(f"{argv[0]} is not installed or not on PATH") from exc
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"timed out after {COMMAND_TIMEOUT:.0f}s: {' '.join(argv)}") from exc
    if check and result.returncode != 0:
        raise BenchError(failure(argv, result))
    return result


def timed(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
          cwd: Path | None = None, ok_codes: tuple[int, ...] = (0,)) -> tuple[float, int]:
    """Wall-clock seconds for one command, and its exit code (one of ok_codes)."""
    started = time.perf_counter()
    result = run(argv, env=env, cwd=cwd, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode not in ok_codes:
        raise BenchError(failure(argv, result))
    return elapsed, result.returncode


def failure(argv: Sequence[str], result: subprocess.CompletedProcess[str]) -> str:
    """A readable failure message: the command, its exit code and its output's tail."""
    tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
    shown = " ".join(a if len(a) < 80 else a[:40] + "..." for a in argv)
    return f"`{shown}` exited {result.returncode}:\n{tail}"


def podman_lines(*args: str) -> list[str]:
    """Non-empty output lines of a podman command."""
    return [line for line in run(["podman", *args]).stdout.splitlines() if line.strip()]


def tool_version(argv: Sequence[str]) -> str:
    """First line of a tool's version output, or 'unknown'."""
    try:
        result = run(argv, check=False)
    except BenchError:
        return "unknown"
    lines = (result.stdout or result.stderr).strip().splitlines()
    return lines[0] if lines and result.returncode == 0 else "unknown"


def source_revision() -> str:
    """The checkout's commit, with +dirty when tracked files differ from it."""
    repo = str(BENCH_DIR.parent)
    try:
        head = run(["git", "-C", repo, "rev-parse", "--short", "HEAD"]).stdout.strip()
        # No optional locks: only read the checkout, never refresh its index.
        status = run(["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
                     env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"}).stdout
    except BenchError:
        return "unknown"
    return head + ("+dirty" if status.strip() else "")


def remove_labelled(label: str) -> None:
    """Force-remove containers, then networks and volumes, carrying a label."""
    containers = podman_lines("ps", "--all", "--filter", f"label={label}",
                              "--format", "{{.ID}}")
    if containers:
        run(["podman", "rm", "--force", "--time", "1", *containers], check=False)
    networks = podman_lines("network", "ls", "--filter", f"label={label}",
                            "--format", "{{.Name}}")
    if networks:
        run(["podman", "network", "rm", "--force", *networks], check=False)
    volumes = podman_lines("volume", "ls", "--filter", f"label={label}",
                           "--format", "{{.Name}}")
    if volumes:
        run(["podman", "volume", "rm", "--force", *volumes], check=False)


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while cleaning up: a half-done cleanup leaks objects."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
