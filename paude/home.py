"""PAUDE_HOME: where paude keeps state, engine binaries, caches and secrets."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path


def paude_home() -> Path:
    """The PAUDE_HOME directory (default ~/.paude), created on first use."""
    home = Path(os.environ.get("PAUDE_HOME") or Path.home() / ".paude").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def default_backend_url(home: Path) -> str:
    """The local file state backend under PAUDE_HOME: no account, no login."""
    state = home / "state"
    state.mkdir(parents=True, exist_ok=True)
    return f"file://{state}"


def passphrase(home: Path) -> str:
    """The secrets passphrase: PULUMI_CONFIG_PASSPHRASE, else one generated and kept 0600."""
    from_env = os.environ.get("PULUMI_CONFIG_PASSPHRASE")
    if from_env is not None:
        return from_env
    path = home / "passphrase"
    if not path.exists():
        # Written in full under a temporary name, then linked into place, which fails if the
        # name exists: two first runs racing agree on one passphrase, and neither can read
        # the other's file empty (nor can a run killed half-way leave it so).
        fd, tmp = tempfile.mkstemp(prefix=".passphrase.", dir=home)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(secrets.token_urlsafe(32) + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)
    return path.read_text(encoding="utf-8").strip()


def write_if_changed(path: Path, content: str, *, mode: int = 0o644) -> None:
    """Write a file paude generates, atomically (a process beside this one, or one killed
    half-way, never leaves or reads it half-written), and only when its content changes."""
    try:
        if path.read_text(encoding="utf-8") == content:
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
