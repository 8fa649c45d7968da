"""Command-line arguments: every generated command line ends with an exit code (0, 1, 2 or
130) and a message, never a traceback, and changes nothing in the repository.

The infrastructure seams (the one subprocess function and the engine) are replaced by a
stand-in that fails like a missing tool would, so a command line that passes parsing and
validation goes as far as paude can take it without podman or the engine; that every
such failure leaves paude.yaml as it was is part of the invariant."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from paude import engine, proc
from paude.cli import app, main
from paude.errors import ToolNotFoundError
from tests.fuzz import strategies as fz
from tests.fuzz.harness import bounded, fuzz, ran
from tests.fuzz.world import World, build_world

# Hypothesis warns when it describes the big generated documents; that is expected.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

PAUDE_YAML = ("version: 1\ndefaults:\n  allowed_domains: [default]\nsessions:\n  demo: {}\n"
              "  other: {backend: openshift, yolo: true}\n")
REACHED: list[str] = []


def _unreachable(what: str) -> Any:
    def stand_in(*args: Any, **kwargs: Any) -> Any:
        REACHED.append(what)
        raise ToolNotFoundError(f"{what} is not available in this test (fuzzing)")

    return stand_in


@pytest.fixture(scope="module")
def cli_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A repository with paude.yaml as the working folder, and no way to podman or the
    engine."""
    made = build_world(tmp_path_factory.mktemp("fuzz-cli"))
    (made.root / "paude.yaml").write_text(PAUDE_YAML)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PAUDE_HOME", str(made.home))
        patch.setenv("HOME", str(made.home))
        patch.delenv("PAUDE_STATE_BACKEND", raising=False)
        patch.delenv("PAUDE_DEBUG", raising=False)
        patch.chdir(made.root)
        for module, name in ((proc, "run"), (proc, "run_on_pty"), (proc, "exec_replace"),
                             (engine, "connect")):
            patch.setattr(module, name, _unreachable(f"{module.__name__}.{name}"))
        yield made


def _commands() -> dict[tuple[str, ...], Any]:
    """Every command and subcommand by its words, read from the CLI itself (typer's own
    copy of click: duck-typed)."""
    found: dict[tuple[str, ...], Any] = {}

    def walk(words: tuple[str, ...], command: Any) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk((*words, name), sub)
        else:
            found[words] = command

    walk((), typer.main.get_command(app))
    return found


COMMANDS = _commands()
# Paths are created by some commands (plan --render): only places inside the test's
# repository, or ones that cannot be created.
PATHS = ["out", "a/b", ".", "", "paude.yaml", "Dockerfile/x", "/dev/null", "/proc/fz-none"]
names_first = fz.rarely(st.one_of(fz.names, fz.sharp_text(12)),
                        st.sampled_from(["demo", "other", "ghost"]), 4)
values = st.one_of(st.sampled_from(["demo", "other", "ghost", "openshift", "podman",
                                    "-p 'hi'", "10Gi", "fast"]),
                   fz.names, fz.domains, fz.quantities, fz.sharp_text(12), fz.arguments)


def _takes_a_path(option: Any) -> bool:
    """A path option: typer types it TyperPath (a click.Path); typer 0.29 and later also
    describe it by its annotation."""
    annotation = getattr(getattr(option, "type_descriptor", None), "annotation", None)
    return "Path" in type(option.type).__name__ or "Path" in repr(annotation)


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    """A command's words, then options (with values) and arguments in any order."""
    words = draw(st.sampled_from(sorted(COMMANDS)))
    command = COMMANDS[words]
    argv = list(words)
    options = [p for p in command.params if p.param_type_name == "option"]
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    tokens: list[list[str]] = []
    for _ in range(draw(st.integers(0, 4)) if options else 0):
        option = draw(st.sampled_from(options))
        token = [draw(st.sampled_from([*option.opts, *option.secondary_opts]))]
        if not option.is_flag:
            token.append(draw(st.sampled_from(PATHS) if _takes_a_path(option) else values))
        tokens.append(token)
    # Mostly as many arguments as the command takes, now and then one too many or few.
    count = draw(fz.rarely(st.integers(0, 2), st.just(len(arguments)), 5))
    tokens += [[draw(names_first)] for _ in range(count)]
    tokens += [[draw(st.sampled_from(["--", "-h", "--help", "--version", "--nope", "-", "-x"]))]
               for _ in range(draw(fz.rarely(st.just(1), st.just(0), 10)))]
    for token in draw(st.permutations(tokens)):
        argv += token
    return argv


def _snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in root.rglob("*") if p.is_file() and not p.is_symlink()
            and ".git" not in p.parts}


@fuzz("cli arguments")
@given(argv=command_lines())
def test_command_lines(cli_world: World, argv: list[str]) -> None:
    before = _snapshot(cli_world.root)
    REACHED.clear()
    with CliRunner().isolation(input="") as (out, err, _), bounded(f"paude {argv}"):
        code = main(argv)
        output = (out.getvalue() + err.getvalue()).decode(errors="replace")
    assert code in (0, 1, 2, 130), (code, output)
    assert "Traceback" not in output
    if code == 1 and not output.strip():
        raise AssertionError("exit 1 without a message")
    # Nothing written, whether the command was refused or reached podman or the engine.
    assert _snapshot(cli_world.root) == before, output
    ran("cli arguments", accepted=bool(REACHED) or code in (0, 2))
