"""The paude command line: thin typer commands and the one error boundary."""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer

from paude import __version__
from paude.cli import allowlist, doctor, files, lifecycle, output, proxy, remote, rescue, stack
from paude.cli import setup as setup_cmd
from paude.errors import PaudeError

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_INTERRUPTED = 0, 1, 2, 130

app = typer.Typer(
    name="paude",
    help="Run autonomous coding agents in sandboxed containers, declared as Pulumi stacks.\n\n"
         "Exit codes: 0 success; 1 error; 2 changes present (plan --detailed-exitcode); "
         "130 interrupted.",
    invoke_without_command=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help: rendering it with rich doubles what `paude --help` costs.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
lifecycle.register(app)
remote.register(app)
rescue.register(app)
stack.register(app)
proxy.register(app)
doctor.register(app)
files.register(app)
allowlist.register(app)
setup_cmd.register(app)


def _show_version(value: bool) -> None:
    if value:
        output.text(f"paude {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Run autonomous coding agents in sandboxed containers, declared as Pulumi stacks.

    Without a command, paude lists the sessions.
    """
    if ctx.invoked_subcommand is None:
        raise typer.Exit(lifecycle.list_())


def main(argv: list[str] | None = None) -> int:
    """Entry point: run a command and turn every failure into a message and an exit code."""
    debug = os.environ.get("PAUDE_DEBUG") == "1"
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not debug:
        # When the engine stops early, the in-process program server logs gRPC tracebacks;
        # the engine's own error (reported below) is the one that matters.
        logging.getLogger("grpc").setLevel(logging.CRITICAL)
    try:
        result = typer.main.get_command(app).main(args=argv, prog_name="paude",
                                                  standalone_mode=False)
        code = result if isinstance(result, int) else EXIT_OK
    except PaudeError as exc:
        if debug:
            raise
        output.error(exc.render())
        code = exc.exit_code
    except KeyboardInterrupt:
        output.error("interrupted")
        code = EXIT_INTERRUPTED
    except Exception as exc:
        code = _click_exit(exc)
    if argv is None:
        sys.exit(code)
    return code


def _click_exit(exc: Exception) -> int:
    """Exit code for the command-line parser's own exceptions (typer vendors click)."""
    kind = type(exc).__name__
    if kind == "NoArgsIsHelpError":
        exc.show()  # type: ignore[attr-defined]
        return EXIT_OK
    if kind == "Abort":
        return EXIT_INTERRUPTED
    if kind == "Exit":
        return int(getattr(exc, "exit_code", EXIT_OK))
    show = getattr(exc, "show", None)
    if callable(show) and hasattr(exc, "exit_code"):
        # Usage errors exit 1, not click's 2: 2 means "changes present" for plan.
        show()
        return EXIT_ERROR
    raise exc
