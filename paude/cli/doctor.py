"""`paude doctor`: report the engine, podman, base image and state backend, with fixes, and
the effective settings of this machine with where each comes from."""

from __future__ import annotations

from pathlib import Path

import typer

from paude.cli import output
from paude.home import paude_home


def doctor() -> int:
    """Check that everything paude needs is installed and usable, and show the settings in
    effect ($PAUDE_HOME/config.yaml under the current repository's paude.yaml).

    Examples:\n
      paude doctor
    """
    # Imported here: the settings pull in the models (pydantic), which every other command's
    # start, `--help` included, would pay for.
    from paude import diagnose, settings

    home = paude_home()
    checks = diagnose.run_all(home)
    for check in checks:
        output.text(f"{'ok  ' if check.ok else 'FAIL'} {check.name:<7} {check.detail}")
        if check.fix:
            output.text(f"     fix: {check.fix}")
    found = diagnose.effective_settings(home, Path.cwd())
    read = f"{found.machine_file}" + (f", {found.paude_file}" if found.paude_file else "")
    output.text(f"\nsettings (from {read}; precedence: {settings.PRECEDENCE}):")
    width = max((len(row.name) for row in found.rows), default=0)
    for row in found.rows:
        output.text(f"  {row.name:<{width}}  {row.value}  [{row.origin}]")
    if found.problem:
        output.text(f"  {found.problem}")
    return 0 if all(c.ok for c in checks) and not (found.problem and not found.rows) else 1


def register(app: typer.Typer) -> None:
    """Add the doctor command."""
    app.command()(doctor)
