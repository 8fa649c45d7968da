"""`paude cp`: copy files between the host and a session's agent container."""

from __future__ import annotations

from typing import Annotated

import typer

from paude.cli import output


def cp(
    source: Annotated[str, typer.Argument(
        metavar="SRC", help="A host path, or NAME:path / :path in a session.",
        show_default=False)],
    dest: Annotated[str, typer.Argument(
        metavar="DEST", help="A host path, or NAME:path / :path in a session.",
        show_default=False)],
    force: Annotated[bool, typer.Option(
        "--force", help="Replace a file that already exists at DEST.")] = False,
) -> int:
    """Copy a file or folder between the host and a session's agent container.

    NAME:path is in session NAME; :path in the current session (the repository's, or the
    only one). Paths in the session are relative to /workspace unless absolute. Exactly
    one side is in a session. Copying out never writes through a symbolic link and never
    replaces an existing file without --force (see docs/cli.md).

    Examples:\n
      paude cp notes.md my-project:docs/\n
      paude cp :build/report.html ./report.html\n
      paude cp ./data :data --force
    """
    from paude import copy, lifecycle

    src, dst = copy.plan_endpoints(source, dest)  # bad input fails before podman runs
    remote = src if src.remote else dst
    session = lifecycle.resolve_name(remote.session)
    result = copy.copy(src, dst, session, force=force)
    where = f"{session}:{result.target}" if result.direction == "in" else result.target
    output.text(f"Copied {result.files} file(s), {result.bytes} bytes, to {where}.")
    if result.skipped_venvs:
        output.info(f"Left out the host's virtual environment(s) "
                    f"{', '.join(result.skipped_venvs)}: the session makes its own "
                    "(`venv:` in paude.yaml).")
    return 0


def register(app: typer.Typer) -> None:
    """Add the file commands."""
    app.command()(cp)
