"""`paude setup`: the session's setup (run once after the first push), shown or run again."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from paude import lifecycle, workspace_setup
from paude.cli import output
from paude.cli.lifecycle import OptionalName


def setup(
    name: OptionalName = None,
    rerun: Annotated[bool, typer.Option(
        "--rerun", help="Run the setup (and venv creation) again now, in the session.")] = False,
    wait: Annotated[bool, typer.Option(
        "--wait", help="Wait until the setup has finished; exit 1 if it failed.")] = False,
    timeout: Annotated[float, typer.Option(
        "--timeout", help="Seconds --wait waits at most.", min=0)] = 1800,
    lines: Annotated[int, typer.Option("--lines", "-n", help="Log lines shown.", min=0)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> int:
    """Show the session's setup: its state and the end of its log. The setup (paude.yaml
    `setup`, devcontainer `postCreateCommand`) and `venv` run once inside the session,
    after the first push of the code; --rerun runs them again.

    Examples:\n
      paude setup my-project\n
      paude setup my-project --rerun --wait
    """
    session = lifecycle.resolve_name(name)
    backend = workspace_setup.running_backend(session)
    if rerun:
        workspace_setup.rerun(backend, session)
        if not wait and not as_json:
            output.text(f"Setup of session {session} started again: follow it with `paude "
                        f"connect {session}` (tmux window `setup`) or `paude setup {session}`.")
    if wait:
        workspace_setup.wait(backend, session, timeout=timeout)
    found = workspace_setup.state(backend, session, tail=lines)
    if as_json:
        output.text(json.dumps(found.to_json(), indent=2))
    elif not rerun or wait:
        output.text(f"Setup of session {session}: {found.describe(session)}")
        for line in found.tail:
            output.text(f"  | {line}")
    if wait and not found.finished:
        output.error(f"the setup of session {session} has not finished ({found.state})")
        return 1
    return 1 if wait and found.state == "failed" else 0


def register(app: typer.Typer) -> None:
    """Add the setup command."""
    app.command()(setup)
