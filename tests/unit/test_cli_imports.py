"""Quick commands stay quick: the CLI's start (what `--help`, `list` and `status` pay before
they do anything) imports none of the heavy libraries; the commands that need them import
them when they run."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pydantic", "pulumi", "rich", "yaml", "jinja2", "grpc")


def test_the_cli_starts_without_the_heavy_libraries() -> None:
    # The CLI, what `status` runs (the work report, the setup state) and prints, and what
    # `start` runs (the GitHub token's take-back, which reads the gateway's file names).
    found = subprocess.run(
        [sys.executable, "-c", "import sys, paude.cli, paude.lifecycle, paude.work\n"
         "import paude.workspace_setup, paude.cli.output, paude.github_token, paude.gateway\n"
         "paude.cli.output.text('a line')\n"
         f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"],
        capture_output=True, text=True, check=True).stdout.split()
    assert found == ["a", "line"]


def test_the_control_a_heavy_import_is_seen() -> None:
    # The check above would pass vacuously if sys.modules never listed these.
    found = subprocess.run(
        [sys.executable, "-c", "import sys, paude.cli, paude.settings\n"
         "print('pydantic' in sys.modules)"], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "True"


def test_the_command_table_names_what_each_module_registers() -> None:
    """paude.cli.COMMANDS, by which a command line imports only its own command's module,
    lists every command exactly where it is defined, in the order `--help` shows them."""
    import importlib

    import typer

    from paude import cli

    registered: dict[str, str] = {}
    for module in dict.fromkeys(cli.COMMANDS.values()):
        app = typer.Typer()
        importlib.import_module(f"paude.cli.{module}").register(app)
        names = [cli.command_name(c) for c in app.registered_commands]
        names += [g.name or "" for g in app.registered_groups]
        registered.update(dict.fromkeys(names, module))
    assert registered == cli.COMMANDS
    assert list(registered) == list(cli.COMMANDS)
    listed = [c.name for c in typer.main.get_command(cli.build()).commands.values()]
    assert sorted(listed) == sorted(cli.COMMANDS)


def _modules_after(*argv: str) -> set[str]:
    script = ("import sys\nfrom paude.cli import main\n"
              f"main({list(argv)!r})\n"
              "print('MODULES', *(m for m in sys.modules if m.startswith('paude.cli.')))")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True)
    last = run.stdout.splitlines()[-1].split()
    assert last[0] == "MODULES"
    return set(last[1:])


def test_a_command_line_builds_its_own_command_alone() -> None:
    assert "paude.cli.stack" not in _modules_after("status", "--help")
    assert "paude.cli.allowlist" not in _modules_after("start", "--help")
    # Controls: the command's own module, and --help, which lists every command.
    assert "paude.cli.stack" in _modules_after("plan", "--help")
    assert {"paude.cli.stack", "paude.cli.allowlist"} <= _modules_after("--help")
