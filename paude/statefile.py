"""A stack's last deployment read straight from a file:// state backend.

Every paude command that opens a stack needs its deployment (pending operations, outputs).
Asking the engine (`pulumi stack select`, then `pulumi stack export`) starts it twice; the
file backend's checkpoint is a JSON file paude can read itself. Anything unexpected (another
backend, a compressed or unreadable file) is left to the engine."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from paude.locks import backend_root

# The stack has no state file: it does not exist (the engine would say the same).
MISSING: dict[str, Any] = {"missing": True}


def _candidates(root: Path, project: str, stack: str) -> list[Path]:
    # Project-scoped layout (meta.yaml version 1), then the legacy one.
    return [root / ".pulumi" / "stacks" / project / f"{stack}.json",
            root / ".pulumi" / "stacks" / f"{stack}.json"]


def read(backend_url: str, project: str, stack: str) -> dict[str, Any] | None:
    """The stack's deployment; MISSING when a file backend holds no such stack; None when
    only the engine can tell."""
    root = backend_root(backend_url)
    if root is None or not root.is_dir():
        return None
    stacks = root / ".pulumi" / "stacks"
    for path in _candidates(root, project, stack):
        if path.with_name(path.name + ".gz").exists():
            return None  # compressed state: the engine reads it
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        checkpoint = data.get("checkpoint") if isinstance(data, dict) else None
        if not isinstance(checkpoint, dict):
            return None
        latest = checkpoint.get("latest")
        return dict(latest) if isinstance(latest, dict) else {}
    # No file: missing, unless the backend does not look like one the engine wrote.
    return MISSING if (root / ".pulumi" / "meta.yaml").exists() or stacks.is_dir() else None


def last_update(backend_url: str, project: str, stack: str) -> dict[str, Any] | None:
    """The newest update record in a file backend's history (what `pulumi stack history
    --page-size 1` prints, in the file's own form); None when only the engine can tell."""
    root = backend_root(backend_url)
    if root is None:
        return None
    history = root / ".pulumi" / "history"
    for folder in (history / project / stack, history / stack):
        try:
            names = [entry.name for entry in os.scandir(folder)]
        except OSError:
            continue
        stamps = [int(m.group(1)) for n in names
                  if (m := re.fullmatch(rf"{re.escape(stack)}-(\d+)\.history\.json", n))]
        if not stamps or any(n.endswith(".history.json.gz") for n in names):
            return None
        try:
            data = json.loads((folder / f"{stack}-{max(stamps)}.history.json").read_text(
                encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return None
        return data if isinstance(data, dict) else None
    return None
