"""The GitHub token's way to the gateway: exact podman argv, the token only on stdin."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from paude import github_token, proc
from paude.backends.kubernetes import KubernetesBackend
from paude.errors import PaudeError
from paude.proc import CommandResult
from paude.templates import gateway_github

TOKEN = "ghp_unitTestToken0123456789"


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    seen: list[dict[str, Any]] = []

    def fake_run(argv: list[str], **kwargs: Any) -> CommandResult:
        seen.append({"argv": list(argv), **kwargs})
        return CommandResult(tuple(argv), 0, "", "")

    monkeypatch.setattr(proc, "run", fake_run)
    return seen


def test_give_writes_through_stdin_and_points_git_at_the_gateway(
        calls: list[dict[str, Any]]) -> None:
    result = github_token.give("demo", TOKEN)
    write, git = calls
    assert write["argv"] == ["podman", "exec", "--interactive", "paude-demo-gateway", "sh", "-c",
                             'umask 077 && cat > "$1.new" && mv -f "$1.new" "$1"', "sh",
                             "/tmp/paude-github-token"]
    assert write["input"] == TOKEN and write["log_output"] is False
    assert git["argv"][:3] == ["podman", "exec", "paude-demo-agent"]
    assert git["argv"][-5:] == ["http://paude-demo-gateway:8080/github/", "on",
                                "https://github.com/", "git@github.com:",
                                "ssh://git@github.com/"]
    assert all(TOKEN not in " ".join(c["argv"]) for c in calls)
    assert result.url == "http://paude-demo-gateway:8080/github/"


def test_a_start_without_a_token_removes_only_what_was_given(
        calls: list[dict[str, Any]]) -> None:
    assert github_token.take_back("demo").removed is False
    assert calls == []  # nothing given: no podman call at all
    github_token.give("demo", TOKEN)
    calls.clear()
    assert github_token.take_back("demo").removed is True
    remove, git = calls
    assert remove["argv"][-4:] == ["-c", 'rm -f "$1"', "sh", "/tmp/paude-github-token"]
    assert git["argv"][-4] == "off"
    calls.clear()
    assert github_token.take_back("demo").removed is False and calls == []


def test_the_host_and_the_gateway_agree_on_the_file_and_the_path() -> None:
    from paude import gateway

    assert gateway.GITHUB_TOKEN_FILE == gateway_github.TOKEN_FILE
    assert gateway.GITHUB_GIT_PATH == gateway_github.GIT_PREFIX


def test_a_cluster_backend_refuses_to_hold_a_token() -> None:
    with pytest.raises(PaudeError, match="cannot hand a credential to the gateway"):
        KubernetesBackend().gateway_file(session="demo", path="/x", content=TOKEN)
