"""paude.proc: the one subprocess seam, its typed results and its stderr classification."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from paude import proc
from paude.errors import CommandFailedError, PaudeError, SessionNotFoundError, ToolNotFoundError
from paude.proc import CommandResult, classify_failure

# ---------------------------------------------------------------- run()


def test_run_captures_stdout_stderr_and_exit_code() -> None:
    result = proc.run(["sh", "-c", "echo out; echo err >&2; exit 3"], check=False)
    assert result == CommandResult(("sh", "-c", "echo out; echo err >&2; exit 3"), 3,
                                   "out\n", "err\n")
    assert not result.ok


def test_run_success_is_ok() -> None:
    result = proc.run(["true"])
    assert result.ok
    assert result.returncode == 0
    assert result.argv == ("true",)


def test_run_stringifies_argv(tmp_path: Path) -> None:
    result = proc.run(["sh", "-c", 'printf %s "$1"', "sh", tmp_path])
    assert result.argv[-1] == str(tmp_path)
    assert result.stdout == str(tmp_path)


def test_run_passes_input_cwd_and_extends_env(tmp_path: Path) -> None:
    result = proc.run(["sh", "-c", 'cat; printf " %s %s" "$PAUDE_T" "$PWD"; test -n "$PATH"'],
                      input="hello", cwd=tmp_path, env={"PAUDE_T": "v"})
    # env is merged over os.environ: PATH is still set, so `test -n` succeeded.
    assert result.stdout == f"hello v {tmp_path}"


def test_run_rejects_empty_argv() -> None:
    with pytest.raises(ValueError, match="empty argv"):
        proc.run([])


def test_check_raises_command_failed_with_argv_and_stderr_tail() -> None:
    script = "for i in 1 2 3 4 5 6 7; do echo line$i >&2; done; exit 4"
    with pytest.raises(CommandFailedError) as exc:
        proc.run(["sh", "-c", script])
    err = exc.value
    assert err.argv == ["sh", "-c", script]
    assert err.returncode == 4
    assert err.stderr == "".join(f"line{i}\n" for i in range(1, 8))
    assert err.exit_code == 1
    # The message names the command and exit code and keeps only the last five lines.
    assert err.message.startswith(f"`sh -c {script}` failed with exit code 4")
    assert "line3" in err.message and "line7" in err.message
    assert "line2" not in err.message


def test_check_false_returns_the_failure() -> None:
    result = proc.run(["false"], check=False)
    assert result.returncode == 1
    assert not result.ok


def test_missing_executable_raises_tool_not_found_naming_it() -> None:
    with pytest.raises(ToolNotFoundError) as exc:
        proc.run(["paude-no-such-tool-xyz", "--version"])
    assert exc.value.message == "paude-no-such-tool-xyz is not installed or not on PATH"
    assert exc.value.hint is not None and "paude-no-such-tool-xyz" in exc.value.hint
    assert "paude doctor" in exc.value.hint


def test_missing_executable_raises_even_with_check_false() -> None:
    with pytest.raises(ToolNotFoundError, match="paude-no-such-tool-xyz"):
        proc.run(["paude-no-such-tool-xyz"], check=False)


def test_missing_cwd_is_not_reported_as_missing_tool(tmp_path: Path) -> None:
    with pytest.raises(PaudeError) as exc:
        proc.run(["true"], cwd=tmp_path / "gone")
    assert "not installed" not in exc.value.message
    assert "gone" in exc.value.message


def test_non_executable_tool_is_a_paude_error(tmp_path: Path) -> None:
    script = tmp_path / "tool"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o644)
    with pytest.raises(PaudeError, match="tool"):
        proc.run([str(script)])


def test_timeout_is_a_paude_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def hang(args: tuple[str, ...], **_kw: object) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(args, 30)

    monkeypatch.setattr(proc.subprocess, "run", hang)
    with pytest.raises(PaudeError, match="pulumi"):
        proc.run(["pulumi", "version"], timeout=30)


def test_run_never_uses_a_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}

    def fake(args: tuple[str, ...], **kw: object) -> subprocess.CompletedProcess[str]:
        seen.update(kw, args=args)
        return subprocess.CompletedProcess(args, 0, "", "")

    monkeypatch.setattr(proc.subprocess, "run", fake)
    proc.run(["podman", "ps", "; rm -rf /"])
    assert seen["args"] == ("podman", "ps", "; rm -rf /")
    assert seen.get("shell", False) is False
    assert seen["capture_output"] is True and seen["text"] is True


# ---------------------------------------------------------------- classify_failure()


def _failed(stderr: str, argv: tuple[str, ...] = ("podman", "exec", "x", "true")) -> CommandResult:
    return CommandResult(argv, 125, "", stderr)


def test_no_such_container_is_session_not_found() -> None:
    stderr = 'Error: no container with name or ID "x" found: no such container\n'
    err = classify_failure(_failed(stderr))
    assert type(err) is SessionNotFoundError
    assert err.message == ('container not found: Error: no container with name or ID "x" '
                           "found: no such container")
    assert err.hint is not None and "paude apply" in err.hint


def test_crun_hybrid_cgroups_hints_runc() -> None:
    stderr = ("Error: OCI runtime error: crun: cgroups in hybrid mode not supported, drop all "
              "controllers from cgroupv2\n")
    err = classify_failure(_failed(stderr, ("podman", "run", "--detach", "x")))
    assert type(err) is CommandFailedError
    assert isinstance(err, CommandFailedError)
    assert err.argv == ["podman", "run", "--detach", "x"]
    assert err.returncode == 125
    assert err.hint is not None
    assert 'runtime = "runc"' in err.hint and "containers.conf" in err.hint
    assert "cgroups in hybrid mode" in err.render()


def test_setrlimit_nofile_hints_default_ulimits() -> None:
    stderr = ("Error: crun: setrlimit `RLIMIT_NOFILE`: Operation not permitted: "
              "OCI permission denied\n")
    err = classify_failure(_failed(stderr))
    assert type(err) is CommandFailedError
    assert err.hint is not None and "default_ulimits" in err.hint
    assert "nofile=1024:1024" in err.hint


def test_setrlimit_nproc_without_backticks_also_matches() -> None:
    err = classify_failure(_failed("setrlimit RLIMIT_NPROC: Operation not permitted"))
    assert err.hint is not None and "default_ulimits" in err.hint


def test_unknown_failure_is_plain_command_failed() -> None:
    err = classify_failure(_failed("Error: something else entirely\n"))
    assert type(err) is CommandFailedError
    assert err.hint is None
    assert "something else entirely" in err.message


def test_check_true_routes_through_classification() -> None:
    with pytest.raises(SessionNotFoundError):
        proc.run(["sh", "-c", "echo 'Error: no such container' >&2; exit 125"])


# ---------------------------------------------------------------- run(finish_alone=True)

_CALLER = """
import sys
from paude import proc
print("started", flush=True)
proc.run(["sh", "-c", 'sleep 0.4; printf done > "$1"', "sh", sys.argv[1]],
         finish_alone=sys.argv[2] == "1")
"""


@pytest.mark.parametrize("alone", [True, False])
def test_a_command_left_to_finish_outlives_a_kill_of_its_callers_group(
        tmp_path: Path, alone: bool) -> None:
    # The caller and everything in its process group are SIGKILLed while the command runs,
    # as a Ctrl-C or a closed terminal would; the control (alone=False) shows that the same
    # command, run as usual, dies with its caller and never writes its file.
    import os
    import signal
    import sys
    import time
    marker = tmp_path / "marker"
    caller = subprocess.Popen([sys.executable, "-c", _CALLER, str(marker), "1" if alone else "0"],
                              stdout=subprocess.PIPE, text=True, start_new_session=True)
    assert caller.stdout is not None and caller.stdout.readline() == "started\n"
    time.sleep(0.15)
    os.killpg(caller.pid, signal.SIGKILL)
    caller.wait()
    time.sleep(0.8)
    assert (marker.read_text() if marker.exists() else None) == ("done" if alone else None)


def test_a_command_left_to_finish_returns_its_output_input_and_code(tmp_path: Path) -> None:
    result = proc.run(["sh", "-c", 'cat; printf " %s" "$PAUDE_T"; echo err >&2; exit 4'],
                      input="in", env={"PAUDE_T": "v"}, cwd=tmp_path, check=False,
                      finish_alone=True)
    assert (result.returncode, result.stdout, result.stderr) == (4, "in v", "err\n")
    with pytest.raises(CommandFailedError):
        proc.run(["false"], finish_alone=True)


def test_a_command_left_to_finish_still_honours_its_timeout() -> None:
    with pytest.raises(CommandFailedError, match="did not finish within"):
        proc.run(["sleep", "5"], timeout=0.2, finish_alone=True)


def test_a_command_left_to_finish_that_cannot_start_is_a_typed_error() -> None:
    with pytest.raises(ToolNotFoundError):
        proc.run(["paude-no-such-tool"], finish_alone=True)
