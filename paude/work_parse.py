"""Reading templates/workspace-work.sh's answer: od's hex of NUL-separated records, checked
field by field. Names come from the agent: any byte may appear, and nothing unexpected is
trusted (an unreadable answer is an error, never "no work")."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from paude.errors import PaudeError

SAMPLE = 5  # names shown per kind; the script sends no more
_NAME_SHOWN = 120  # characters of one name shown
_SETUP_SHOWN = 4096  # bytes of paude-setup's state answer kept (it is a few short lines)
_MAX_COUNT = 10**9
SHA = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?")
# Refs the script may name; a refspec can hold none of the excluded characters.
_REF = re.compile(r"refs/[^\x00-\x20\x7f:?*\[\\^~]+")
_PATH_KINDS = ("changed", "untracked", "ignored", "files", "embedded")
_TREES = ("head", "index", "worktree")


class WorkReportError(PaudeError):
    """The session's answer about its work could not be read: nothing may be assumed."""


@dataclass(frozen=True)
class Paths:
    """A kind of path in the workspace: how many, and the first few names (printable)."""

    count: int = 0
    sample: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        """The JSON form: count and sample."""
        return {"count": self.count, "sample": list(self.sample)}


@dataclass(frozen=True)
class Observed:
    """The script's answer, parsed and checked, before the host looked at it."""

    git: bool  # False: the workspace is not a repository (or is missing)
    refs: tuple[tuple[str, str, int | None], ...] = ()  # (ref, tip, commits; None: no commit)
    head: tuple[str, str | None, int] = ("unborn", None, 0)  # (branch|detached|unborn, ...)
    stash: tuple[tuple[str, int], ...] = ()  # (tip, commits), stash@{0} first
    trees: dict[str, str | None] = field(default_factory=dict)
    paths: dict[str, Paths] = field(default_factory=dict)
    rescued: tuple[tuple[str, str], ...] = ()  # (name, commit) made by a rescue
    setup: tuple[int, str] | None = None  # paude-setup state's (exit code, output): status


def printable(raw: bytes) -> str:
    """A name from the agent, safe to show: undecodable bytes and controls escaped, capped."""
    text = raw.decode("utf-8", "backslashreplace")
    if not text.isprintable():
        text = repr(text)[1:-1]
    return text if len(text) <= _NAME_SHOWN else text[:_NAME_SHOWN - 3] + "..."


def decode(stdout: str) -> bytes:
    """The script's stream, sent as od's hex."""
    try:
        return bytes.fromhex(stdout)
    except ValueError:
        raise WorkReportError(f"unreadable answer (not hex): {stdout.strip()[:80]!r}") from None


def parse(data: bytes) -> Observed:
    """Check and parse the script's NUL-separated records; anything unexpected is an error."""
    if not data:
        raise WorkReportError("the answer is empty")
    fields = data.split(b"\0")
    if fields[-1] != b"":
        raise WorkReportError("the answer does not end with a complete record")
    reader = _Reader(fields[:-1])
    if reader.take() != b"paude-work" or reader.take() != b"1":
        raise WorkReportError("the answer does not start with a version-1 header")
    git = True
    refs: list[tuple[str, str, int | None]] = []
    stash: list[tuple[str, int]] = []
    rescued: list[tuple[str, str]] = []
    setup: tuple[int, str] | None = None
    head: tuple[str, str | None, int] = ("unborn", None, 0)
    trees: dict[str, str | None] = {}
    paths: dict[str, Paths] = {}
    while True:
        key = reader.take().decode("ascii", "replace")
        if key == "end":
            if reader.take() != b"ok" or not reader.done:
                raise WorkReportError("the answer goes on after its end")
            break
        if key in _PATH_KINDS:
            paths[key] = reader.paths(strip=3 if key == "changed" else 0)
            continue
        value = reader.take()
        if key == "git":
            git = value == b"yes"
            if value not in (b"yes", b"no", b"missing"):
                raise WorkReportError(f"unknown workspace kind {value[:20]!r}")
        elif key == "ref":
            tip, count, ref = _split(value, 3)
            refs.append((_ref(ref), _sha(tip), _commits(count, allow_none=True)))
        elif key == "head":
            state, tip, count = _split(value, 3)
            if state not in (b"branch", b"detached", b"unborn"):
                raise WorkReportError(f"unknown HEAD state {state[:20]!r}")
            head = (state.decode(), None if state == b"unborn" else _sha(tip),
                    _commits(count) or 0)
        elif key == "stash":
            number, tip, count = _split(value, 3)
            if number != str(len(stash)).encode():
                raise WorkReportError("stash entries out of order")
            stash.append((_sha(tip), _commits(count) or 0))
        elif key == "tree":
            name, tree = _split(value, 2)
            if name.decode("ascii", "replace") not in _TREES:
                raise WorkReportError(f"unknown tree {name[:20]!r}")
            trees[name.decode()] = None if tree == b"-" else _sha(tree)
        elif key == "rescued":
            name, commit = _split(value, 2)
            if not re.fullmatch(rb"worktree|index|files|stash-[1-9][0-9]*", name):
                raise WorkReportError(f"unknown rescued ref {name[:30]!r}")
            rescued.append((name.decode(), _sha(commit)))
        elif key == "setup":
            code, _, text = value.partition(b" ")
            if not re.fullmatch(rb"[0-9]{1,3}", code):
                raise WorkReportError(f"unknown setup exit code {code[:20]!r}")
            setup = (int(code), text[:_SETUP_SHOWN].decode("utf-8", "replace"))
        else:
            raise WorkReportError(f"unknown record {key[:20]!r}")
    return Observed(git, tuple(refs), head, tuple(stash), trees, paths, tuple(rescued), setup)


class _Reader:
    def __init__(self, fields: list[bytes]) -> None:
        self.fields, self.at = fields, 0

    @property
    def done(self) -> bool:
        return self.at == len(self.fields)

    def take(self) -> bytes:
        if self.done:
            raise WorkReportError("the answer ends early (no end record)")
        self.at += 1
        return self.fields[self.at - 1]

    def paths(self, *, strip: int) -> Paths:
        count = _commits(self.take())
        shown = _commits(self.take())
        if count is None or shown is None or shown > min(count, SAMPLE):
            raise WorkReportError("a path list has inconsistent counts")
        names = [self.take() for _ in range(shown)]
        if strip and any(len(n) <= strip for n in names):
            raise WorkReportError("a status line has no path")
        return Paths(count, tuple(printable(n[strip:]) for n in names))


def _split(value: bytes, parts: int) -> list[bytes]:
    items = value.split(b" ", parts - 1)
    if len(items) != parts:
        raise WorkReportError(f"a record has {len(items)} fields, not {parts}: {value[:80]!r}")
    return items


def _sha(value: bytes) -> str:
    text = value.decode("ascii", "replace")
    if not SHA.fullmatch(text):
        raise WorkReportError(f"not an object id: {value[:80]!r}")
    return text


def _commits(value: bytes, *, allow_none: bool = False) -> int | None:
    if allow_none and value == b"-":
        return None
    if not value.isdigit() or len(value) > 10 or int(value) > _MAX_COUNT:
        raise WorkReportError(f"not a count: {value[:20]!r}")
    return int(value)


def _ref(value: bytes) -> str:
    ref = os.fsdecode(value)
    if not _REF.fullmatch(ref):
        raise WorkReportError(f"not a ref name: {printable(value)}")
    return ref
