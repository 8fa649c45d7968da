"""The local session index: what `list`, `status` and the git helper know without the engine.

One JSON file per applied session under PAUDE_HOME/sessions/NAME.json, written after
every apply and removed by destroy. The stack remains the truth; this is a cache."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from paude.home import paude_home


@dataclass(frozen=True)
class IndexEntry:
    """What paude remembers about an applied session."""

    name: str
    backend: str
    owner: str
    applied_at: float
    agent_image: str = ""
    context: str | None = None  # openshift: kubeconfig context
    namespace: str | None = None  # openshift: namespace

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IndexEntry:
        """Tolerant of older and newer files: unknown keys are ignored."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


def _folder() -> Path:
    return paude_home() / "sessions"


def write(name: str, *, backend: str, owner: str, outputs: dict[str, Any]) -> IndexEntry:
    """Record a session after an apply (atomically)."""
    entry = IndexEntry(name, backend, owner, time.time(), str(outputs.get("agent_image", "")),
                       outputs.get("context"), outputs.get("namespace"))
    path = _folder() / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(entry), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return entry


def remove(name: str) -> None:
    """Forget a destroyed session."""
    (_folder() / f"{name}.json").unlink(missing_ok=True)


def read(name: str) -> IndexEntry | None:
    """One session's entry, or None."""
    path = _folder() / f"{name}.json"
    try:
        return IndexEntry.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def read_all() -> list[IndexEntry]:
    """Every recorded session, by name."""
    entries = []
    for path in sorted(_folder().glob("*.json")):
        entry = read(path.stem)
        if entry is not None:
            entries.append(entry)
    return entries
