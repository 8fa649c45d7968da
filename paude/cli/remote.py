"""`paude remote add|list|remove`: the git remote that connects a repository to a session."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from paude.cli import output
from paude.errors import PaudeError

# Service modules are imported by each command, not here: `paude --help` and `paude list`
# must not pay for pulumi and the schema models.

remote_app = typer.Typer(
    help="Manage the git remotes (paude-NAME) that move commits between this repository "
         "and sessions.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

NameArg = Annotated[str, typer.Argument(help="Session name, as defined in paude.yaml.",
                                        show_default=False)]


OptionalName = Annotated[str | None, typer.Argument(
    help="Session name; defaults to the current repository's session, or the only one.",
    show_default=False)]


@remote_app.command("add")
def add(
    name: OptionalName = None,
    push: Annotated[bool, typer.Option(
        "--push", help="Also push the current branch into the session.")] = False,
) -> int:
    """Add the remote paude-NAME here and prepare the session's workspace to receive pushes.

    Then `git push paude-NAME` sends code in and `git pull paude-NAME BRANCH` brings the
    agent's commits back.

    Examples:\n
      paude remote add demo\n
      paude remote add --push demo\n
      git pull paude-demo main
    """
    from paude import lifecycle

    name = lifecycle.resolve_name(name)
    result = lifecycle.remote_add(name, push=push)
    state = "added" if result.changed else "already present"
    output.text(f"remote {result.remote} ({result.url}) {state}")
    if result.pushed:
        output.text(f"pushed {result.branch} to session {name}")
    else:
        output.info(f"push your work with `git push {result.remote} {result.branch}`")
    return 0


@remote_app.command("list")
def list_() -> int:
    """List this repository's paude remotes.

    Examples:\n
      paude remote list
    """
    from paude import gitsync

    remotes = gitsync.list_remotes(Path.cwd())
    width = max((len(remote) for remote, _ in remotes), default=0)
    for remote, url in remotes:
        output.text(f"{remote:<{width}}  {url}")
    if not remotes:
        output.info("no paude remotes here; `paude remote add NAME` adds one")
    return 0


@remote_app.command("remove")
def remove(name: NameArg) -> int:
    """Remove the remote paude-NAME and its remote-tracking branches; the session is untouched.

    Examples:\n
      paude remote remove demo
    """
    from paude import gitsync
    from paude.naming import check_session_name as check_name

    name = check_name(name)
    if not gitsync.remove_remote(Path.cwd(), name):
        raise PaudeError(f"no remote {gitsync.remote_name(name)} in this repository",
                         hint="`paude remote list` shows the paude remotes here")
    output.text(f"remote {gitsync.remote_name(name)} removed")
    return 0


def register(app: typer.Typer) -> None:
    """Add the `remote` command group to the app."""
    app.add_typer(remote_app, name="remote")
