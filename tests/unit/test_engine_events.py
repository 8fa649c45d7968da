"""engine._EventCollector on synthetic engine events, and _engine_error's mapping."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from pulumi.automation import (
    CommandError,
    ConcurrentUpdateError,
    DiagnosticEvent,
    EngineEvent,
    OpType,
    ResOpFailedEvent,
    ResourcePreEvent,
    ResOutputsEvent,
    StackNotFoundError,
    StepEventMetadata,
    StepEventStateMetadata,
)
from pulumi.automation._cmd import CommandResult

from paude import engine
from paude.errors import EngineError, SessionBusyError, SessionNotFoundError
from paude.results import ProgressEvent, ResourceChange

STACK_URN = "urn:pulumi:demo::paude::pulumi:pulumi:Stack::paude-demo"
CONTAINER = "pulumi-python:dynamic/podman:Container"
VOLUME = "pulumi-python:dynamic/podman:Volume"
_seq = itertools.count()


def urn(name: str, type_: str = CONTAINER) -> str:
    return f"urn:pulumi:demo::paude::pulumi:pulumi:Stack${type_}::{name}"


def state(name: str, type_: str = CONTAINER, *, inputs: dict[str, Any] | None = None,
          retain: bool | None = None) -> StepEventStateMetadata:
    return StepEventStateMetadata(type=type_, urn=urn(name, type_), id=name, parent=STACK_URN,
                                  provider="", retain_on_delete=retain, inputs=inputs)


def meta(op: OpType, name: str, type_: str = CONTAINER, *,
         old: StepEventStateMetadata | None = None, new: StepEventStateMetadata | None = None,
         keys: list[str] | None = None, diffs: list[str] | None = None,
         full_urn: str | None = None) -> StepEventMetadata:
    return StepEventMetadata(op=op, urn=full_urn or urn(name, type_), type=type_, provider="",
                             old=old, new=new, keys=keys, diffs=diffs)


def pre(m: StepEventMetadata) -> EngineEvent:
    return EngineEvent(next(_seq), 0, resource_pre_event=ResourcePreEvent(m))


def done(m: StepEventMetadata) -> EngineEvent:
    return EngineEvent(next(_seq), 0, res_outputs_event=ResOutputsEvent(m))


def failed(m: StepEventMetadata) -> EngineEvent:
    return EngineEvent(next(_seq), 0, res_op_failed_event=ResOpFailedEvent(m, 1, 1))


def diag(message: str, severity: str = "error") -> EngineEvent:
    return EngineEvent(next(_seq), 0,
                       diagnostic_event=DiagnosticEvent(message, "never", severity))


def collect(*events: EngineEvent) -> tuple[tuple[ResourceChange, ...], list[ProgressEvent],
                                          list[str]]:
    progress: list[ProgressEvent] = []
    collector = engine._EventCollector(progress.append)
    for event in events:
        collector(event)
    return collector.result(), progress, collector.errors


# ---------------------------------------------------------------- op folding


def test_create_is_recorded_with_new_inputs() -> None:
    m = meta(OpType.CREATE, "agent", new=state("agent", inputs={"image": "i:1", "__provider": "x"}))
    (change,), _, _ = collect(pre(m), done(m))
    assert change == ResourceChange("agent", "podman:Container", "create")
    assert change.new_inputs == {"image": "i:1"}
    assert change.old_inputs == {}


def test_replacement_steps_merge_into_one_replace() -> None:
    old = state("agent", inputs={"image": "i:1", "__provider": "p"})
    new = state("agent", inputs={"image": "i:2", "__provider": "p"})
    replace = meta(OpType.REPLACE, "agent", keys=["image", "__provider"],
                   diffs=["image", "__provider"])
    delete_replaced = meta(OpType.DELETE_REPLACED, "agent", old=old)
    create_replacement = meta(OpType.CREATE_REPLACEMENT, "agent", new=new)
    changes, _, _ = collect(pre(delete_replaced), done(delete_replaced), pre(replace),
                            done(replace), pre(create_replacement), done(create_replacement))
    assert len(changes) == 1
    (change,) = changes
    assert change.op == "replace"
    assert change.replace_keys == ("image",)
    assert change.diff_keys == ("image",)
    # Old inputs came from delete-replaced, new ones from create-replacement.
    assert change.old_inputs == {"image": "i:1"}
    assert change.new_inputs == {"image": "i:2"}
    assert not change.retained


@pytest.mark.parametrize(("op", "expected"), [
    (OpType.SAME, "same"), (OpType.UPDATE, "update"), (OpType.DELETE, "delete"),
    (OpType.READ, "same"), (OpType.DISCARD, "delete"), (OpType.DISCARD_REPLACED, "replace"),
    (OpType.IMPORT, "create"), (OpType.IMPORT_REPLACEMENT, "replace"),
])
def test_ops_fold_into_five(op: OpType, expected: str) -> None:
    (change,), _, _ = collect(pre(meta(op, "agent")))
    assert change.op == expected


@pytest.mark.parametrize("op", [OpType.REFRESH, OpType.READ_REPLACEMENT,
                                OpType.REMOVE_PENDING_REPLACE])
def test_unmapped_ops_are_ignored(op: OpType) -> None:
    changes, progress, _ = collect(pre(meta(op, "agent")), done(meta(op, "agent")))
    assert changes == () and progress == []


def test_riskier_op_wins_over_a_later_milder_one() -> None:
    changes, _, _ = collect(pre(meta(OpType.REPLACE, "agent", keys=["env"])),
                            pre(meta(OpType.SAME, "agent")))
    assert [c.op for c in changes] == ["replace"]
    assert changes[0].replace_keys == ("env",)


def test_results_are_sorted_by_name() -> None:
    changes, _, _ = collect(*(pre(meta(OpType.SAME, n)) for n in ("proxy", "agent", "workspace")))
    assert [c.name for c in changes] == ["agent", "proxy", "workspace"]


# ---------------------------------------------------------------- retained


def test_retained_delete_is_detected() -> None:
    m = meta(OpType.DELETE, "workspace", VOLUME, old=state("workspace", VOLUME, retain=True))
    (change,), _, _ = collect(pre(m))
    assert change.op == "delete" and change.retained
    assert change.type == "podman:Volume"


def test_retained_replace_is_detected_from_the_delete_step() -> None:
    old = state("workspace", VOLUME, retain=True, inputs={"name": "a"})
    steps = [meta(OpType.REPLACE, "workspace", VOLUME, keys=["name"]),
             meta(OpType.DELETE_REPLACED, "workspace", VOLUME, old=old),
             meta(OpType.CREATE_REPLACEMENT, "workspace", VOLUME,
                  new=state("workspace", VOLUME, inputs={"name": "b"}))]
    (change,), _, _ = collect(*(pre(s) for s in steps))
    assert change.op == "replace" and change.retained


def test_plain_delete_is_not_retained() -> None:
    m = meta(OpType.DELETE, "agent", old=state("agent", retain=False))
    (change,), _, _ = collect(pre(m))
    assert not change.retained


def test_same_with_retain_flag_is_not_marked_retained() -> None:
    m = meta(OpType.SAME, "workspace", VOLUME, old=state("workspace", VOLUME, retain=True))
    (change,), _, _ = collect(pre(m))
    assert not change.retained


# ---------------------------------------------------------------- skipped resources


def test_stack_and_providers_are_skipped() -> None:
    stack = meta(OpType.CREATE, "paude-demo", "pulumi:pulumi:Stack", full_urn=STACK_URN)
    provider = meta(OpType.CREATE, "default", "pulumi:providers:pulumi-python",
                    full_urn="urn:pulumi:demo::paude::pulumi:providers:pulumi-python::default")
    changes, progress, _ = collect(pre(stack), done(stack), pre(provider), done(provider))
    assert changes == ()
    assert progress == []


# ---------------------------------------------------------------- progress


def test_one_start_done_pair_per_created_resource() -> None:
    agent, proxy = meta(OpType.CREATE, "agent"), meta(OpType.CREATE, "proxy")
    _, progress, _ = collect(pre(agent), pre(proxy), done(proxy), done(agent))
    assert [(p.resource, p.op, p.phase) for p in progress] == [
        ("agent", "create", "start"), ("proxy", "create", "start"),
        ("proxy", "create", "done"), ("agent", "create", "done")]
    starts = [p for p in progress if p.phase == "start"]
    dones = [p for p in progress if p.phase == "done"]
    assert all(p.seconds is None for p in starts)
    assert all(p.seconds is not None and p.seconds >= 0 for p in dones)


def test_replacement_reports_once() -> None:
    steps = [meta(OpType.DELETE_REPLACED, "agent"), meta(OpType.REPLACE, "agent"),
             meta(OpType.CREATE_REPLACEMENT, "agent")]
    events = [e for s in steps for e in (pre(s), done(s))]
    _, progress, _ = collect(*events)
    assert [(p.resource, p.op, p.phase) for p in progress] == [
        ("agent", "replace", "start"), ("agent", "replace", "done")]


def test_retained_delete_reports_keep() -> None:
    m = meta(OpType.DELETE, "workspace", VOLUME, old=state("workspace", VOLUME, retain=True))
    (change,), progress, _ = collect(pre(m), done(m))
    assert [(p.resource, p.op, p.phase) for p in progress] == [
        ("workspace", "keep", "start"), ("workspace", "keep", "done")]
    # The recorded change stays a (retained) delete.
    assert change.op == "delete" and change.retained


def test_plain_delete_reports_delete() -> None:
    m = meta(OpType.DELETE, "agent", old=state("agent"))
    _, progress, _ = collect(pre(m), done(m))
    assert [p.op for p in progress] == ["delete", "delete"]


def test_unchanged_resources_report_no_progress() -> None:
    m = meta(OpType.SAME, "agent")
    _, progress, _ = collect(pre(m), done(m))
    assert progress == []


def test_failed_step_reports_failed() -> None:
    m = meta(OpType.CREATE, "proxy")
    changes, progress, _ = collect(pre(m), failed(m))
    assert [(p.resource, p.phase) for p in progress] == [("proxy", "start"), ("proxy", "failed")]
    assert [c.name for c in changes] == ["proxy"]


def test_collector_without_progress_callback() -> None:
    collector = engine._EventCollector(None)
    collector(pre(meta(OpType.CREATE, "agent")))
    assert [c.op for c in collector.result()] == ["create"]


# ---------------------------------------------------------------- diagnostics


def test_error_diagnostics_are_collected_stripped() -> None:
    _, _, errors = collect(diag("  container paude-demo-proxy did not stay running\n"),
                           diag("just info", "info"), diag("a warning", "warning"),
                           diag("second error", "error"))
    assert errors == ["container paude-demo-proxy did not stay running", "second error"]


# ---------------------------------------------------------------- _engine_error


def result(stderr: str, stdout: str = "", code: int = 255) -> CommandResult:
    return CommandResult(stdout, stderr, code)


def test_concurrent_update_is_session_busy() -> None:
    exc = ConcurrentUpdateError(result("error: [409] Conflict: Another update is currently "
                                       "in progress."))
    err = engine._engine_error(exc, "demo")
    assert type(err) is SessionBusyError
    assert err.message == "session demo is being changed by another paude or pulumi process"
    assert err.hint is not None
    assert "wait for it to finish" in err.hint and "pulumi cancel" in err.hint


def test_stack_not_found_is_session_not_found() -> None:
    err = engine._engine_error(StackNotFoundError(result("error: no stack named 'demo' found")),
                               "demo")
    assert type(err) is SessionNotFoundError
    assert err.message == "session demo has no stack"
    assert err.hint == "run `paude apply demo` first"


def test_command_error_carries_the_diagnostics() -> None:
    exc = CommandError(result("error: update failed"))
    err = engine._engine_error(exc, "demo", ["podman build failed: no space left", "",
                                             "second problem"])
    assert type(err) is EngineError
    assert err.message == ("the Pulumi engine failed for session demo:\n"
                           "    podman build failed: no space left\n"
                           "    second problem")
    assert err.hint is not None and "PAUDE_DEBUG=1" in err.hint


def test_command_error_without_diagnostics_uses_the_stderr_tail() -> None:
    stderr = "\n".join(f"noise {i}" for i in range(20)) + "\nerror: preview failed\n"
    err = engine._engine_error(CommandError(result(stderr)), "demo")
    assert type(err) is EngineError
    assert "    error: preview failed" in err.message
    assert "noise 0" not in err.message
    assert len(err.message.splitlines()) <= 13


def test_provider_tracebacks_are_reduced_to_their_message() -> None:
    from paude.engine_text import brief as _brief

    diagnostic = (
        "    Traceback (most recent call last):\n"
        '      File "/x/pulumi/dynamic/__main__.py", line 84, in wrapper\n'
        "        return fn(self, request, context)\n"
        "    paude.errors.CommandFailedError: `podman build --tag t` failed with exit code 1\n"
        "        curl: (6) Could not resolve host: example.invalid\n"
        "    update failed\n")
    assert _brief(diagnostic) == ("`podman build --tag t` failed with exit code 1\n"
                                  "        curl: (6) Could not resolve host: example.invalid")
    assert _brief("plain engine message\n") == "plain engine message"


def _refreshed(name: str, before: dict[str, Any], after: dict[str, Any] | None
               ) -> list[EngineEvent]:
    old = state(name, inputs=before)
    old.outputs = before
    new = None
    if after is not None:
        new = state(name, inputs=after)
        new.outputs = after
    m = meta(OpType.REFRESH, name, old=old, new=new)
    return [pre(m), done(m)]


def test_a_refresh_that_found_everything_as_recorded_is_in_sync() -> None:
    collector = engine._EventCollector(None)
    for event in (*_refreshed("proxy", {"a": 1}, {"a": 1}),
                  *_refreshed("agent", {"b": 2}, {"b": 2})):
        collector(event)
    assert collector.in_sync()
    assert collector.result() == ()  # refresh steps are not changes


@pytest.mark.parametrize("after", [{"a": 1, "drift": ["privileged"]}, None])
def test_drift_or_a_vanished_object_is_not_in_sync(after: dict[str, Any] | None) -> None:
    collector = engine._EventCollector(None)
    for event in (*_refreshed("proxy", {"a": 1}, after), *_refreshed("agent", {"b": 2}, {"b": 2})):
        collector(event)
    assert not collector.in_sync()


def test_no_refresh_is_not_in_sync() -> None:
    # A preview without a refresh says nothing about the live objects.
    assert not engine._EventCollector(None).in_sync()
    collector = engine._EventCollector(None)
    collector(_refreshed("proxy", {"a": 1}, {"a": 1})[0])  # begun, never finished
    assert not collector.in_sync()
