"""`paude blocked`: what the sandbox refused."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from paude import sessions
from paude.cli import output


def blocked(
    name: Annotated[str, typer.Argument(help="Session name.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
    last: Annotated[int, typer.Option("--last", "-n", help="Show only the last N.")] = 50,
) -> int:
    """List the requests the session's proxy refused.

    Names off the allowlist, IP addresses and other ports are refused and logged.

    Examples:\n
      paude blocked demo\n
      paude blocked demo --json | jq -r '.[].url' | sort -u
    """
    records = sessions.blocked(name)[-last:] if last > 0 else sessions.blocked(name)
    if as_json:
        output.text(json.dumps([r.to_json() for r in records], indent=2))
        return 0
    if not records:
        output.text(f"No blocked requests for session {name}.")
        return 0
    for r in records:
        output.text(f"{r.time:%Y-%m-%d %H:%M:%S}  {r.method:<7} {r.url}  ({r.status} {r.result})")
    output.text(f"{len(records)} blocked. To allow a name, add it to allowed_domains in "
                "paude.yaml, then `paude plan` and `paude apply`.")
    return 0


def register(app: typer.Typer) -> None:
    """Add the proxy commands."""
    app.command()(blocked)
