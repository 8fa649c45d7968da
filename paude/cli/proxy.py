"""`paude blocked` and `paude policies`: what the sandbox refuses, and the rules every
plan must pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from paude import policy, sessions
from paude.cli import output
from paude.config import find_project_root


def blocked(
    name: Annotated[str, typer.Argument(help="Session name.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
    last: Annotated[int, typer.Option("--last", "-n", help="Show only the last N.")] = 50,
) -> int:
    """List the requests the session's proxy or model gateway refused.

    Names off the allowlist, IP addresses and other ports are refused and logged, and so
    is every call to the model gateway that is not a model API call.

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
    if any(r.result.startswith("GATEWAY_") for r in records):
        output.text("GATEWAY_DENIED: the model gateway forwards only model API calls; "
                    "nothing else can be allowed through it.")
    return 0


def policies(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
) -> int:
    """List the policy rules every plan and apply of this repository must pass.

    Levels come from the built-in defaults, ~/.paude/policy.yaml and paude-policy.yaml
    (the strictest wins; see docs/policies.md).

    Examples:\n
      paude policies\n
      paude policies --json | jq -r '.[] | select(.level == "mandatory") | .id'
    """
    rows, files = policy.effective(find_project_root(Path.cwd()))
    if as_json:
        output.text(json.dumps([r.to_json() for r in rows], indent=2))
        return 0
    width = max(len(r.id) for r in rows)
    for r in rows:
        output.text(f"{r.level:<10} {r.id:<{width}}  {r.description}")
    read = ", ".join(str(f) for f in files) or "none (built-in levels)"
    output.text(f"Policy files: {read}")
    return 0


def register(app: typer.Typer) -> None:
    """Add the sandbox commands."""
    app.command()(blocked)
    app.command()(policies)
