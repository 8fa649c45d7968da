"""The paude command line: thin typer commands and the one error boundary."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Annotated

import typer

from paude import __version__
from paude.cli import output
from paude.errors import PaudeError

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_INTERRUPTED = 0, 1, 2, 130

# The module that defines each command, in the order `--help` lists them. A command line
# that names a command imports and builds that command alone: importing every module and
# building every command costs about 40 ms, a tenth of `paude status`. (A unit test keeps
# this table equal to what the modules register.)
COMMANDS = {
    "create": "lifecycle", "start": "lifecycle", "stop": "lifecycle",
    "connect": "lifecycle", "list": "lifecycle", "status": "lifecycle",
    "delete": "lifecycle", "remote": "remote", "rescue": "rescue", "plan": "stack",
    "apply": "stack", "destroy": "stack", "blocked": "proxy", "log": "proxy",
    "policies": "proxy", "doctor": "doctor", "cp": "files", "allowed-domains": "allowlist",
    "setup": "setup",
}


def build(command: str | None = None) -> typer.Typer:
    """The command line with every command, or with COMMAND alone when it names one."""
    app = typer.Typer(
        name="paude",
        help="Run autonomous coding agents in sandboxed containers, declared as Pulumi "
             "stacks.\n\nExit codes: 0 success; 1 error; 2 changes present (plan "
             "--detailed-exitcode); 130 interrupted.",
        invoke_without_command=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        # Plain help: rendering it with rich doubles what `paude --help` costs.
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    alone = command if command in COMMANDS else None
    for module in dict.fromkeys([COMMANDS[alone]] if alone else COMMANDS.values()):
        importlib.import_module(f"paude.cli.{module}").register(app)
    if alone:
        app.registered_commands = [c for c in app.registered_commands
                                   if command_name(c) == alone]
        app.registered_groups = [g for g in app.registered_groups if g.name == alone]
    return app


def command_name(info: typer.models.CommandInfo) -> str:
    """The name a registered command is called by (typer's rule: the function's name)."""
    return info.name or (info.callback.__name__.replace("_", "-") if info.callback else "")


def __getattr__(name: str) -> typer.Typer:
    """`paude.cli.app`: the whole command line, built when asked for."""
    if name == "app":
        return build()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _show_version(value: bool) -> None:
    if value:
        output.text(f"paude {__version__}")
        raise typer.Exit()


def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    """Run autonomous coding agents in sandboxed containers, declared as Pulumi stacks.

    Without a command, paude lists the sessions.
    """
    if ctx.invoked_subcommand is None:
        from paude.cli import lifecycle

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
        args = sys.argv[1:] if argv is None else argv
        command = typer.main.get_command(build(args[0] if args else None))
        result = command.main(args=argv, prog_name="paude", standalone_mode=False)
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
