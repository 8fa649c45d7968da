"""A plan's reads asked of podman once per kind (stacks/podman/batchread.py), with proc.run
faked: what podman is asked, and that every read answers as it would alone."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

import pytest

from paude import proc
from paude.proc import CommandResult
from paude.stacks.podman import batchread, podman

AGENT = {"Name": "s-agent", "Id": "a1", "Image": "f" * 64, "State": {"Pid": 0}}
PROXY = {"Name": "s-proxy", "Id": "p1", "Image": "e" * 64, "State": {"Pid": 0}}
GATEWAY = {"Name": "s-gateway", "Id": "g1", "Image": "e" * 64, "State": {"Pid": 0}}
OBJECTS: dict[str, list[dict[str, Any]]] = {
    "container": [AGENT, PROXY, GATEWAY],
    "network": [{"name": "s-internal"}, {"name": "s-egress"}],
    "volume": [{"Name": "s-workspace"}],
    "image": [{"Id": "f" * 64, "Config": {"User": "paude"}},
              {"Id": "e" * 64, "Config": {"User": "proxy"}}],
}


class FakePodman:
    """podman KIND inspect NAME...: the objects it knows, 125 when one is missing."""

    def __init__(self, garble_batches: bool = False) -> None:
        self.calls: list[tuple[str, ...]] = []
        self.garble_batches = garble_batches  # a call for several objects answers garbage
        self.lock = threading.Lock()

    def __call__(self, argv: Sequence[str], **_kw: object) -> CommandResult:
        with self.lock:
            self.calls.append(tuple(argv))
        kind, names = argv[1], list(argv[3:])
        key = "name" if kind == "network" else ("Id" if kind == "image" else "Name")
        found = [o for o in OBJECTS[kind] if o[key] in names]
        missing = [n for n in names if n not in {o[key] for o in found}]
        out = "not json" if self.garble_batches and len(names) > 1 else json.dumps(found)
        err = "".join(f'Error: no such object: "{n}"\n' for n in missing)
        return CommandResult(tuple(argv), 125 if missing else 0, out, err)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakePodman:
    found = FakePodman()
    monkeypatch.setattr(proc, "run", found)
    return found


def test_one_call_per_kind_answers_every_read(fake: FakePodman) -> None:
    wanted = {"container": ["s-agent", "s-proxy", "s-gateway"],
              "network": ["s-internal", "s-egress"], "volume": ["s-workspace"]}
    with batchread.primed(wanted):
        assert podman.inspect("container", "s-proxy") == PROXY
        assert podman.inspect("network", "s-egress") == {"name": "s-egress"}
        assert podman.inspect("volume", "s-workspace") == {"Name": "s-workspace"}
        # The containers' images were asked for once, together, when the containers came.
        assert podman.inspect("image", "e" * 64) == OBJECTS["image"][1]
        assert podman.inspect("image", "f" * 64) == OBJECTS["image"][0]
        assert podman.inspect("container", "s-gateway") == GATEWAY
    assert sorted(fake.calls) == sorted([
        ("podman", "container", "inspect", "s-agent", "s-gateway", "s-proxy"),
        ("podman", "network", "inspect", "s-egress", "s-internal"),
        ("podman", "volume", "inspect", "s-workspace"),
        ("podman", "image", "inspect", "e" * 64, "f" * 64)])


def test_what_a_batch_did_not_return_is_asked_alone(fake: FakePodman) -> None:
    with batchread.primed({"container": ["s-agent", "s-gone"]}):
        assert podman.inspect("container", "s-agent") == AGENT
        assert podman.inspect("container", "s-gone") is None  # asked again: missing
    assert fake.calls[-1] == ("podman", "container", "inspect", "s-gone")
    assert len([c for c in fake.calls if c[1] == "container"]) == 2


def test_an_unreadable_batch_falls_back_to_single_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakePodman(garble_batches=True)
    monkeypatch.setattr(proc, "run", fake)
    with batchread.primed({"container": ["s-agent", "s-proxy"]}):
        assert podman.inspect("container", "s-agent") == AGENT
        assert podman.inspect("container", "s-proxy") == PROXY
    assert fake.calls == [("podman", "container", "inspect", "s-agent", "s-proxy"),
                          ("podman", "container", "inspect", "s-agent"),
                          ("podman", "container", "inspect", "s-proxy")]


def test_answers_last_only_while_primed(fake: FakePodman) -> None:
    with batchread.primed({"container": ["s-agent"]}):
        assert batchread.lookup("container", "s-agent") == AGENT
    assert batchread.lookup("container", "s-agent") is None
    assert podman.inspect("container", "s-agent") == AGENT  # asked afresh
    assert fake.calls[-1] == ("podman", "container", "inspect", "s-agent")
    assert batchread.lookup("image", "f" * 64) is None  # the follow-up is gone too
