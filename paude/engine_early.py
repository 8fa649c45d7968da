"""An update started beside its preview and held at a gate until the preview is approved.
Part of the engine layer (paude/engine.py drives the runs).

The engine's start (a process, the key derivation, reading the stack, the language host)
costs about a third of a second, and a preview leaves the second core mostly idle: started
beside the preview, the update is at its first resource as soon as the verdict comes. The
program waits at the gate before declaring anything, so the update applies exactly the
program the preview checked, and only after the policies passed and the user said yes.
Refused (a failed preview, a no, Ctrl+C, any error), the program fails before its first
resource and the update changes no object; paude waits for its engine to end. (The engine
still records the failed update and writes the stack's state back: the same resources,
their secrets encrypted anew.)"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

from pulumi import automation as auto

from paude import engine
from paude.errors import AbortedError
from paude.results import ResourceChange

Applied = tuple[tuple[ResourceChange, ...], dict[str, Any]]


class Early:
    """One update started early (see start)."""

    def __init__(self, handle: engine.StackHandle, on_progress: engine.OnProgress | None
                 ) -> None:
        self.handle = handle
        self.on_progress = on_progress
        self.collector = engine._EventCollector(on_progress)
        self.verdict = threading.Event()
        self.approved = False
        self.outcome: Future[Applied] = Future()
        program = handle.stack.workspace.program
        assert program is not None  # a session's stack always has paude's program

        def gated() -> None:
            # Nothing is declared before the verdict: stopped, the update fails before its
            # first resource and changes nothing.
            self.verdict.wait()
            if not self.approved:
                raise RuntimeError("paude stopped this update before it declared anything")
            program()

        self.thread = threading.Thread(target=self._run, args=(gated,), daemon=True,
                                       name=f"paude-up-{handle.name}")
        self.thread.start()

    def _run(self, gated: engine.Program) -> None:
        try:
            engine.made(self.handle)
            if self.verdict.is_set() and not self.approved:
                raise AbortedError("refused before the update started")  # no engine needed
            result = self.handle.stack.up(on_event=self.collector, color="never",
                                          suppress_progress=True, program=gated)
        except BaseException as exc:
            self.outcome.set_exception(exc)
        else:
            self.outcome.set_result((self.collector.result(),
                                     {k: v.value for k, v in result.outputs.items()}))

    def go(self) -> Applied:
        """Let the update declare the session, and wait for it: what engine.up() returns.

        A session whose objects did not all read as recorded (the preview found drift, or
        could not tell) needs the engine's refresh, which this update, started without
        one, cannot do: it is refused, and the update runs afresh, with the refresh."""
        if not self.handle.new and self.handle.in_sync != [True]:
            self.stop()
            applied, outputs, _ = engine.up(self.handle, on_progress=self.on_progress)
            return applied, outputs
        self.approved = True
        self.verdict.set()
        try:
            return self.outcome.result()
        except auto.CommandError as exc:
            raise engine._failure(exc, self.handle.name, self.collector) from exc

    def stop(self) -> None:
        """Refuse the update and wait for its engine to end (it fails without a change).
        Once approved, the update is under way and ends as any update does."""
        if self.approved:
            return
        self.verdict.set()
        self.thread.join(timeout=60)

    def __enter__(self) -> Early:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def start(handle: engine.StackHandle, *, on_progress: engine.OnProgress | None = None
          ) -> Early:
    """Start the session's update now, without a refresh, to be let go once its preview
    is approved. A new stack has nothing recorded to read; a stack with state needs no
    refresh when paude's own reads found every object as recorded (see go())."""
    early = Early(handle, on_progress)
    handle.early.append(early)
    return early
