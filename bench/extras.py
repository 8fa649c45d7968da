"""Rows beside paude's own: the engine's floor, the Dev Containers CLI, and peak memory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from common import BenchError, failure, run, timed

BENCH_DIR = Path(__file__).resolve().parent
FLOOR_SCRIPT = BENCH_DIR / "engine_floor.py"
# Where `npm install -g --prefix` puts the Dev Containers CLI for the bench (bench/README).
DEVCONTAINER_PREFIX = Path.home() / ".cache" / "paude-bench-npm"
DEVCONTAINER_LABEL = "paude.bench.devcontainer=1"
_PAGE = os.sysconf("SC_PAGE_SIZE")


def engine_floor(state: Path, engine_dir: Path, python: str) -> float:
    """Seconds for one process that previews an empty program with the same engine and
    Automation API (the stack is made by a first, untimed run)."""
    version = run([str(engine_dir / "pulumi"), "version"]).stdout.strip()
    argv = [python, str(FLOOR_SCRIPT), str(state), str(engine_dir), version]
    if not (state / "project").exists():
        run(argv)
    seconds, _ = timed(argv)
    return seconds


def find_devcontainer() -> str | None:
    """The Dev Containers CLI: on PATH, else in the bench's npm prefix; None when absent."""
    found = shutil.which("devcontainer")
    private = DEVCONTAINER_PREFIX / "bin" / "devcontainer"
    return found or (str(private) if private.exists() else None)


def devcontainer_up(cli: str, root: Path, base_image: str) -> float:
    """Seconds for `devcontainer up` of a folder whose devcontainer.json names the base
    image (podman as its engine); the container is removed again untimed."""
    folder = root / "devcontainer"
    (folder / ".devcontainer").mkdir(parents=True, exist_ok=True)
    (folder / ".devcontainer" / "devcontainer.json").write_text(
        f'{{"image": "{base_image}"}}\n', encoding="utf-8")
    try:
        seconds, _ = timed([cli, "up", "--workspace-folder", str(folder), "--docker-path",
                            "podman", "--id-label", "paude.bench=1",
                            "--id-label", DEVCONTAINER_LABEL])
    finally:
        ids = run(["podman", "ps", "--all", "--quiet", "--filter",
                   f"label={DEVCONTAINER_LABEL}"]).stdout.split()
        if ids:
            run(["podman", "rm", "--force", "--time", "1", *ids], check=False)
    return seconds


@dataclass(frozen=True)
class PeakMemory:
    """Peak resident memory (MiB) of one command's process tree, sampled every 20 ms."""

    paude: float  # the paude process itself (the inline program runs in it)
    engine: float  # the pulumi engine process(es)
    helpers: float  # the rest: policy pack, dynamic providers, podman
    total: float  # the whole tree at its largest


def _tree(root: int) -> dict[int, tuple[str, int]]:
    """pid -> (command name, resident bytes) for `root` and its descendants."""
    parents: dict[int, int] = {}
    names: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as stat:
                fields = stat.read()
        except OSError:
            continue
        name = fields[fields.index("(") + 1:fields.rindex(")")]
        parents[int(entry)] = int(fields[fields.rindex(")") + 2:].split()[1])
        names[int(entry)] = name
    members, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in members:
                members.add(child)
                frontier.append(child)
    tree: dict[int, tuple[str, int]] = {}
    for pid in members:
        try:
            with open(f"/proc/{pid}/statm", encoding="ascii") as statm:
                tree[pid] = (names.get(pid, ""), int(statm.read().split()[1]) * _PAGE)
        except (OSError, ValueError, IndexError):
            continue
    return tree


def peak_memory(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path) -> PeakMemory:
    """Run a command (untimed) and sample its process tree's memory until it exits."""
    process = subprocess.Popen(list(argv), env=dict(env), cwd=cwd, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    peaks = {"paude": 0, "engine": 0, "helpers": 0, "total": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            tree = _tree(process.pid)
            own = tree.get(process.pid, ("", 0))[1]
            engine = sum(rss for pid, (name, rss) in tree.items()
                         if name == "pulumi" and pid != process.pid)
            total = sum(rss for _, rss in tree.values())
            for key, value in (("paude", own), ("engine", engine),
                               ("helpers", total - own - engine), ("total", total)):
                peaks[key] = max(peaks[key], value)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise BenchError(failure(argv, subprocess.CompletedProcess(argv, process.returncode,
                                                                   output, "")))
    mib = {k: v / (1 << 20) for k, v in peaks.items()}
    return PeakMemory(mib["paude"], mib["engine"], mib["helpers"], mib["total"])


def interpreter_of(paude: str) -> str:
    """The Python interpreter beside the paude CLI (it has pulumi), else this one."""
    beside = Path(paude).parent / "python"
    return str(beside) if beside.exists() else sys.executable
