"""paude.errors: each error's rendered message and exit code."""

from __future__ import annotations

import pytest

from paude.errors import (
    AbortedError,
    CommandFailedError,
    ConfigError,
    ConfigProblem,
    EngineError,
    EngineMissingError,
    OwnershipError,
    PaudeError,
    SessionBusyError,
    SessionNotFoundError,
    ToolNotFoundError,
    UsageError,
)

SIMPLE = [PaudeError, SessionNotFoundError, SessionBusyError, OwnershipError, ToolNotFoundError,
          EngineError, EngineMissingError, AbortedError, UsageError]


@pytest.mark.parametrize("cls", SIMPLE)
def test_message_and_hint(cls: type[PaudeError]) -> None:
    err = cls("session demo is busy", hint="wait and retry")
    assert err.render() == "session demo is busy\n  fix: wait and retry"
    assert str(err) == "session demo is busy"
    assert err.exit_code == 1
    assert isinstance(err, PaudeError)


@pytest.mark.parametrize("cls", SIMPLE)
def test_message_without_hint(cls: type[PaudeError]) -> None:
    err = cls("podman is not installed or not on PATH")
    assert err.hint is None
    assert err.render() == "podman is not installed or not on PATH"


def test_command_failed_error() -> None:
    err = CommandFailedError(["podman", "run", "--detach", "--name", "x", "img"], 125,
                             "a\nb\nc\nd\ne\nf\n", hint="check podman")
    assert err.exit_code == 1
    assert (err.argv, err.returncode, err.stderr) == (
        ["podman", "run", "--detach", "--name", "x", "img"], 125, "a\nb\nc\nd\ne\nf\n")
    # Only the first four words of the command and the last five stderr lines.
    assert err.render() == ("`podman run --detach --name` failed with exit code 125\n"
                            "    b\n    c\n    d\n    e\n    f\n  fix: check podman")


def test_command_failed_error_with_empty_stderr() -> None:
    err = CommandFailedError(["false"], 1, "")
    assert err.render() == "`false` failed with exit code 1"


def test_config_error_lists_problems_with_lines() -> None:
    err = ConfigError("paude.yaml", [ConfigProblem("sessions.demo.yolo", "not a bool", 4),
                                     ConfigProblem("version", "must be 1")])
    assert err.exit_code == 1
    assert err.file == "paude.yaml"
    assert err.render() == (
        "paude.yaml: invalid session definition\n"
        "  paude.yaml:4: sessions.demo.yolo: not a bool\n"
        "  paude.yaml: version: must be 1\n"
        "  fix: edit the file and run the command again; docs/paude.schema.json lists every "
        "field")


def test_config_error_custom_hint() -> None:
    err = ConfigError("command line", [ConfigProblem("NAME", "bad")], hint="rename it")
    assert err.render().endswith("\n  fix: rename it")


def test_config_error_caps_problems_at_15() -> None:
    problems = [ConfigProblem(f"sessions.s{i}", "bad", i + 1) for i in range(20)]
    err = ConfigError("paude.yaml", problems)
    lines = err.message.splitlines()
    assert len(lines) == 1 + 15 + 1
    assert lines[15] == "  paude.yaml:15: sessions.s14: bad"
    assert lines[-1] == "  ... and 5 more problems"
    assert "sessions.s15" not in err.message
    assert len(err.problems) == 20


def test_config_error_with_exactly_15_problems_has_no_overflow_line() -> None:
    err = ConfigError("paude.yaml", [ConfigProblem(f"p{i}", "bad") for i in range(15)])
    assert "more problems" not in err.message
    assert len(err.message.splitlines()) == 16
