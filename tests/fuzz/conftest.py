"""Reports how many inputs each fuzz target ran (tests/fuzz/harness.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.fuzz import harness


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the per-target counts; with PAUDE_FUZZ_REPORT, also write them as JSON."""
    lines = harness.summary()
    if not lines:
        return
    terminalreporter.section("fuzz")
    for line in lines:
        terminalreporter.write_line(line)
    report = os.environ.get("PAUDE_FUZZ_REPORT")
    if report:
        Path(report).write_text(json.dumps({
            "seed": harness.run_seed(), "budget": harness.total_examples(),
            "run": dict(harness.COUNTS), "accepted": dict(harness.ACCEPTED),
            "total": sum(harness.COUNTS.values())}, indent=2) + "\n", encoding="utf-8")
