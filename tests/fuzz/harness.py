"""The fuzz run's budget, seeds and counts, shared by every target in tests/fuzz.

PAUDE_FUZZ_EXAMPLES is the number of generated inputs across all targets (default 1000,
the seeded sample `make test` runs); each target gets its share by weight. With
PAUDE_FUZZ_SEED the run is random under that seed (`make fuzz` picks and prints one);
without it every target is derandomized, so CI runs the same inputs every time."""

from __future__ import annotations

import os
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, settings
from hypothesis import seed as hypothesis_seed

from paude.errors import PaudeError

DEFAULT_EXAMPLES = 1000
# Shares of the budget. Structured documents get the most: every valid one is also
# rendered and run as both stack programs.
WEIGHTS: dict[str, int] = {
    "paude.yaml structured": 24,
    "paude.yaml text mutations": 16,
    "paude.yaml bytes": 6,
    "paude.yaml shapes": 4,
    "image source structured": 14,
    "image source text mutations": 10,
    "policy file structured": 8,
    "policy file text mutations": 6,
    "cli arguments": 12,
}
# No single input may take longer than this to load and validate (a loaded 2-core CI
# machine included): alias bombs, deep nesting and quadratic parsers are what it catches.
MAX_SECONDS = 5.0

COUNTS: Counter[str] = Counter()
ACCEPTED: Counter[str] = Counter()
F = TypeVar("F", bound=Callable[..., Any])


def total_examples() -> int:
    """The run's whole budget of generated inputs."""
    return int(os.environ.get("PAUDE_FUZZ_EXAMPLES", DEFAULT_EXAMPLES))


def run_seed() -> int | None:
    """The random run's seed, or None for the derandomized CI sample."""
    value = os.environ.get("PAUDE_FUZZ_SEED", "").strip()
    return int(value) if value else None


def examples(target: str) -> int:
    """This target's share of the budget."""
    return max(1, round(total_examples() * WEIGHTS[target] / sum(WEIGHTS.values())))


def fuzz(target: str) -> Callable[[F], F]:
    """Settings for one target: its share of examples, no deadline per example (MAX_SECONDS
    is checked where it matters), no example database (the CI sample never depends on an
    earlier run), derandomized unless PAUDE_FUZZ_SEED is set."""
    chosen = run_seed()

    def apply(test: F) -> F:
        # A random run reports a failure as found: shrinking one can take Hypothesis
        # minutes. PAUDE_FUZZ_SHRINK=1 (or the CI sample) shrinks it to a small input.
        shrink = chosen is None or os.environ.get("PAUDE_FUZZ_SHRINK") == "1"
        configured = settings(
            max_examples=examples(target), deadline=None, database=None,
            derandomize=chosen is None, print_blob=True,
            phases=[p for p in Phase if shrink or p is not Phase.shrink],
            suppress_health_check=list(HealthCheck))(test)
        if chosen is not None:
            # One seed per target, derived from the run's: targets stay independent.
            configured = hypothesis_seed(chosen ^ zlib.crc32(target.encode()))(configured)
        return configured

    return apply


def ran(target: str, *, accepted: bool) -> None:
    """Count one input of `target` (called once per example, at its end)."""
    COUNTS[target] += 1
    if accepted:
        ACCEPTED[target] += 1


@contextmanager
def bounded(what: str) -> Iterator[None]:
    """Fail when the block takes longer than MAX_SECONDS."""
    started = time.monotonic()
    yield
    took = time.monotonic() - started
    assert took < MAX_SECONDS, f"{what} took {took:.1f}s (limit {MAX_SECONDS}s)"


def readable(exc: PaudeError, *names: str) -> None:
    """A refusal is a paude error with a readable message naming the file (or field)."""
    text = exc.render()
    assert text.strip(), "an empty error message"
    assert "Traceback" not in text
    assert text.isprintable() or all(c.isprintable() or c in "\n" for c in text), \
        f"unprintable characters in the message: {text!r}"
    for name in names:
        assert name in text, f"{name!r} is not named in: {text}"
    for problem in getattr(exc, "problems", ()):
        assert problem.path and problem.message, problem


def summary() -> list[str]:
    """The lines of the end-of-run report: inputs per target and in total."""
    if not COUNTS:
        return []
    chosen = run_seed()
    mode = f"random, PAUDE_FUZZ_SEED={chosen}" if chosen is not None else "derandomized"
    lines = [f"fuzz inputs ({mode}; budget PAUDE_FUZZ_EXAMPLES={total_examples()}):"]
    for target in WEIGHTS:
        if COUNTS[target]:
            lines.append(f"  {target:<30} {COUNTS[target]:>6} run, "
                         f"{ACCEPTED[target]:>6} accepted")
    lines.append(f"  {'total':<30} {sum(COUNTS.values()):>6} run, "
                 f"{sum(ACCEPTED.values()):>6} accepted")
    return lines
