"""Reads a process's cgroup files on the host: its enforced limits and memory kills.

Kept apart from paude/sizing.py (the resources schema) so `paude status` and the stack's
refresh read them without importing the schema models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def cgroup_reader(pid: int, root: Path) -> Callable[[str, str, str], str | None] | None:
    """A reader of one process's cgroup files: read(controller, v1 name, v2 name) gives the
    first that exists (cgroup v1's per-controller tree, else v2's unified one); None when
    the process is gone. Host files only, never written."""
    try:
        lines = (root / f"proc/{pid}/cgroup").read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    paths = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            paths[controller] = path.lstrip("/")
    base = root / "sys/fs/cgroup"

    def read(controller: str, v1: str, v2: str) -> str | None:
        candidates = []
        if controller in paths:
            candidates.append(base / controller / paths[controller] / v1)
        if "" in paths:
            candidates.append(base / paths[""] / v2)
        for file in candidates:
            try:
                return file.read_text(encoding="ascii").strip()
            except (OSError, UnicodeDecodeError):
                continue
        return None

    return read


def memory_kills(pid: int, root: Path = Path("/")) -> int | None:
    """How many processes the kernel killed in a running container for reaching its memory
    limit (the container itself lives on while its main process does); None: unknown."""
    read = cgroup_reader(pid, root)
    text = read("memory", "memory.oom_control", "memory.events") if read else None
    for entry in (text or "").splitlines():
        key, _, value = entry.partition(" ")
        if key == "oom_kill" and value.isdigit():
            return int(value)
    return None
