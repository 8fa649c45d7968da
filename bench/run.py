"""Benchmark paude against the plain podman commands that make the same session.

Usage: python bench/run.py [--runs N] [--keep-images]

Each run times, with the real `paude` CLI in a throwaway repository and PAUDE_HOME:
(a) apply of a new session (images already built) against (d0) the podman commands that
make the same objects (bench/podman_baseline.sh), then a no-op plan and apply, an
allowlist change, `paude --help`, `list`, `status` and `start` against the podman commands
they replace, the engine's floor (a no-op preview of an empty program) and, when
installed, `devcontainer up`. One more, untimed apply records peak memory. The table is
printed and written to bench/results/latest.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from baseline import SessionFacts, session_facts, time_baseline, time_podman_start
from common import BENCH_DIR, podman_lines
from common import BenchError as BenchError
from common import Stats as Stats
from common import interrupts_deferred as interrupts_deferred
from common import remove_labelled as remove_labelled
from common import run as run
from common import timed as timed
from extras import (
    devcontainer_up,
    engine_floor,
    find_devcontainer,
    interpreter_of,
    peak_memory,
)
from report import SETTLE_SECONDS, STEPS, build_report, render_table

RESULTS_FILE = BENCH_DIR / "results" / "latest.json"

SESSION = "bench"
BENCH_LABEL = "paude.bench=1"
SESSION_LABEL = f"paude.session={SESSION}"
DEFAULT_BASE_IMAGE = "localhost/paude-base:bookworm"
PAUDE_IMAGE_REPOSITORIES = ("localhost/paude-agent", "localhost/paude-proxy")
# The reference baseline waits this long for each new container to stay running (what
# paude did before it probed readiness).
# An allowlist entry the change step adds: the proxy's configuration changes, nothing else.
EXTRA_DOMAIN = ".bench.example.com"


@dataclass(frozen=True)
class Sandbox:
    """The throwaway repository and PAUDE_HOME the benchmark drives paude in."""

    repo: Path
    home: Path
    paude: str
    env: Mapping[str, str]
    engine_dir: Path = Path()
    base_image: str = DEFAULT_BASE_IMAGE


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


def proxy_base_image(base_image: str) -> str:
    """The proxy's base in the bench's sessions: the one `make setup` builds (the rebuilt
    squid) when the environment names it (the Makefile does), else the agent's base."""
    return os.environ.get("PAUDE_TEST_PROXY_BASE_IMAGE") or base_image


def require_images(base_image: str) -> None:
    """Refuse to start without the base images: a missing one would fail in the warm-up."""
    for image, setting, build in (
            (base_image, "PAUDE_TEST_BASE_IMAGE", "make base-image"),
            (proxy_base_image(base_image), "PAUDE_TEST_PROXY_BASE_IMAGE", "make proxy-base")):
        if run(["podman", "image", "exists", image], check=False).returncode != 0:
            raise BenchError(f"base image {image} does not exist: run `{build}` or set "
                             f"{setting}")


def make_sandbox(root: Path, *, base_image: str, engine_dir: Path, paude: str,
                 session: str = SESSION) -> Sandbox:
    """A git repository with paude.yaml and a PAUDE_HOME that reuses the engine."""
    repo, home = root / "repo", root / "home"
    (home / "bin").mkdir(parents=True)
    for item in sorted(engine_dir.iterdir()):
        if item.is_file():
            (home / "bin" / item.name).symlink_to(item.resolve())
    # The machine's settings: the proxy's base image is never the repository's choice. Its
    # base is the one `make setup` builds (the rebuilt squid) when the environment names it.
    proxy_base = proxy_base_image(base_image)
    (home / "config.yaml").write_text(
        f"version: 1\nimage: {{base: {base_image}}}\nproxy: {{base: {proxy_base}}}\n",
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
    # An installed paude has its bytecode compiled (pip writes it): without it every Python
    # process a command starts (paude, the policy pack, each provider) compiles paude anew.
    env = {k: v for k, v in os.environ.items()
           if k not in ("PAUDE_STATE_BACKEND", "PYTHONDONTWRITEBYTECODE")}
    env.update({"PAUDE_HOME": str(home), "PULUMI_SKIP_UPDATE_CHECK": "true"})
    return Sandbox(repo, home, paude, env, engine_dir, base_image)


def paude_images() -> set[str]:
    """Tags of paude's agent and proxy images present now."""
    tags: set[str] = set()
    for repository in PAUDE_IMAGE_REPOSITORIES:
        tags.update(podman_lines("images", "--filter", f"reference={repository}",
                                 "--format", "{{.Repository}}:{{.Tag}}"))
    return tags


# ---------------------------------------------------------------- steps


def paude_cmd(sandbox: Sandbox, *args: str) -> list[str]:
    """argv for one paude command."""
    return [sandbox.paude, *args]


def destroy_session(sandbox: Sandbox, *, check: bool = True) -> None:
    """Remove the bench session and its workspace (untimed)."""
    run(paude_cmd(sandbox, "destroy", SESSION, "--yes", "--delete-data"),
        env=sandbox.env, cwd=sandbox.repo, check=check)


def _paude(sandbox: Sandbox, *args: str, ok_codes: tuple[int, ...] = (0,)) -> tuple[float, int]:
    return timed(paude_cmd(sandbox, *args), env=sandbox.env, cwd=sandbox.repo,
                 ok_codes=ok_codes)


def _set_domains(sandbox: Sandbox, extra: bool) -> None:
    """paude.yaml's bench session: no settings, or one more allowlist entry."""
    text = (sandbox.repo / "paude.yaml").read_text(encoding="utf-8")
    plain = f"  {SESSION}: {{}}\n"
    changed = f"  {SESSION}: {{allowed_domains: [default, {EXTRA_DOMAIN}]}}\n"
    text = text.replace(changed, plain) if not extra else text.replace(plain, changed)
    (sandbox.repo / "paude.yaml").write_text(text, encoding="utf-8")


def _container_ids() -> dict[str, str]:
    names = podman_lines("ps", "--filter", f"label={SESSION_LABEL}",
                         "--format", "{{.Names}} {{.ID}}")
    return dict(line.split() for line in names)


def one_run(sandbox: Sandbox, warm: SessionFacts, index: int,
            total: int) -> dict[str, float]:
    """Time every step once, leaving nothing behind."""
    samples: dict[str, float] = {}
    samples["apply_new"], _ = _paude(sandbox, "apply", SESSION, "--yes")
    facts = session_facts(SESSION)
    if (facts.proxy_image, facts.agent_image) != (warm.proxy_image, warm.agent_image):
        # paude is installed from this checkout: an edit to its image inputs during the
        # benchmark makes (a) include a build.
        raise BenchError(f"image tags changed since the warm-up ({warm.agent_image}, "
                         f"{warm.proxy_image} -> {facts.agent_image}, {facts.proxy_image}): "
                         "(a) included an image build; run the benchmark again")
    # --detailed-exitcode: a plan that finds changes right after apply is not a no-op.
    samples["plan_noop"], code = _paude(sandbox, "plan", SESSION, "--detailed-exitcode",
                                        ok_codes=(0, 2))
    if code == 2:
        raise BenchError("`paude plan` right after apply reported changes; the no-op "
                         "timings would be meaningless (run `paude plan bench` to see them)")
    samples["apply_noop"], _ = _paude(sandbox, "apply", SESSION, "--yes")
    if session_facts(SESSION).container_ids != facts.container_ids:
        raise BenchError("a no-op `paude apply` replaced containers")
    before = _container_ids()
    _set_domains(sandbox, extra=True)
    try:
        samples["apply_allowlist"], _ = _paude(sandbox, "apply", SESSION, "--yes")
    finally:
        _set_domains(sandbox, extra=False)
    after = _container_ids()
    replaced = sorted(name for name, cid in after.items() if before.get(name) != cid)
    if replaced != [f"paude-{SESSION}-proxy"]:
        raise BenchError(f"an allowlist change replaced {replaced or 'nothing'}, "
                         "not the proxy alone")
    samples["help"], _ = _paude(sandbox, "--help")
    samples["list"], _ = _paude(sandbox, "list")
    samples["podman_ps"], _ = timed(["podman", "ps", "--all", "--filter",
                                     "label=paude.managed=true", "--format", "json"])
    samples["status"], _ = _paude(sandbox, "status", SESSION)
    samples["podman_inspect"], _ = timed(["podman", "container", "inspect",
                                          *(f"paude-{SESSION}-{r}" for r in ("agent", "proxy"))])
    _paude(sandbox, "stop", SESSION)
    samples["podman_start"] = time_podman_start(SESSION)
    samples["start"], _ = _paude(sandbox, "start", SESSION, "--no-attach")
    destroy_session(sandbox)
    env_dir = sandbox.home.parent / "baseline-env"
    samples["baseline"] = time_baseline(sandbox.env, facts, SETTLE_SECONDS, env_dir)
    samples["baseline_nosettle"] = time_baseline(sandbox.env, facts, 0.0, env_dir)
    samples["engine_floor"] = engine_floor(sandbox.home.parent / "floor", sandbox.engine_dir,
                                           interpreter_of(sandbox.paude))
    devcontainer = find_devcontainer()
    if devcontainer is not None:
        samples["devcontainer"] = devcontainer_up(devcontainer, sandbox.home.parent,
                                                  sandbox.base_image)
    shown = "  ".join(f"{key}={value:.2f}s" for key, value in samples.items())
    print(f"run {index}/{total}: {shown}", flush=True)
    return samples


# ---------------------------------------------------------------- cleanup


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
    require_images(base_image)
    if podman_lines("ps", "--all", "--filter", f"label={SESSION_LABEL}", "--format", "{{.ID}}"):
        raise BenchError(f"containers labelled {SESSION_LABEL} already exist; the benchmark "
                         f"would remove them: destroy session {SESSION} first")
    sandbox: Sandbox | None = None
    images_before: set[str] | None = None
    samples: dict[str, list[float]] = {key: [] for key in STEPS}
    memory: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="paude-bench-") as tmp:
        try:
            sandbox = make_sandbox(Path(tmp), base_image=base_image, engine_dir=engine_dir,
                                   paude=paude)
            images_before = paude_images()
            print("warm-up: building images (first apply)...", flush=True)
            seconds, _ = timed(paude_cmd(sandbox, "apply", SESSION, "--yes"),
                               env=sandbox.env, cwd=sandbox.repo)
            warm = session_facts(SESSION)
            destroy_session(sandbox)
            print(f"warm-up done in {seconds:.1f}s", flush=True)
            for index in range(1, args.runs + 1):
                for key, value in one_run(sandbox, warm, index, args.runs).items():
                    samples[key].append(value)
            # Sampling /proc costs CPU: memory comes from one more apply, not timed.
            memory = asdict(peak_memory(paude_cmd(sandbox, "apply", SESSION, "--yes"),
                                        env=sandbox.env, cwd=sandbox.repo))
            destroy_session(sandbox)
        finally:
            with interrupts_deferred():
                cleanup(sandbox, images_before, keep_images=args.keep_images)
    return build_report(samples, base_image=base_image, engine_dir=engine_dir,
                        memory=memory)


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
