"""`paude blocked` and `paude policies`: what the sandbox refuses, and the rules every
plan must pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from paude.cli import output

if TYPE_CHECKING:
    from paude.proxylog import ProxyRequest

# Service modules are imported by each command, not here: `paude --help` and `paude list`
# must not pay for pulumi and the schema models.


def blocked(
    name: Annotated[str, typer.Argument(help="Session name.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
    last: Annotated[int, typer.Option("--last", "-n", min=0,
                                      help="Show only the last N (0: all).")] = 50,
) -> int:
    """List the requests the session's proxy or model gateway refused, and the rule that
    refused each.

    Names off the allowlist, IP addresses, other ports, methods and paths no rule of the
    host allows, denied_requests entries, and every call to the model gateway that is not
    a model API call are refused and logged.

    Examples:\n
      paude blocked demo\n
      paude blocked demo --json | jq -r '.[] | "\\(.method) \\(.host)\\(.path) \\(.rule)"'
    """
    from paude import inspection

    records = [r for r in inspection.audit(name) if r.blocked]
    records = records[-last:] if last > 0 else records
    if as_json:
        output.text(json.dumps([r.to_json() for r in records], indent=2))
        return 0
    if not records:
        output.text(f"No blocked requests for session {name}.")
        return 0
    for r in records:
        output.text(_line(r))
    output.text(f"{len(records)} blocked. To allow a name, add it to allowed_domains in "
                "paude.yaml (a method or path: an entry with methods/paths), then "
                "`paude plan` and `paude apply`.")
    if any(r.result.startswith("GATEWAY_") for r in records):
        output.text("GATEWAY_DENIED: the model gateway forwards only model API calls; "
                    "nothing else can be allowed through it.")
    return 0


def log(
    name: Annotated[str, typer.Argument(help="Session name.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
    last: Annotated[int, typer.Option("--last", "-n", min=0,
                                      help="Show only the last N (0: all).")] = 50,
) -> int:
    """Show the session's egress audit log: every request through its proxy and model
    gateway, allowed or refused, with the rule that decided.

    Inspected hosts (those with method/path rules) show each request; other hosts show
    the CONNECT that opened their tunnel.

    Examples:\n
      paude log demo\n
      paude log demo --json --last 0 | jq -r '.[] | select(.decision == "allow") | .host'
    """
    from paude import inspection

    records = inspection.audit(name)
    records = records[-last:] if last > 0 else records
    if as_json:
        output.text(json.dumps([r.to_json() for r in records], indent=2))
        return 0
    for r in records:
        output.text(_line(r))
    if not records:
        output.text(f"No requests logged for session {name}.")
    return 0


def _line(r: ProxyRequest) -> str:
    from paude.provenance import printable

    # The agent chose every URL here; printable() keeps its bytes off the terminal.
    decision = r.decision or ("deny" if r.blocked else "allow")
    rule = f" [{printable(r.rule, 60)}]" if r.rule else ""
    mode = " inspected" if r.tls == "bump" else ""
    error = f" error={printable(r.error, 80)}" if r.error else ""
    return (f"{r.time:%Y-%m-%d %H:%M:%S}  {decision:<5} {printable(r.method, 10):<7} "
            f"{printable(r.url, 160)}  ({r.status} {printable(r.result, 30)}{mode}){rule}"
            f"{error}")


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
    from paude import policy
    from paude.config import find_project_root

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
    app.command()(log)
    app.command()(policies)
