"""Pushed images are read back from their registry: a deleted tag is drift."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from paude.proc import CommandResult
from paude.results import ResourceChange
from paude.stacks.openshift.images import PushedImageProvider
from paude.stacks.podman import podman
from paude.summary import summarize

REMOTE = "registry.example:5000/team/paude-agent:0123456789abcdef"
PROPS = {"remote": REMOTE, "tag": "localhost/paude-agent:0123456789abcdef",
         "tls_verify": False, "digest": "sha256:aa", "image_id": "abc", "built": True}


class Registry:
    """`podman search --list-tags` answers, recorded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, code: int, stdout: str = "",
                 stderr: str = "") -> None:
        self.calls: list[list[str]] = []
        self.reply = (code, stdout, stderr)
        monkeypatch.setattr("paude.stacks.podman.podman.proc.run", self.run)

    def run(self, argv: Sequence[str], **_kw: Any) -> CommandResult:
        self.calls.append(list(argv))
        return CommandResult(tuple(argv), *self.reply)


def tags(*names: str) -> str:
    return json.dumps([{"Name": "registry.example:5000/team/paude-agent", "Tags": list(names)}])


def test_a_present_tag_is_no_drift(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry(monkeypatch, 0, tags("old", "0123456789abcdef"))
    read = PushedImageProvider().read(REMOTE, dict(PROPS))
    assert "drift" not in read.outs
    assert registry.calls == [["podman", "search", "--list-tags", "--limit", "1000000",
                               "--tls-verify=false", "--format", "json",
                               "registry.example:5000/team/paude-agent"]]


def test_a_deleted_tag_is_drift_and_pushes_again(monkeypatch: pytest.MonkeyPatch) -> None:
    Registry(monkeypatch, 0, tags("old"))
    provider = PushedImageProvider()
    read = provider.read(REMOTE, dict(PROPS))
    assert read.outs["drift"] == [
        "tag 0123456789abcdef is missing from registry.example:5000/team/paude-agent"]
    assert read.inputs is not None and read.inputs["drift"] == read.outs["drift"]
    news = {k: v for k, v in PROPS.items() if k not in ("image_id", "built")}
    diff = provider.diff(REMOTE, read.outs, news)
    assert diff.changes and diff.replaces == ["drift"]
    assert not provider.diff(REMOTE, dict(PROPS), news).changes


def test_a_repository_with_no_tags_left(monkeypatch: pytest.MonkeyPatch) -> None:
    Registry(monkeypatch, 125, stderr="Error: getting repository tags: fetching tags list: "
                                      "invalid status code from registry 404 (Not Found)")
    assert PushedImageProvider().read(REMOTE, dict(PROPS)).outs["drift"]


@pytest.mark.parametrize(("code", "stdout", "stderr"), [
    (125, "", "Error: pinging container registry: connection refused"),
    (125, "", "unauthorized: authentication required"),
    (0, "not json", ""),
])
def test_an_unreadable_registry_is_no_evidence(monkeypatch: pytest.MonkeyPatch, code: int,
                                               stdout: str, stderr: str) -> None:
    Registry(monkeypatch, code, stdout, stderr)
    assert "drift" not in PushedImageProvider().read(REMOTE, dict(PROPS)).outs


def test_registry_tags_of_a_reference_without_a_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry(monkeypatch, 0, tags())
    assert PushedImageProvider().read("x", {**PROPS, "remote": "host:5000/repo"}).outs.get(
        "drift") is None
    assert registry.calls == []
    assert podman.registry_tags("host:5000/repo", tls_verify=True) == set()


def test_the_plan_says_the_image_is_pushed_again_not_rebuilt() -> None:
    drifted = ResourceChange("agent-image", "cluster:PushedImage", "replace",
                             diff_keys=("drift",), replace_keys=("drift",),
                             old_inputs={"drift": ["tag t is missing from r/paude-agent"]})
    (item,) = [i for i in summarize([drifted], new_session=False)]
    assert (item.kind, item.security) == ("drift", False)
    assert item.text == "agent image changed outside paude; apply pushes it again"
    assert item.details == ("tag t is missing from r/paude-agent",)
    both = ResourceChange("agent-image", "cluster:PushedImage", "replace",
                          replace_keys=("tag", "drift"), old_inputs={"drift": ["gone"]})
    assert [i.kind for i in summarize([both], new_session=False)] == ["drift", "image-rebuilt"]
