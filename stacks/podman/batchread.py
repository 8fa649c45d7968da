"""One podman call per kind of object for all of a session's reads.

A plan's reads (prerefresh.py) ask podman about each object on its own, then about each
container's image: eleven podman processes for a session, in two waves. On a two-core
machine each podman start is mostly CPU, so running them all at once takes as long as
the two waves. While `primed` is on, podman.inspect answers the objects it names from one
`podman KIND inspect` per kind, started at once, and each container's image configuration
from one more call. Anything a batch did not return (a missing object: podman answers 125
and lists the others) is asked for on its own, exactly as without priming. The state is
this process's alone: the plugins' fork server forks before any of these threads runs
(paude/forkserver.py refuses to fork once threads exist)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

from paude import proc

Entry = dict[str, Any]

_LOCK = threading.Lock()
_ANSWERS: dict[tuple[str, str], Future[Entry | None]] = {}


def lookup(kind: str, name: str) -> Entry | None:
    """The primed answer for one object; None when it was not primed or not found (the
    caller then asks podman itself)."""
    with _LOCK:
        future = _ANSWERS.get((kind, name))
    return future.result() if future is not None else None


@contextmanager
def primed(wanted: Mapping[str, Sequence[str]]) -> Iterator[None]:
    """While inside, podman.inspect answers the wanted objects (kind -> names) from one
    podman call per kind, and containers' images from one more."""
    keys: list[tuple[str, str]] = []
    try:
        for kind, names in wanted.items():
            keys += _start(kind, sorted(set(names)), keys)
        yield
    finally:
        with _LOCK:
            for key in keys:
                _ANSWERS.pop(key, None)


def _start(kind: str, names: list[str], keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Register a future per name not primed yet and start their one podman call."""
    with _LOCK:
        futures = {n: _ANSWERS.setdefault((kind, n), Future()) for n in names
                   if (kind, n) not in _ANSWERS}
    if futures:
        threading.Thread(target=_fetch, args=(kind, futures, keys), daemon=True,
                         name=f"batchread-{kind}").start()
    return [(kind, n) for n in futures]


def _fetch(kind: str, futures: dict[str, Future[Entry | None]],
           keys: list[tuple[str, str]]) -> None:
    from .podman import PODMAN  # here: podman.py imports this module for inspect()

    found: dict[str, Entry] = {}
    try:
        result = proc.run([PODMAN, kind, "inspect", *futures], check=False,
                          log_output=False)
        found = {_name(kind, e): e for e in _entries(result.stdout)}
        if kind == "container":
            # Before the containers' reads go on: their drift check reads the image's
            # configuration next (stacks/podman/observe.py).
            images = sorted({str(e.get("Image") or "") for e in found.values()} - {""})
            keys += _start("image", images, keys)
    finally:
        for name, future in futures.items():
            future.set_result(found.get(name))


def _entries(stdout: str) -> list[Entry]:
    try:
        data = json.loads(stdout or "[]")
    except ValueError:
        return []
    return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []


def _name(kind: str, entry: Entry) -> str:
    """The name an entry answers to: what the reads ask by (an image: its ID)."""
    if kind == "image":
        return str(entry.get("Id") or "")
    return str(entry.get("name") if kind == "network" else entry.get("Name") or "")
