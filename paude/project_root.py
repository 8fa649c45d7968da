"""Where a repository's paude.yaml is: light enough for the quick commands to import."""

from __future__ import annotations

from pathlib import Path

PAUDE_FILE = "paude.yaml"


def find_project_root(start: Path) -> Path:
    """Nearest ancestor holding paude.yaml, else the git top-level, else start."""
    start = start.absolute()
    for folder in (start, *start.parents):
        if (folder / PAUDE_FILE).is_file():
            return folder
        # A paude.yaml above the repository belongs to someone else (a shared /tmp,
        # a home folder): it must not silently define this repository's sessions.
        if (folder / ".git").exists():
            return folder
    return start
