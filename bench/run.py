"""Benchmark paude's plan and apply against the same session made with plain podman.

Usage: python bench/run.py [--runs N] [--keep-images]

Each run times, with the real `paude` CLI in a throwaway repository and PAUDE_HOME:
(a) apply of a new session (images already built), (b) a no-op plan, (c) a no-op
apply, and (d) bench/podman_baseline.sh creating the same objects with podman directly,
with and without paude's one-second "stays running" check per container. The table is
printed and written to bench/results/latest.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
BASELINE_SCRIPT = BENCH_DIR / "podman_baseline.sh"
RESULTS_FILE = BENCH_DIR / "results" / "latest.json"

SESSION = "bench"
BASELINE_PREFIX = "bench-baseline"
BENCH_LABEL = "paude.bench=1"
SESSION_LABEL = f"paude.session={SESSION}"
DEFAULT_BASE_IMAGE = "localhost/paude-base:bookworm"
PAUDE_IMAGE_REPOSITORIES = ("localhost/paude-agent", "localhost/paude-proxy")
# paude waits this long for each new container to stay running; the like-for-like
# baseline does the same.
SETTLE_SECONDS = 1.0
COMMAND_TIMEOUT = 900.0

PLAN_TARGET_SECONDS = 5.0
APPLY_TARGET_RATIO = 2.0

# Step keys, in report order, with their labels.
STEPS: dict[str, str] = {
    "apply_new": "(a)  paude apply, new session",
    "plan_noop": "(b)  paude plan, no changes",
    "apply_noop": "(c)  paude apply, no changes",
    "baseline": f"(d)  podman baseline, {SETTLE_SECONDS:g} s settle",
    "baseline_nosettle": "(d0) podman baseline, no settle",
}


class BenchError(Exception):
    """A command the benchmark depends on failed, or the setup is unusable."""


@dataclass(frozen=True)
class Sandbox:
    """The throwaway repository and PAUDE_HOME the benchmark drives paude in."""

    repo: Path
    home: Path
    paude: str
    env: Mapping[str, str]


@dataclass(frozen=True)
class SessionFacts:
    """What the baseline copies from the session paude created."""

    proxy_image: str
    agent_image: str
    squid_conf_b64: str
    container_ids: tuple[str, ...]


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


# ---------------------------------------------------------------- commands


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
        raise BenchError(_failure(argv, result))
    return result


def timed(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path | None = None,
          ok_codes: tuple[int, ...] = (0,)) -> tuple[float, int]:
    """Wall-clock seconds for one command, and its exit code (one of ok_codes)."""
    started = time.perf_counter()
    result = run(argv, env=env, cwd=cwd, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode not in ok_codes:
        raise BenchError(_failure(argv, result))
    return elapsed, result.returncode


def _failure(argv: Sequence[str], result: subprocess.CompletedProcess[str]) -> str:
    """A readable failure message: the command, its exit code and its output's tail."""
    tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
    shown = " ".join(a if len(a) < 80 else a[:40] + "..." for a in argv)
    return f"`{shown}` exited {result.returncode}:\n{tail}"


def podman_lines(*args: str) -> list[str]:
    """Non-empty output lines of a podman command."""
    return [line for line in run(["podman", *args]).stdout.splitlines() if line.strip()]


# ---------------------------------------------------------------- setup


def find_paude() -> str:
    """The paude CLI: PAUDE_BIN, else beside this interpreter, else on PATH."""
    explicit = os.environ.get("PAUDE_BIN")
    beside = Path(sys.executable).parent / "paude"
    found = explicit or (str(beside) if beside.exists() else shutil.which("paude"))
    if not found:
        raise BenchError("paude is not installed: run `make venv` or set PAUDE_BIN")
    return found


def find_engine_dir() -> Path:
    """The directory holding the Pulumi engine: PAUDE_ENGINE_DIR, else pulumi's on PATH."""
    explicit = os.environ.get("PAUDE_ENGINE_DIR")
    if explicit:
        path = Path(explicit)
        if not (path / "pulumi").exists():
            raise BenchError(f"PAUDE_ENGINE_DIR={explicit} holds no pulumi binary")
        return path
    on_path = shutil.which("pulumi")
    if on_path is None:
        # A fresh PAUDE_HOME would otherwise download the engine inside the timings.
        raise BenchError("no Pulumi engine: put pulumi on PATH or set PAUDE_ENGINE_DIR "
                         "(`make engine` builds one)")
    return Path(on_path).resolve().parent


def make_sandbox(root: Path, *, base_image: str, engine_dir: Path, paude: str,
                 session: str = SESSION) -> Sandbox:
    """A git repository with paude.yaml and a PAUDE_HOME that reuses the engine."""
    repo, home = root / "repo", root / "home"
    (home / "bin").mkdir(parents=True)
    for item in sorted(engine_dir.iterdir()):
        if item.is_file():
            (home / "bin" / item.name).symlink_to(item.resolve())
    # The machine's settings: the proxy's base image is never the repository's choice.
    (home / "config.yaml").write_text(
        f"version: 1\nimage: {{base: {base_image}}}\nproxy: {{base: {base_image}}}\n",
        encoding="utf-8")
    repo.mkdir()
    run(["git", "init", "--quiet", str(repo)])
    (repo / "paude.yaml").write_text(
        "version: 1\n"
        "defaults:\n"
        # No Claude Code download: the bench measures paude, not the installer.
        "  agent: {install: none, command: [bash]}\n"
        "  image:\n"
        f"    base: {base_image}\n"
        "sessions:\n"
        f"  {session}: {{}}\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if k != "PAUDE_STATE_BACKEND"}
    env.update({"PAUDE_HOME": str(home), "PULUMI_SKIP_UPDATE_CHECK": "true"})
    return Sandbox(repo, home, paude, env)


def paude_images() -> set[str]:
    """Tags of paude's agent and proxy images present now."""
    tags: set[str] = set()
    for repository in PAUDE_IMAGE_REPOSITORIES:
        tags.update(podman_lines("images", "--filter", f"reference={repository}",
                                 "--format", "{{.Repository}}:{{.Tag}}"))
    return tags


def session_facts() -> SessionFacts:
    """Image tags, proxy configuration and container ids of the live bench session."""
    images: dict[str, str] = {}
    ids: list[str] = []
    for line in podman_lines("ps", "--filter", f"label={SESSION_LABEL}",
                             "--format", "{{.Names}} {{.Image}} {{.ID}}"):
        name, image, container_id = line.split()
        images[name] = image
        ids.append(container_id)
    proxy, agent = f"paude-{SESSION}-proxy", f"paude-{SESSION}-agent"
    if proxy not in images or agent not in images:
        raise BenchError(f"expected {proxy} and {agent} to be running; found {sorted(images)}")
    inspected = json.loads(run(["podman", "container", "inspect", proxy]).stdout)
    env_list: list[str] = inspected[0]["Config"]["Env"] or []
    prefix = "PAUDE_SQUID_CONF_B64="
    conf = next((e.removeprefix(prefix) for e in env_list if e.startswith(prefix)), None)
    if not conf:
        raise BenchError(f"{proxy} has no PAUDE_SQUID_CONF_B64 in its environment")
    return SessionFacts(images[proxy], images[agent], conf, tuple(sorted(ids)))


# ---------------------------------------------------------------- steps


def paude_cmd(sandbox: Sandbox, *args: str) -> list[str]:
    """argv for one paude command."""
    return [sandbox.paude, *args]


def destroy_session(sandbox: Sandbox, *, check: bool = True) -> None:
    """Remove the bench session and its workspace (untimed)."""
    run(paude_cmd(sandbox, "destroy", SESSION, "--yes", "--delete-data"),
        env=sandbox.env, cwd=sandbox.repo, check=check)


def baseline_env(sandbox: Sandbox, facts: SessionFacts, settle: float) -> dict[str, str]:
    """Environment for podman_baseline.sh."""
    return {**sandbox.env, "BASELINE_PREFIX": BASELINE_PREFIX,
            "BASELINE_PROXY_IMAGE": facts.proxy_image,
            "BASELINE_AGENT_IMAGE": facts.agent_image,
            "BASELINE_SQUID_CONF_B64": facts.squid_conf_b64,
            "BASELINE_SETTLE": f"{settle:g}"}


def time_baseline(sandbox: Sandbox, facts: SessionFacts, settle: float) -> float:
    """Seconds for podman_baseline.sh to bring the session up; removed again untimed."""
    env = baseline_env(sandbox, facts, settle)
    try:
        seconds, _ = timed(["bash", str(BASELINE_SCRIPT), "up"], env=env)
    finally:
        run(["bash", str(BASELINE_SCRIPT), "down"], env=env)
    return seconds


def one_run(sandbox: Sandbox, warm: SessionFacts, index: int,
            total: int) -> dict[str, float]:
    """Time steps (a) to (d) once, leaving nothing behind."""
    env, repo = sandbox.env, sandbox.repo
    samples: dict[str, float] = {}
    samples["apply_new"], _ = timed(paude_cmd(sandbox, "apply", SESSION, "--yes"),
                                    env=env, cwd=repo)
    facts = session_facts()
    if (facts.proxy_image, facts.agent_image) != (warm.proxy_image, warm.agent_image):
        # paude is installed from this checkout: an edit to its image inputs during the
        # benchmark makes (a) include a build.
        raise BenchError(f"image tags changed since the warm-up ({warm.agent_image}, "
                         f"{warm.proxy_image} -> {facts.agent_image}, {facts.proxy_image}): "
                         "(a) included an image build; run the benchmark again")
    # --detailed-exitcode: a plan that finds changes right after apply is not a no-op.
    samples["plan_noop"], code = timed(
        paude_cmd(sandbox, "plan", SESSION, "--detailed-exitcode"), env=env, cwd=repo,
        ok_codes=(0, 2))
    if code == 2:
        raise BenchError("`paude plan` right after apply reported changes; the no-op "
                         "timings would be meaningless (run `paude plan bench` to see them)")
    samples["apply_noop"], _ = timed(paude_cmd(sandbox, "apply", SESSION, "--yes"),
                                     env=env, cwd=repo)
    if session_facts().container_ids != facts.container_ids:
        raise BenchError("a no-op `paude apply` replaced containers")
    destroy_session(sandbox)
    samples["baseline"] = time_baseline(sandbox, facts, SETTLE_SECONDS)
    samples["baseline_nosettle"] = time_baseline(sandbox, facts, 0.0)
    shown = "  ".join(f"{key}={value:.2f}s" for key, value in samples.items())
    print(f"run {index}/{total}: {shown}", flush=True)
    return samples


# ---------------------------------------------------------------- cleanup


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


def cleanup(sandbox: Sandbox | None, images_before: set[str] | None, *,
            keep_images: bool) -> None:
    """Remove every object the benchmark made; warn about anything that stays."""
    if sandbox is not None:
        try:
            destroy_session(sandbox, check=False)
        except BenchError as exc:
            print(f"warning: cleanup: {exc}", file=sys.stderr)
    for label in (BENCH_LABEL, SESSION_LABEL):
        try:
            remove_labelled(label)
        except BenchError as exc:
            print(f"warning: cleanup by label {label}: {exc}", file=sys.stderr)
    if not keep_images and images_before is not None:
        remove_new_images(images_before)


def remove_new_images(images_before: set[str]) -> None:
    """Remove the images paude built during a benchmark; rmi without --force keeps one
    that another session started using meanwhile."""
    try:
        for tag in sorted(paude_images() - images_before):
            result = run(["podman", "rmi", tag], check=False)
            if result.returncode != 0:
                print(f"warning: kept image {tag}: {result.stderr.strip()}", file=sys.stderr)
    except BenchError as exc:
        print(f"warning: cleanup of images: {exc}", file=sys.stderr)


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    """Turn SIGTERM into KeyboardInterrupt so cleanup runs as for Ctrl-C."""
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while cleaning up: a half-done cleanup leaks objects."""
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------- report


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


def build_report(samples: dict[str, list[float]], *, base_image: str,
                 engine_dir: Path) -> dict[str, object]:
    """The JSON report: machine, raw samples, statistics, ratios and targets."""
    stats = {key: Stats.of(values) for key, values in samples.items()}
    base = stats["baseline"].median
    ratios = {
        "a/d": stats["apply_new"].median / base,
        "b/d": stats["plan_noop"].median / base,
        "c/d": stats["apply_noop"].median / base,
        "a/d0": stats["apply_new"].median / stats["baseline_nosettle"].median,
    }
    plan_median = stats["plan_noop"].median
    targets = {
        "plan_noop_seconds": {"target": f"< {PLAN_TARGET_SECONDS:g} s", "value": plan_median,
                              "met": plan_median < PLAN_TARGET_SECONDS},
        "apply_new_vs_baseline": {"target": f"a/d <= {APPLY_TARGET_RATIO:g}",
                                  "value": ratios["a/d"],
                                  "met": ratios["a/d"] <= APPLY_TARGET_RATIO},
    }
    return {
        "schema": 1,
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
        },
        "steps": {key: {"label": STEPS[key], "samples": [round(v, 4) for v in values],
                        "median": round(stats[key].median, 4),
                        "min": round(stats[key].minimum, 4),
                        "max": round(stats[key].maximum, 4)}
                  for key, values in samples.items()},
        "ratios": {key: round(value, 3) for key, value in ratios.items()},
        "targets": targets,
    }


def render_table(report: Mapping[str, object]) -> str:
    """The report as a plain-text table with targets marked met or MISSED."""
    steps = report["steps"]
    ratios = report["ratios"]
    targets = report["targets"]
    machine = report["machine"]
    assert isinstance(steps, dict) and isinstance(ratios, dict)
    assert isinstance(targets, dict) and isinstance(machine, dict)
    lines = [
        f"paude benchmark: {report['runs']} runs, {machine['cpus']} CPUs, "
        f"{machine['podman']}, pulumi {machine['pulumi']}",
        "",
        f"{'step':<38}{'median':>9}{'min':>9}{'max':>9}",
    ]
    for key, label in STEPS.items():
        row = steps[key]
        lines.append(f"{label:<38}{row['median']:>8.2f}s{row['min']:>8.2f}s{row['max']:>8.2f}s")
    lines += [
        "",
        "ratios of medians (d = like-for-like baseline, with settle):",
        f"  a/d {ratios['a/d']:.2f}x   b/d {ratios['b/d']:.2f}x   c/d {ratios['c/d']:.2f}x"
        f"   (a/d0 {ratios['a/d0']:.2f}x, baseline without settle)",
        "",
        "targets:",
    ]
    plan, apply = targets["plan_noop_seconds"], targets["apply_new_vs_baseline"]
    lines.append(f"  no-op plan {plan['target']:<20} {plan['value']:>6.2f} s    "
                 f"{'met' if plan['met'] else 'MISSED'}")
    lines.append(f"  new-session apply {apply['target']:<13} {apply['value']:>6.2f}x     "
                 f"{'met' if apply['met'] else 'MISSED'}")
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    return bench_args(argv, __doc__,
                      keep_images_help="keep agent/proxy images the warm-up built (faster "
                                       "next time)")


def bench_args(argv: Sequence[str] | None, doc: str | None, *,
               keep_images_help: str) -> argparse.Namespace:
    """The options every benchmark takes: --runs and --keep-images."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--runs", type=int, default=5, help="measured runs (default 5)")
    parser.add_argument("--keep-images", action="store_true", help=keep_images_help)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def benchmark(args: argparse.Namespace) -> dict[str, object]:
    """Warm up, run the measured runs and clean up whatever happens."""
    base_image = os.environ.get("PAUDE_TEST_BASE_IMAGE") or DEFAULT_BASE_IMAGE
    paude = find_paude()
    engine_dir = find_engine_dir()
    if run(["podman", "image", "exists", base_image], check=False).returncode != 0:
        raise BenchError(f"base image {base_image} does not exist: run `make base-image` "
                         "or set PAUDE_TEST_BASE_IMAGE")
    if podman_lines("ps", "--all", "--filter", f"label={SESSION_LABEL}", "--format", "{{.ID}}"):
        raise BenchError(f"containers labelled {SESSION_LABEL} already exist; the benchmark "
                         f"would remove them: destroy session {SESSION} first")
    sandbox: Sandbox | None = None
    images_before: set[str] | None = None
    samples: dict[str, list[float]] = {key: [] for key in STEPS}
    with tempfile.TemporaryDirectory(prefix="paude-bench-") as tmp:
        try:
            sandbox = make_sandbox(Path(tmp), base_image=base_image, engine_dir=engine_dir,
                                   paude=paude)
            images_before = paude_images()
            print("warm-up: building images (first apply)...", flush=True)
            seconds, _ = timed(paude_cmd(sandbox, "apply", SESSION, "--yes"),
                               env=sandbox.env, cwd=sandbox.repo)
            warm = session_facts()
            destroy_session(sandbox)
            print(f"warm-up done in {seconds:.1f}s", flush=True)
            for index in range(1, args.runs + 1):
                for key, value in one_run(sandbox, warm, index, args.runs).items():
                    samples[key].append(value)
        finally:
            with interrupts_deferred():
                cleanup(sandbox, images_before, keep_images=args.keep_images)
    return build_report(samples, base_image=base_image, engine_dir=engine_dir)


def run_main(args: argparse.Namespace, bench: Callable[[argparse.Namespace], dict[str, Any]],
             render: Callable[[dict[str, Any]], str], results_file: Path) -> int:
    """Run one benchmark: exit 0 when every command succeeded (missed targets included),
    1 when one failed, 130 when interrupted; objects are removed in every case."""
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        report = bench(args)
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; benchmark objects removed", file=sys.stderr)
        return 130
    results_file.parent.mkdir(parents=True, exist_ok=True)
    results_file.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print()
    print(render(report))
    print(f"\nwritten to {results_file.relative_to(BENCH_DIR.parent)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark."""
    return run_main(parse_args(argv), benchmark, render_table, RESULTS_FILE)


if __name__ == "__main__":
    sys.exit(main())
