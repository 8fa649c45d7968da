"""`paude list` with 50 real sessions: it must answer within 0.3 s (issue 16).

    python bench/list_bench.py [--sessions 50] [--runs 10]     (make bench-list)

Applies N sessions (images already built: they share one definition), then times
`paude list` and `paude list --json` repeatedly, and `podman ps` as a baseline (the one
call list makes). Everything the bench creates is destroyed afterwards, even on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from run import (  # bench/run.py: the same command, engine and cleanup helpers
    BenchError,
    Stats,
    find_engine_dir,
    find_paude,
    interrupts_deferred,
    remove_labelled,
    run,
)

TARGET_SECONDS = 0.3
PREFIX = "bench-list"


def main() -> int:
    """Set up the sessions, time list, clean up, print and save the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--runs", type=int, default=10)
    opts = parser.parse_args()
    base = os.environ.get("PAUDE_TEST_BASE_IMAGE", "localhost/paude-base:bookworm")
    names = [f"{PREFIX}-{i:02d}" for i in range(opts.sessions)]
    with tempfile.TemporaryDirectory(prefix="paude-list-bench-") as tmp:
        root = Path(tmp)
        repo, home = root / "repo", root / "home"
        (home / "bin").mkdir(parents=True)
        for item in find_engine_dir().iterdir():
            (home / "bin" / item.name).symlink_to(item.resolve())
        (home / "config.yaml").write_text(
            f"version: 1\nimage: {{base: {base}}}\nproxy: {{base: {base}}}\n",
            encoding="utf-8")
        repo.mkdir()
        run(["git", "init", "-q", str(repo)])
        sessions = "".join(f"  {n}: {{}}\n" for n in names)
        (repo / "paude.yaml").write_text(
            "version: 1\ndefaults:\n  agent: {install: none, command: [bash]}\n"
            f"  image:\n    base: {base}\nsessions:\n{sessions}", encoding="utf-8")
        env = {**os.environ, "PAUDE_HOME": str(home)}
        paude = find_paude()
        try:
            started = time.perf_counter()
            for name in names:
                run([paude, "apply", name, "--yes"], env=env, cwd=repo)
            print(f"applied {len(names)} sessions in {time.perf_counter() - started:.0f}s")
            listed = json.loads(run([paude, "list", "--json"], env=env, cwd=repo).stdout)
            running = [r for r in listed if r["status"] == "running"]
            if len(running) != len(names):
                raise BenchError(f"list shows {len(running)} running sessions, not {len(names)}")
            samples: dict[str, list[float]] = {"list": [], "list_json": [], "podman_ps": []}
            for _ in range(opts.runs):
                for key, argv in (("list", [paude, "list"]),
                                  ("list_json", [paude, "list", "--json"]),
                                  ("podman_ps", ["podman", "ps", "--all", "--filter",
                                                 "label=paude.managed=true", "--format", "json"])):
                    began = time.perf_counter()
                    run(argv, env=env, cwd=repo)
                    samples[key].append(time.perf_counter() - began)
        finally:
            with interrupts_deferred():
                for name in names:
                    run([paude, "destroy", name, "--yes", "--delete-data", "--force"], env=env,
                        cwd=repo, check=False)
                for name in names:
                    remove_labelled(f"paude.session={name}")
    stats = {k: Stats.of(v) for k, v in samples.items()}
    print(f"\n{'step':<28}{'median':>9}{'min':>9}{'max':>9}")
    for key, label in (("list", "paude list"), ("list_json", "paude list --json"),
                       ("podman_ps", "podman ps (its one call)")):
        s = stats[key]
        print(f"{label:<28}{s.median:>8.3f}s{s.minimum:>8.3f}s{s.maximum:>8.3f}s")
    verdict = "met" if stats["list"].median <= TARGET_SECONDS else "MISSED"
    print(f"\ntarget: paude list with {len(names)} sessions <= {TARGET_SECONDS:g} s: "
          f"{stats['list'].median:.3f} s {verdict}")
    out = Path(__file__).parent / "results" / "list-latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"sessions": len(names), "samples": samples,
                               "medians": {k: s.median for k, s in stats.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        sys.exit(1)
