"""`paude doctor`: report the engine, podman and state backend, with fixes."""

from __future__ import annotations

import typer

from paude import diagnose
from paude.cli import output
from paude.home import paude_home


def doctor() -> int:
    """Check that everything paude needs is installed and usable.

    Examples:\n
      paude doctor
    """
    checks = diagnose.run_all(paude_home())
    for check in checks:
        output.text(f"{'ok  ' if check.ok else 'FAIL'} {check.name:<7} {check.detail}")
        if check.fix:
            output.text(f"     fix: {check.fix}")
    return 0 if all(c.ok for c in checks) else 1


def register(app: typer.Typer) -> None:
    """Add the doctor command."""
    app.command()(doctor)
