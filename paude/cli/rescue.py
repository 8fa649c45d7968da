"""`paude rescue`: save all of a session's work in this repository, under refs/paude/NAME/."""

from __future__ import annotations

from typing import Annotated

import typer

from paude import lifecycle
from paude.cli import output


def rescue(name: Annotated[str | None, typer.Argument(
        help="Session name; defaults to the current repository's session, or the only one.",
        show_default=False)] = None) -> int:
    """Fetch every ref of a session (branches, tags, stash, HEAD, others) and its uncommitted
    and untracked files into refs/paude/NAME/ of its repository. The agent's working tree,
    index and branches are not changed.

    Examples:\n
      paude rescue my-project\n
      git log refs/paude/my-project/worktree
    """
    session = lifecycle.resolve_name(name)
    result = lifecycle.rescue(session)
    if not result.saved:
        output.text(f"Session {session} has nothing to save.")
    else:
        output.text(f"Saved session {session}'s work in {result.repo}:")
        width = max(len(s.ref) for s in result.saved)
        for saved in result.saved:
            output.text(f"  {saved.ref:<{width}}  {saved.what}")
        refs = [s.ref for s in result.saved]
        look = next((r for r in refs if r.endswith("/worktree")), refs[0])
        output.text("Look at them:")
        output.text(f"  git log --stat {look}")
        branch = next((r for r in refs if "/heads/" in r), None)
        if branch:
            output.text(f"  git checkout -b rescued {branch}")
        output.text(f"  git for-each-ref {result.namespace}/")
    if result.remaining.blocking:
        from paude import work

        output.warn(work.describe(result.remaining, session))
        output.warn("`paude delete` still refuses: bring the rest back as shown, or pass --force")
        return 1
    output.text(f"The host has all of session {session}'s work: `paude delete {session} "
                "--confirm` no longer refuses.")
    return 0


def register(app: typer.Typer) -> None:
    """Add the rescue command."""
    app.command()(rescue)
