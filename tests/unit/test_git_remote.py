"""git-remote-paude: the remote-helper protocol, with the final exec captured."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from paude import git_remote, proc
from paude.errors import ToolNotFoundError


class Replaced(Exception):
    """Raised instead of replacing the test process."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str] | None) -> None:
        super().__init__(argv)
        self.argv = list(argv)
        self.env = env


@dataclass
class Helper:
    """Runs git_remote.main against pipes standing in for git."""

    def run(self, args: list[str], stdin: bytes) -> tuple[int | Replaced, bytes, bytes]:
        """Exit code (or the captured exec), stdout, and what stays unread on stdin."""
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        os.write(in_w, stdin)
        os.close(in_w)
        outcome: int | Replaced
        try:
            outcome = git_remote.main(args, stdin_fd=in_r, stdout_fd=out_w)
        except Replaced as replaced:
            outcome = replaced
        finally:
            os.close(out_w)
        with os.fdopen(out_r, "rb") as out, os.fdopen(in_r, "rb") as rest:
            return outcome, out.read(), rest.read()


@pytest.fixture
def helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Helper]:
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GIT_PROTOCOL", raising=False)
    monkeypatch.delenv("PAUDE_DEBUG", raising=False)

    def fake_exec(argv: Sequence[str], *, env: Mapping[str, str] | None = None) -> None:
        raise Replaced(argv, env)

    monkeypatch.setattr(proc, "exec_replace", fake_exec)
    yield Helper()


def test_capabilities_then_empty_line_exits_0(helper: Helper) -> None:
    code, out, rest = helper.run(["paude-demo", "demo"], b"capabilities\n\n")
    assert code == 0
    assert out == b"connect\n\n"
    assert rest == b""


def test_end_of_input_exits_0(helper: Helper) -> None:
    code, out, _ = helper.run(["paude-demo", "demo"], b"")
    assert (code, out) == (0, b"")


@pytest.mark.parametrize("service", ["git-upload-pack", "git-receive-pack"])
def test_connect_replies_ready_and_execs_the_service_in_the_workspace(
        helper: Helper, service: str) -> None:
    stdin = f"capabilities\nconnect {service}\n".encode() + b"0032pack-data\n\x00\x01"
    replaced, out, rest = helper.run(["paude-demo", "demo"], stdin)
    assert isinstance(replaced, Replaced)
    assert replaced.argv == ["podman", "exec", "--interactive", "paude-demo-agent",
                             service, "/workspace"]
    assert replaced.env is None
    assert out == b"connect\n\n\n"
    # Everything after the connect line belongs to the service: none of it was read.
    assert rest == b"0032pack-data\n\x00\x01"


def test_git_protocol_is_passed_into_the_container(helper: Helper,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_PROTOCOL", "version=2")
    replaced, _, _ = helper.run(["origin", "demo"], b"connect git-upload-pack\n")
    assert isinstance(replaced, Replaced)
    assert replaced.argv == ["podman", "exec", "--interactive", "--env", "GIT_PROTOCOL=version=2",
                             "paude-demo-agent", "git-upload-pack", "/workspace"]


def test_backend_comes_from_the_session_index(helper: Helper, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    index = tmp_path / "home" / "sessions" / "demo.json"
    index.parent.mkdir(parents=True)
    record = {"name": "demo", "backend": "openshift", "owner": "/repo", "applied_at": 0,
              "context": "prod", "namespace": "team-a"}
    index.write_text(json.dumps(record), encoding="utf-8")
    monkeypatch.setattr(proc, "which", lambda tool: "/usr/bin/oc" if tool == "oc" else None)
    code, out, _ = helper.run(["paude-demo", "demo"], b"connect git-upload-pack\n")
    assert out == b"\n"
    assert isinstance(code, Replaced)
    assert code.argv == ["oc", "--context", "prod", "--namespace", "team-a", "exec", "--stdin",
                         "paude-demo-agent-0", "-c", "agent", "--",
                         "git-upload-pack", "/workspace"]


@pytest.mark.parametrize("url", ["Demo", "../demo", "demo;rm -rf /", "-x", ""])
def test_invalid_session_name_exits_128_before_anything_else(
        helper: Helper, url: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, rest = helper.run(["paude-x", url], b"capabilities\n")
    assert (code, out, rest) == (128, b"", b"capabilities\n")
    err = capsys.readouterr().err
    assert err.startswith(f"paude: remote URL paude::{url}: invalid session name {url!r}")


def test_unknown_service_exits_128(helper: Helper, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = helper.run(["paude-demo", "demo"],
                              b"capabilities\nconnect git-upload-archive\n")
    assert (code, out) == (128, b"connect\n\n")
    assert capsys.readouterr().err == (
        "paude: unsupported service 'git-upload-archive': use git-upload-pack or "
        "git-receive-pack\n")


@pytest.mark.parametrize("command", ["list", "fetch 0123 refs/heads/main", "option verbosity 1",
                                     "stateless-connect git-upload-pack"])
def test_unknown_command_exits_128(helper: Helper, command: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = helper.run(["paude-demo", "demo"], f"{command}\n".encode())
    assert code == 128
    assert capsys.readouterr().err == (
        f"paude: unsupported command {command!r}: this helper only connects\n")


def test_wrong_number_of_arguments_exits_128(helper: Helper,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = helper.run(["demo"], b"")
    assert code == 128
    assert capsys.readouterr().err.startswith("paude: usage: git-remote-paude REMOTE SESSION")


def test_overlong_command_line_exits_128(helper: Helper,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = helper.run(["paude-demo", "demo"], b"x" * 5000)
    assert code == 128
    assert "too long" in capsys.readouterr().err


def test_missing_podman_exits_128_with_the_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code, out, _ = Helper().run(["paude-demo", "demo"], b"connect git-receive-pack\n")
    assert (code, out) == (128, b"\n")
    assert capsys.readouterr().err.startswith("paude: podman is not installed or not on PATH")


# ---------------------------------------------------------------- proc.exec_replace


def test_exec_replace_replaces_the_process_with_env_added() -> None:
    code = ("from paude import proc; "
            "proc.exec_replace(['sh', '-c', 'echo \"$PAUDE_T $0\"; exit 7', 'x'], "
            "env={'PAUDE_T': 'added'})")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert (result.returncode, result.stdout) == (7, "added x\n")


def test_exec_replace_missing_program_raises_tool_not_found() -> None:
    with pytest.raises(ToolNotFoundError, match="paude-no-such-tool is not installed"):
        proc.exec_replace(["paude-no-such-tool"])


def test_exec_replace_rejects_empty_argv() -> None:
    with pytest.raises(ValueError, match="empty argv"):
        proc.exec_replace([])
