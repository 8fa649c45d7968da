"""The local session index: what `list`, `status` and the git helper know without the engine.

One JSON file per applied session under PAUDE_HOME/sessions/NAME.json, written after
every apply and removed by destroy. The stack remains the truth; this is a cache."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
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
    # The definition files (relative path -> digest) and HEAD commit the last apply used;
    # empty in files written before paude recorded them.
    definition_inputs: dict[str, str] = field(default_factory=dict)
    definition_head: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IndexEntry:
        """Tolerant of older and newer files: unknown keys are ignored, and a malformed
        definition record counts as none."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        inputs = known.get("definition_inputs")
        if not (isinstance(inputs, dict)
                and all(isinstance(k, str) and isinstance(v, str) for k, v in inputs.items())):
            known.pop("definition_inputs", None)
        if not isinstance(known.get("definition_head", ""), str):
            known.pop("definition_head")
        return cls(**known)


def _folder() -> Path:
    return paude_home() / "sessions"


def write(name: str, *, backend: str, owner: str, outputs: dict[str, Any],
          definition: Mapping[str, str] | None = None, head: str = "") -> IndexEntry:
    """Record a session after an apply (atomically), with the definition it applied."""
    entry = IndexEntry(name, backend, owner, time.time(), str(outputs.get("agent_image", "")),
                       outputs.get("context"), outputs.get("namespace"),
                       dict(definition or {}), head)
    path = _folder() / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    # One temporary file per process: two writers never share (or rename) a half-written one.
    tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(entry), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    _checked(name).unlink(missing_ok=True)  # the agent runs again: a new delete checks again
    return entry


def remove(name: str) -> None:
    """Forget a destroyed session."""
    (_folder() / f"{name}.json").unlink(missing_ok=True)
    _checked(name).unlink(missing_ok=True)


def _checked(name: str) -> Path:
    return _folder() / f"{name}.delete-checked"


def mark_delete_checked(name: str) -> None:
    """Record that a delete found no unfetched work and starts removing the session.

    If that delete is killed after the agent is down, running it again cannot look inside
    any more, and need not: nothing has run the agent since the check. An apply (write), a
    start, or the end of the delete (remove) clears the record."""
    path = _checked(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()


def forget_delete_check(name: str) -> None:
    """The agent runs again (a start): a delete must check afresh."""
    _checked(name).unlink(missing_ok=True)


def delete_checked(name: str) -> bool:
    """Whether a delete that was interrupted had already checked for unfetched work."""
    return _checked(name).exists()


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
