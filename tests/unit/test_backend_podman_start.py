"""`paude start` on podman: one podman call for a whole session; each container alone only
when that call fails (a session made before the gateway existed, or no session at all)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from paude import proc
from paude.backends.podman import PodmanBackend
from paude.errors import SessionNotFoundError
from paude.proc import CommandResult


def fake_podman(monkeypatch: pytest.MonkeyPatch, missing: set[str]) -> list[tuple[str, ...]]:
    calls: list[tuple[str, ...]] = []

    def run(argv: Sequence[str], *, check: bool = True, **_kw: Any) -> CommandResult:
        args = tuple(argv)
        calls.append(args)
        gone = [a for a in args[2:] if a in missing]
        result = CommandResult(args, 125 if gone else 0, "",
                               f"Error: no container with name or ID {gone[0]!r} found"
                               if gone else "")
        if check and not result.ok:
            raise proc.classify_failure(result)
        return result

    monkeypatch.setattr(proc, "run", run)
    return calls


def test_one_podman_start_for_the_session(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_podman(monkeypatch, set())
    PodmanBackend().start(session="demo")
    assert calls == [("podman", "start", "paude-demo-proxy", "paude-demo-gateway",
                      "paude-demo-agent")]


def test_a_session_without_a_gateway_still_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_podman(monkeypatch, {"paude-demo-gateway"})
    PodmanBackend().start(session="demo")
    assert calls[1:] == [("podman", "container", "exists", "paude-demo-agent"),
                         ("podman", "start", "paude-demo-proxy"),
                         ("podman", "start", "paude-demo-gateway"),
                         ("podman", "start", "paude-demo-agent")]


def test_no_agent_container_is_no_session(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_podman(monkeypatch, {"paude-demo-agent"})
    with pytest.raises(SessionNotFoundError, match="has no agent container"):
        PodmanBackend().start(session="demo")


@pytest.mark.parametrize(("label", "owner"), [
    ("/home/a b/my repo", "/home/a b/my repo"),  # a path with spaces is the rest of the line
    ("<no value>", None),                        # made before the label existed
])
def test_status_reads_the_owner_label_with_the_state(monkeypatch: pytest.MonkeyPatch,
                                                     label: str, owner: str | None) -> None:
    calls: list[tuple[str, ...]] = []

    def run(argv: Sequence[str], **_kw: Any) -> CommandResult:
        calls.append(tuple(argv))
        return CommandResult(tuple(argv), 0, f"paude-demo-agent false 0 false {label}\n"
                                             f"paude-demo-proxy true 41 false {label}\n", "")

    monkeypatch.setattr(proc, "run", run)
    status = PodmanBackend().status(session="demo")
    assert status.owner == owner
    assert (status.agent_running, status.proxy_running) == (False, True)
    assert len(calls) == 1


def test_start_and_stop_finish_even_when_paude_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    # A start sets the fixed addresses up; a kill inside it would leak them (proc.run).
    alone: list[tuple[str, bool]] = []

    def run(argv: Sequence[str], *, check: bool = True, **kw: Any) -> CommandResult:
        if argv[1] in ("start", "stop"):
            alone.append((argv[1], bool(kw.get("finish_alone"))))
        return CommandResult(tuple(argv), 0, "", "")

    monkeypatch.setattr(proc, "run", run)
    PodmanBackend().start(session="demo")
    PodmanBackend().stop(session="demo")
    assert alone == [("start", True)] + [("stop", True)] * 3
