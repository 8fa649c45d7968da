"""engine_early.start: an update started beside its preview declares nothing
until it is let go, and a refusal ends it before its first resource (a stand-in stack whose
`up` runs the program in the update's thread, as the Automation API does)."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pytest

from paude import engine, engine_early, engine_workspace


@dataclass
class Workspace:
    stack: Stack
    program: Any = None

    def remove_stack(self, name: str) -> None:
        self.stack.calls.append(f"remove {name}")


@dataclass
class Outputs:
    outputs: dict[str, Any] = field(default_factory=dict)


class Stack:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.declared: list[str] = []
        self.workspace = Workspace(self, self.declare)
        self.name = "demo"

    def declare(self) -> None:
        self.declared.append("proxy")

    def up(self, *, program: Any = None, refresh: bool = False, **_kw: Any) -> Outputs:
        self.calls.append("up --refresh" if refresh else "up")
        try:
            (program or self.workspace.program)()
        except RuntimeError as exc:
            self.calls.append(f"failed: {exc}")
            raise
        return Outputs()


def handle_of(stack: Stack, making: Future[None] | None = None, *,
              new: bool = True) -> engine.StackHandle:
    return engine.StackHandle("demo", stack, new, making=making)  # type: ignore[arg-type]


def wait_for(condition: Any) -> None:
    for _ in range(500):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError("never happened")


def test_nothing_is_declared_until_the_update_is_let_go() -> None:
    stack = Stack()
    early = engine_early.start(handle_of(stack))
    wait_for(lambda: stack.calls == ["up"])  # the update runs, held at its gate
    threading.Event().wait(0.1)
    assert stack.declared == []
    assert early.go() == ((), {})
    assert stack.declared == ["proxy"]


def test_a_refused_update_fails_before_its_first_resource() -> None:
    stack = Stack()
    early = engine_early.start(handle_of(stack))
    wait_for(lambda: stack.calls == ["up"])
    early.stop()
    assert not early.thread.is_alive()
    assert stack.declared == []
    assert stack.calls[-1].startswith("failed: paude stopped this update")


def test_refused_before_the_stack_exists_the_update_never_starts() -> None:
    stack, making = Stack(), Future[None]()
    early = engine_early.start(handle_of(stack, making))
    early.verdict.set()  # refused while `stack init` still runs
    making.set_result(None)
    early.thread.join(5)
    assert stack.calls == [] and stack.declared == []
    # Control: let go instead, the same update declares the session.
    stack, making = Stack(), Future[None]()
    early = engine_early.start(handle_of(stack, making))
    making.set_result(None)
    early.go()
    assert stack.declared == ["proxy"]


def test_discard_ends_the_update_before_it_removes_the_stack() -> None:
    stack = Stack()
    handle = handle_of(stack, Future[None]())
    assert handle.making is not None
    handle.making.set_result(None)
    engine_early.start(handle)
    wait_for(lambda: stack.calls == ["up"])
    engine.discard(handle)
    assert stack.calls[0] == "up" and stack.calls[1].startswith("failed")
    assert stack.calls[2:] == ["remove demo"]
    assert stack.declared == []


def test_a_failed_update_reports_the_engine_error() -> None:
    stack = Stack()

    def broken() -> None:
        raise ValueError("boom")

    stack.workspace.program = broken
    early = engine_early.start(handle_of(stack))
    with pytest.raises(ValueError, match="boom"):
        early.go()


def test_only_the_sdks_abandoned_program_is_kept_off_the_terminal(
        monkeypatch: pytest.MonkeyPatch) -> None:
    reported: list[str] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: reported.append(repr(u.object)))
    monkeypatch.setattr(engine_workspace, "_previous_hook", None)
    engine_workspace.quiet_abandoned_programs()

    async def cleanup() -> None:
        asyncio.get_running_loop()  # what the SDK's callback shutdown asks for

    async def run_in_stack() -> None:  # the SDK's name, and its `finally`
        try:
            await asyncio.sleep(3600)
        finally:
            await cleanup()

    async def other() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await cleanup()

    for make in (run_in_stack, other):
        loop = asyncio.new_event_loop()
        task = loop.create_task(make())
        loop.run_until_complete(asyncio.sleep(0))  # started, then left pending
        loop.close()
        del task, loop  # collected pending: its finally runs with no loop
        gc.collect()
    # The control: the same failure in any other coroutine is still reported.
    assert len(reported) == 1 and "other" in reported[0], reported


def test_a_session_whose_objects_read_as_recorded_is_updated_by_the_early_update() -> None:
    stack = Stack()
    handle = handle_of(stack, new=False)
    early = engine_early.start(handle)
    wait_for(lambda: stack.calls == ["up"])
    handle.in_sync[:] = [True]  # the preview found every object as recorded
    early.go()
    assert stack.calls == ["up"] and stack.declared == ["proxy"]


def test_a_session_with_drift_is_updated_afresh_with_the_engines_refresh() -> None:
    # Started without a refresh, the early update cannot repair drift: refused, and the
    # update runs again with the refresh.
    stack = Stack()
    handle = handle_of(stack, new=False)
    early = engine_early.start(handle)
    wait_for(lambda: stack.calls == ["up"])
    handle.in_sync[:] = [False]
    early.go()
    assert stack.calls[0] == "up" and stack.calls[1].startswith("failed: paude stopped")
    assert stack.calls[2:] == ["up --refresh"] and stack.declared == ["proxy"]
