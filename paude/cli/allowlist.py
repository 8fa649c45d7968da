"""`paude allowed-domains NAME`: show or edit a session's egress allowlist."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from paude.cli import flags, output, planview

if TYPE_CHECKING:
    from paude.results import PlanResult

def allowed_domains(
    name: Annotated[str, typer.Argument(help="Session name.", show_default=False)],
    add: Annotated[list[str] | None, typer.Option(
        "--add", help="Allow this entry too (repeatable): a group, host or .suffix.",
        show_default=False)] = None,
    remove: Annotated[list[str] | None, typer.Option(
        "--remove", help="Remove this entry as listed (repeatable).", show_default=False)] = None,
    replace: Annotated[list[str] | None, typer.Option(
        "--replace", help="The whole new list (repeatable); not with --add/--remove.",
        show_default=False)] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show the edit and the plan; change nothing.")] = False,
) -> int:
    """Show a session's egress allowlist, or edit sessions.NAME.allowed_domains in
    paude.yaml (keeping its comments) and apply it: only the proxy (and the model gateway,
    for a model route) changes; the agent keeps running. Shows the plan and asks first.

    Examples:\n
      paude allowed-domains my-project\n
      paude allowed-domains my-project --add .example.com --dry-run\n
      paude allowed-domains my-project --add github --remove pypi --yes\n
      paude allowed-domains my-project --replace default --replace api.example.com
    """
    name = flags.name(name)
    flags.alone("--replace", bool(replace), add=bool(add), remove=bool(remove))
    edits = bool(add or remove or replace)
    flags.needs("--yes", yes, "--add, --remove or --replace", edits)
    flags.needs("--dry-run", dry_run, "--add, --remove or --replace", edits)
    flags.one_of(dry_run=dry_run, yes=yes)
    from paude import allowlist_edit, ownership
    from paude.config import find_project_root
    from paude.sessions import Project

    root = find_project_root(Path.cwd().resolve())
    if not edits:
        written, effective = allowlist_edit.current(root, name)
        output.text(f"Session {name} allowed_domains: {allowlist_edit.flow(written)}")
        output.text("The proxy allows:")
        for line in effective:
            output.text(f"  {line}")
        return 0
    ownership.require(name, cwd=root)
    edit = allowlist_edit.plan_edit(root, name, add=add or (), remove=remove or (),
                                    replace=replace or ())
    if not edit.changed:
        output.text(f"Session {name} allowed_domains is already "
                    f"{allowlist_edit.flow(list(edit.after))}: nothing to change.")
        return 0
    source = " (inherited until now)" if edit.inherited else ""
    output.text(f"paude.yaml: sessions.{name}.allowed_domains{source}\n"
                f"  - {allowlist_edit.flow(list(edit.before))}\n"
                f"  + {allowlist_edit.flow(list(edit.after))}")
    if not edit.applied:
        if dry_run:
            output.text("Dry run: nothing was written or changed.")
            return 0
        allowlist_edit.write(edit)
        output.text(f"paude.yaml updated. Session {name} is not applied on this machine: "
                    f"`paude apply {name}` makes it.")
        return 0
    if dry_run:
        from paude import sessions

        planned = sessions.plan(name, project=Project(root, edit.file),
                                on_notice=output.warn)
        output.text(planview.plan_text(planned).rstrip("\n"))
        output.text("Dry run: nothing was written or changed.")
        return 0

    def ask(planned: PlanResult) -> bool:
        output.text(planview.plan_text(planned).rstrip("\n"))
        return output.confirm(f"Apply these changes to session {planned.session}?")

    result = allowlist_edit.apply(edit, confirm=None if yes else ask,
                                  on_progress=output.progress, on_notice=output.warn)
    output.text(planview.apply_text(result).rstrip("\n"))
    return 0


def register(app: typer.Typer) -> None:
    """Add the allowlist command."""
    app.command("allowed-domains")(allowed_domains)
