"""A stack's deployment read from a file backend's state, or left to the engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto

from paude import engine, statefile

DEPLOYMENT: dict[str, Any] = {
    "resources": [{"type": "pulumi:pulumi:Stack", "urn": "urn:pulumi:demo::paude::x",
                   "outputs": {"owner": "/repo"}}],
    "pending_operations": [{"type": "creating", "resource": {"urn": "u"}}]}


def _state(root: Path, *, legacy: bool = False, body: str | None = None) -> Path:
    stacks = root / ".pulumi" / "stacks"
    folder = stacks if legacy else stacks / "paude"
    folder.mkdir(parents=True, exist_ok=True)
    if not legacy:
        (root / ".pulumi" / "meta.yaml").write_text("version: 1\n")
    path = folder / "demo.json"
    path.write_text(body if body is not None else json.dumps(
        {"version": 3, "checkpoint": {"stack": "x", "latest": DEPLOYMENT}}))
    return path


@pytest.mark.parametrize("legacy", [False, True])
def test_the_deployment_is_read_from_the_state_file(tmp_path: Path, legacy: bool) -> None:
    _state(tmp_path, legacy=legacy)
    assert statefile.read(f"file://{tmp_path}", "paude", "demo") == DEPLOYMENT


def test_a_stack_without_a_file_is_missing(tmp_path: Path) -> None:
    _state(tmp_path)
    assert statefile.read(f"file://{tmp_path}", "paude", "other") is statefile.MISSING


def test_a_stack_never_applied_has_an_empty_deployment(tmp_path: Path) -> None:
    _state(tmp_path, body=json.dumps({"version": 3, "checkpoint": {"stack": "x"}}))
    assert statefile.read(f"file://{tmp_path}", "paude", "demo") == {}


@pytest.mark.parametrize("case", ["gzip", "broken", "other-backend", "no-backend"])
def test_anything_unexpected_is_left_to_the_engine(tmp_path: Path, case: str) -> None:
    url = f"file://{tmp_path}"
    if case == "gzip":
        path = _state(tmp_path)
        path.with_name("demo.json.gz").write_bytes(b"\x1f\x8b")
    elif case == "broken":
        _state(tmp_path, body="{half")
    elif case == "other-backend":
        url = "s3://bucket/state"
    assert statefile.read(url, "paude", "demo") is None


def test_outputs_come_from_the_state_file_unless_secret(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    _state(tmp_path)
    asked: list[str] = []
    monkeypatch.setattr(auto.Stack, "outputs", lambda self: asked.append("engine") or {})
    stack = engine._Named("demo", None, f"file://{tmp_path}")  # type: ignore[arg-type]
    assert {k: v.value for k, v in stack.outputs().items()} == {"owner": "/repo"}
    assert asked == []
    secret = {**DEPLOYMENT["resources"][0], "outputs": {
        "token": {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
                  "ciphertext": "v1:x"}}}
    _state(tmp_path, body=json.dumps({"version": 3, "checkpoint": {
        "latest": {"resources": [secret]}}}))
    stack.outputs()
    assert asked == ["engine"]


def _history(root: Path, stamp: int, record: dict[str, Any], *, layout: str = "project") -> None:
    folder = root / ".pulumi" / "history" / ("paude/demo" if layout == "project" else "demo")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"demo-{stamp}.history.json").write_text(json.dumps(record))
    (folder / f"demo-{stamp}.checkpoint.json").write_text("{}")


UPDATE = {"kind": "update", "startTime": 1796286033, "message": "", "environment": {},
          "config": {}, "version": 0, "result": "succeeded", "endTime": 1796286041,
          "resourceChanges": {"replace": 1, "same": 9}}


@pytest.mark.parametrize("layout", ["project", "legacy"])
def test_the_last_update_is_the_newest_history_record(tmp_path: Path, layout: str) -> None:
    _history(tmp_path, 9, {**UPDATE, "kind": "refresh"}, layout=layout)
    _history(tmp_path, 10, UPDATE, layout=layout)  # newer, though it sorts first as text
    assert statefile.last_update(f"file://{tmp_path}", "paude", "demo") == UPDATE
    assert statefile.last_update(f"file://{tmp_path}", "paude", "other") is None
    assert statefile.last_update("s3://bucket/state", "paude", "demo") is None


def test_the_update_summary_comes_from_the_history_unless_unreadable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    monkeypatch.setattr(auto.Stack, "info", lambda self, show_secrets=True: asked.append("engine"))
    stack = engine._Named("demo", None, f"file://{tmp_path}")  # type: ignore[arg-type]
    _history(tmp_path, 10, UPDATE)
    summary = stack.info()
    assert summary is not None and asked == []
    assert (summary.kind, summary.result, summary.resource_changes) == (
        "update", "succeeded", {"replace": 1, "same": 9})
    assert summary.end_time is not None and summary.end_time.timestamp() == 1796286041
    _history(tmp_path, 11, {"kind": "update"})  # no result: left to the engine
    stack.info()
    assert asked == ["engine"]
