"""Benchmark git through a session's remote (git-remote-paude + podman exec) against local git.

Usage: python bench/git_bench.py [--runs N] [--keep-images]

One session, `bench-git`, is applied in a throwaway repository and PAUDE_HOME (as in
bench/run.py). Each run then times, from git's start to its exit:
(1) pushing a fresh repository of 200 committed files into a freshly initialised
workspace, against pushing it to a local bare repository and to a local non-bare one
that checks the files out as the session does (receive.denyCurrentBranch=updateInstead);
(2) a no-op `git fetch` from the session, against one from the local bare repository;
and, for scale, one `podman exec` of `true` in the agent. The table is printed and
written to bench/results/git-latest.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from common import source_revision, tool_version
from run import (  # bench/run.py: the same command, engine and cleanup helpers
    BenchError,
    Stats,
    bench_args,
    find_engine_dir,
    find_paude,
    interrupts_deferred,
    make_sandbox,
    paude_images,
    remove_labelled,
    remove_new_images,
    run,
    run_main,
    timed,
)

from paude import gitsync
from paude.backends import get_backend
from paude.backends.base import WORKSPACE

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "results" / "git-latest.json"

SESSION = "bench-git"
SESSION_LABEL = f"paude.session={SESSION}"
AGENT = f"paude-{SESSION}-agent"
REMOTE = gitsync.remote_name(SESSION)
DEFAULT_BASE_IMAGE = "localhost/paude-base:bookworm"
FILES = 200
BRANCH = "main"
# Commits need an identity; the user's own git configuration is not consulted.
IDENTITY = ("-c", "user.name=paude bench", "-c", "user.email=bench@paude.invalid")

STEPS: dict[str, str] = {
    "push_session": f"(1)  git push, {FILES} files, session",
    "push_bare": "(1b) git push, local bare repository",
    "push_worktree": "(1w) git push, local repo + updateInstead",
    "fetch_session": "(2)  git fetch, no-op, session",
    "fetch_bare": "(2b) git fetch, no-op, local bare repository",
    "exec_true": "(x)  podman exec true, for scale",
}


@dataclass(frozen=True)
class Setup:
    """The throwaway repository, PAUDE_HOME and environment the benchmark uses."""

    root: Path
    repo: Path
    paude: str
    env: Mapping[str, str]  # PAUDE_HOME set, git-remote-paude on PATH


def make_setup(root: Path, *, base_image: str, engine_dir: Path, paude: str) -> Setup:
    """run.py's sandbox for SESSION, with git-remote-paude on PATH for the host's git."""
    sandbox = make_sandbox(root, base_image=base_image, engine_dir=engine_dir, paude=paude,
                           session=SESSION)
    helper_dir = find_helper_dir(paude)
    env = {**sandbox.env, "PATH": f"{helper_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    return Setup(root, sandbox.repo, paude, env)


def find_helper_dir(paude: str) -> Path:
    """The folder holding git-remote-paude: beside paude, beside this interpreter, or on PATH."""
    for folder in (Path(paude).parent, Path(sys.executable).parent):
        if (folder / "git-remote-paude").exists():
            return folder
    found = shutil.which("git-remote-paude")
    if found is None:
        raise BenchError("git-remote-paude is not installed: reinstall paude")
    return Path(found).parent


def make_host_repo(path: Path, env: Mapping[str, str]) -> None:
    """A repository with FILES small text files in one commit on BRANCH."""
    run(["git", "init", "--quiet", "-b", BRANCH, str(path)], env=env)
    for i in range(FILES):
        file = path / f"dir{i % 10:02d}" / f"file{i:03d}.txt"
        file.parent.mkdir(exist_ok=True)
        file.write_text("".join(f"line {n} of file {i}\n" for n in range(40)), encoding="utf-8")
    run(["git", "-C", str(path), "add", "."], env=env)
    run(["git", "-C", str(path), *IDENTITY, "commit", "--quiet", "-m", "files"], env=env)


def reset_workspace() -> None:
    """Empty the agent's workspace and make it a fresh repository again (untimed)."""
    # The trailing slash: /workspace may be a symlink to the volume, and find must follow it.
    run(["podman", "exec", AGENT, "find", f"{WORKSPACE}/", "-mindepth", "1", "-delete"])
    gitsync.init_workspace(get_backend("podman"), SESSION, BRANCH)


def one_run(setup: Setup, index: int, total: int) -> dict[str, float]:
    """Time every step once, in fresh repositories."""
    env = setup.env
    work = setup.root / f"run{index}"
    host, bare, worktree = work / "host", work / "bare.git", work / "worktree"
    make_host_repo(host, env)
    run(["git", "init", "--quiet", "--bare", str(bare)], env=env)
    run(["git", "init", "--quiet", "-b", BRANCH, str(worktree)], env=env)
    run(["git", "-C", str(worktree), "config", "receive.denyCurrentBranch", "updateInstead"])
    git = ["git", "-C", str(host)]
    run([*git, "remote", "add", REMOTE, gitsync.remote_url(SESSION)], env=env)
    run([*git, "remote", "add", "bare", str(bare)], env=env)
    run([*git, "remote", "add", "worktree", str(worktree)], env=env)
    reset_workspace()

    samples: dict[str, float] = {}
    refspec = f"HEAD:refs/heads/{BRANCH}"
    samples["push_session"], _ = timed([*git, "push", "--quiet", REMOTE, refspec], env=env)
    samples["push_bare"], _ = timed([*git, "push", "--quiet", "bare", refspec], env=env)
    samples["push_worktree"], _ = timed([*git, "push", "--quiet", "worktree", refspec], env=env)
    checked_out = run(["podman", "exec", AGENT, "sh", "-c",
                       f"find {WORKSPACE}/ -name 'file*.txt' | wc -l"]).stdout.strip()
    if checked_out != str(FILES):
        raise BenchError(f"the session's work tree has {checked_out} files, not {FILES}")
    samples["fetch_session"], _ = timed([*git, "fetch", "--quiet", REMOTE], env=env)
    samples["fetch_bare"], _ = timed([*git, "fetch", "--quiet", "bare"], env=env)
    samples["exec_true"], _ = timed(["podman", "exec", AGENT, "true"], env=env)
    shown = "  ".join(f"{key}={value:.3f}s" for key, value in samples.items())
    print(f"run {index}/{total}: {shown}", flush=True)
    return samples


# ---------------------------------------------------------------- report


def build_report(samples: dict[str, list[float]], *, base_image: str) -> dict[str, object]:
    """The JSON report: machine, raw samples, statistics and overhead ratios."""
    stats = {key: Stats.of(values) for key, values in samples.items()}

    def ratio(a: str, b: str) -> float:
        return round(stats[a].median / stats[b].median, 2)

    return {
        "schema": 1,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "runs": len(samples["push_session"]),
        "files": FILES,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "podman": tool_version(["podman", "--version"]),
            "git": tool_version(["git", "--version"]),
            "paude_commit": source_revision(),
            "base_image": base_image,
        },
        "steps": {key: {"label": STEPS[key], "samples": [round(v, 4) for v in values],
                        "median": round(stats[key].median, 4),
                        "min": round(stats[key].minimum, 4),
                        "max": round(stats[key].maximum, 4)}
                  for key, values in samples.items()},
        "ratios": {
            "push_session/push_bare": ratio("push_session", "push_bare"),
            "push_session/push_worktree": ratio("push_session", "push_worktree"),
            "fetch_session/fetch_bare": ratio("fetch_session", "fetch_bare"),
        },
        "overhead_seconds": {
            "push": round(stats["push_session"].median - stats["push_worktree"].median, 4),
            "fetch": round(stats["fetch_session"].median - stats["fetch_bare"].median, 4),
        },
    }


def render_table(report: Mapping[str, object]) -> str:
    """The report as a plain-text table."""
    steps, ratios, overhead = report["steps"], report["ratios"], report["overhead_seconds"]
    machine = report["machine"]
    assert isinstance(steps, dict) and isinstance(ratios, dict)
    assert isinstance(overhead, dict) and isinstance(machine, dict)
    lines = [f"git through a paude session: {report['runs']} runs, {machine['cpus']} CPUs, "
             f"{machine['podman']}, {machine['git']}", "",
             f"{'step':<46}{'median':>9}{'min':>9}{'max':>9}"]
    for key, label in STEPS.items():
        row = steps[key]
        lines.append(f"{label:<46}{row['median']:>8.3f}s{row['min']:>8.3f}s{row['max']:>8.3f}s")
    lines += ["", "ratios of medians:"]
    lines += [f"  {key:<28} {value:.2f}x" for key, value in ratios.items()]
    lines += ["", "added by the session remote (medians): "
              f"push {overhead['push']:+.3f}s vs the local work tree, "
              f"fetch {overhead['fetch']:+.3f}s vs the local bare repository"]
    return "\n".join(lines)


# ---------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    return bench_args(argv, __doc__,
                      keep_images_help="keep agent/proxy images the session's apply built")


def cleanup(setup: Setup | None, images_before: set[str] | None, *, keep_images: bool) -> None:
    """Destroy the session with its workspace; remove anything labelled with it."""
    if setup is not None:
        result = run([setup.paude, "destroy", SESSION, "--yes", "--delete-data", "--force"],
                     env=setup.env, cwd=setup.repo, check=False)
        if result.returncode != 0:
            print(f"warning: cleanup: destroy exited {result.returncode}", file=sys.stderr)
    try:
        remove_labelled(SESSION_LABEL)
    except BenchError as exc:
        print(f"warning: cleanup by label {SESSION_LABEL}: {exc}", file=sys.stderr)
    if not keep_images and images_before is not None:
        remove_new_images(images_before)


def benchmark(args: argparse.Namespace) -> dict[str, object]:
    """Apply the session, run the measured runs and clean up whatever happens."""
    base_image = os.environ.get("PAUDE_TEST_BASE_IMAGE") or DEFAULT_BASE_IMAGE
    paude = find_paude()
    engine_dir = find_engine_dir()
    if run(["podman", "image", "exists", base_image], check=False).returncode != 0:
        raise BenchError(f"base image {base_image} does not exist: run `make base-image` "
                         "or set PAUDE_TEST_BASE_IMAGE")
    if run(["podman", "ps", "--all", "--quiet", "--filter", f"label={SESSION_LABEL}"]).stdout:
        raise BenchError(f"containers labelled {SESSION_LABEL} already exist; the benchmark "
                         f"would remove them: destroy session {SESSION} first")
    setup: Setup | None = None
    images_before: set[str] | None = None
    samples: dict[str, list[float]] = {key: [] for key in STEPS}
    with tempfile.TemporaryDirectory(prefix="paude-git-bench-") as tmp:
        try:
            images_before = paude_images()
            setup = make_setup(Path(tmp), base_image=base_image, engine_dir=engine_dir,
                               paude=paude)
            print(f"applying session {SESSION}...", flush=True)
            seconds, _ = timed([paude, "apply", SESSION, "--yes"], env=setup.env, cwd=setup.repo)
            print(f"applied in {seconds:.1f}s", flush=True)
            for index in range(1, args.runs + 1):
                for key, value in one_run(setup, index, args.runs).items():
                    samples[key].append(value)
        finally:
            with interrupts_deferred():
                cleanup(setup, images_before, keep_images=args.keep_images)
    return build_report(samples, base_image=base_image)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; 0 when every command succeeded."""
    return run_main(parse_args(argv), benchmark, render_table, RESULTS_FILE)


if __name__ == "__main__":
    sys.exit(main())
