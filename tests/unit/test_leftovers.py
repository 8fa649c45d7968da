"""After a destroy, objects a killed apply made but never recorded go too: only those with
all of the session's labels, containers before the networks they use, never the volume."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from paude import proc
from paude.backends.podman import PodmanBackend
from paude.proc import CommandResult

FILTERS = ("--filter=label=paude.managed=true", "--filter=label=paude.session=demo",
           "--filter=label=paude.repository=/repo")


def fake_podman(monkeypatch: pytest.MonkeyPatch, listed: dict[str, str]) -> list[tuple[str, ...]]:
    calls: list[tuple[str, ...]] = []

    def run(argv: Sequence[str], **_kw: Any) -> CommandResult:
        args = tuple(argv)
        calls.append(args)
        return CommandResult(args, 0, listed.get(args[1], "") if "--format" in args else "", "")

    monkeypatch.setattr(proc, "run", run)
    return calls


def test_leftover_containers_then_networks_are_removed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_podman(monkeypatch, {"ps": "paude-demo-agent\n",
                                      "network": "paude-demo-internal\n"})
    removed = PodmanBackend().remove_leftovers(session="demo", owner="/repo")
    assert removed == ["paude-demo-agent", "paude-demo-internal"]
    assert calls == [
        ("podman", "ps", "--all", *FILTERS, "--format", "{{.Names}}"),
        ("podman", "rm", "--force", "--time", "1", "paude-demo-agent"),
        ("podman", "network", "ls", *FILTERS, "--format", "{{.Name}}"),
        ("podman", "network", "rm", "paude-demo-internal"),
    ]
    assert not any("volume" in call for call in calls)


def test_nothing_left_removes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = fake_podman(monkeypatch, {})
    assert PodmanBackend().remove_leftovers(session="demo", owner="/repo") == []
    assert [c[1] for c in calls] == ["ps", "network"]
