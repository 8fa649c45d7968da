"""bench/run.py's report: the steps and targets, the JSON written to
bench/results/latest.json, and the table printed."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common import Stats, source_revision, tool_version

SETTLE_SECONDS = 1.0

# Step keys, in report order, with their labels; paude's row, then what it is compared with.
STEPS: dict[str, str] = {
    "apply_new": "(a)  paude apply, new session",
    "baseline_nosettle": "(d0) podman commands, same objects",
    "baseline": f"(d)  podman commands + {SETTLE_SECONDS:g} s settle [ref]",
    "devcontainer": "     devcontainer up (same base image)",
    "plan_noop": "(b)  paude plan, no changes",
    "apply_noop": "(c)  paude apply, no changes",
    "apply_allowlist": "(e)  paude apply, allowlist change",
    "engine_floor": "(f)  engine floor: empty preview",
    "help": "     paude --help",
    "list": "     paude list",
    "podman_ps": "     podman ps",
    "status": "     paude status",
    "podman_inspect": "     podman inspect",
    "start": "     paude start (stopped session)",
    "podman_start": "     podman start (its containers)",
}
# Targets of issue 16: (label, step or ratio, limit); ratios are of medians.
TARGETS: tuple[tuple[str, str, float], ...] = (
    ("new session a/d0 <= 3", "a/d0", 3.0),
    ("new session <= 2.5 s", "apply_new", 2.5),
    ("no-op plan <= 2.0 s", "plan_noop", 2.0),
    ("no-op apply <= 2.5 s", "apply_noop", 2.5),
    ("allowlist change <= 2.5 s", "apply_allowlist", 2.5),
    ("paude --help <= 0.25 s", "help", 0.25),
    ("paude list <= 0.3 s", "list", 0.3),
    ("paude status <= 0.4 s", "status", 0.4),
    ("start - podman start <= 0.3 s", "start-podman_start", 0.3),
)


def _value(key: str, medians: Mapping[str, float]) -> float | None:
    """A target's measured value: a step's median, a ratio (x/y) or a difference (x-y)."""
    names = {"a": "apply_new", "d0": "baseline_nosettle"}
    for sep in ("/", "-"):
        if sep in key:
            left, right = (medians.get(names.get(k, k)) for k in key.split(sep))
            if left is None or right is None:
                return None
            return left / right if sep == "/" else left - right
    return medians.get(key)


def build_report(samples: dict[str, list[float]], *, base_image: str, engine_dir: Path,
                 memory: Mapping[str, float] | None = None) -> dict[str, object]:
    """The JSON report: machine, raw samples, statistics, ratios, targets and memory."""
    stats = {key: Stats.of(values) for key, values in samples.items() if values}
    medians = {key: s.median for key, s in stats.items()}
    d0 = medians["baseline_nosettle"]
    ratios = {f"{key}/d0": medians[key] / d0 for key in ("apply_new", "plan_noop",
                                                          "apply_noop", "apply_allowlist")}
    ratios["apply_new/d"] = medians["apply_new"] / medians["baseline"]
    if "devcontainer" in medians:
        ratios["apply_new/devcontainer"] = medians["apply_new"] / medians["devcontainer"]
    targets = {}
    for label, key, limit in TARGETS:
        value = _value(key, medians)
        targets[label] = {"value": None if value is None else round(value, 4), "limit": limit,
                          "met": value is not None and value <= limit}
    return {
        "schema": 2,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": len(samples["apply_new"]),
        "settle_seconds": SETTLE_SECONDS,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "podman": tool_version(["podman", "--version"]),
            "pulumi": tool_version([str(engine_dir / "pulumi"), "version"]),
            "paude_commit": source_revision(),
            "base_image": base_image,
            "load_average": list(os.getloadavg()),
        },
        "steps": {key: {"label": STEPS[key].strip(), "samples": [round(v, 4) for v in values],
                        "median": round(stats[key].median, 4),
                        "min": round(stats[key].minimum, 4),
                        "max": round(stats[key].maximum, 4)}
                  for key, values in samples.items() if values},
        "ratios": {key: round(value, 3) for key, value in ratios.items()},
        "targets": targets,
        "peak_memory_mib": {k: round(v, 1) for k, v in (memory or {}).items()},
    }


def render_table(report: Mapping[str, Any]) -> str:
    """The report as a plain-text table with targets marked met or MISSED."""
    steps, ratios, targets = report["steps"], report["ratios"], report["targets"]
    machine = report["machine"]
    lines = [
        f"paude benchmark: {report['runs']} runs, {machine['cpus']} CPUs, "
        f"{machine['podman']}, pulumi {machine['pulumi']}, load average at the end "
        f"{machine['load_average'][0]:.2f}",
        "",
        f"{'step':<46}{'median':>9}{'min':>9}{'max':>9}",
    ]
    for key, label in STEPS.items():
        row = steps.get(key)
        if row is None:
            lines.append(f"{label:<46}{'(not installed)' if key == 'devcontainer' else '-':>9}")
            continue
        lines.append(f"{label:<46}{row['median']:>8.2f}s{row['min']:>8.2f}s{row['max']:>8.2f}s")
    lines += ["", "ratios of medians (d0 = the plain podman commands, the headline):",
              "  " + "   ".join(f"{k} {v:.2f}x" for k, v in ratios.items()), "", "targets:"]
    for label, target in targets.items():
        value = target["value"]
        shown = "-" if value is None else f"{value:.2f}"
        lines.append(f"  {label:<34}{shown:>8}    {'met' if target['met'] else 'MISSED'}")
    memory = report.get("peak_memory_mib") or {}
    if memory:
        lines += ["", "peak memory during a new-session apply (MiB, resident): " + ", ".join(
            f"{k} {v:.0f}" for k, v in memory.items())]
    return "\n".join(lines)
