"""Command helpers shared by the benchmarks: run, time, and summarise commands."""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

COMMAND_TIMEOUT = 900.0


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
