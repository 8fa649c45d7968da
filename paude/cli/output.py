"""The one place paude writes to the terminal."""

from __future__ import annotations

import functools
import re
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from rich.console import Console

    from paude.results import ProgressEvent


@functools.cache
def _console(stderr: bool) -> Console:
    # Made on first use: importing rich costs more than a short command's whole run.
    from rich.console import Console

    # markup off: container and engine text may contain [brackets].
    return Console(stderr=stderr, markup=False, highlight=False, soft_wrap=True)


class _Lazy:
    """A console made when first printed to."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr

    def __getattr__(self, attr: str) -> object:
        return getattr(_console(self._stderr), attr)


out: Console = _Lazy(stderr=False)  # type: ignore[assignment]
err: Console = _Lazy(stderr=True)  # type: ignore[assignment]

# What paude prints can hold text the agent wrote: a Dockerfile's words in a refusal, a
# build step's output in an error, a name in the repository. Control characters (C0 but
# newline and tab, DEL, C1) are shown as escapes, so none of it reaches the terminal as a
# sequence (a clipboard write, a title, a line drawn over another); rich keeps ESC.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe(message: str) -> str:
    """`message` with its control characters written as escapes (\\x1b)."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", message)


_VERBS = {"keep": "releasing (kept on disk)", "create": "creating", "replace": "replacing",
          "update": "updating", "delete": "deleting", "same": "checking"}
_DONE = {"keep": "kept", "create": "created", "replace": "replaced", "update": "updated",
         "delete": "deleted", "same": "checked"}


def _line(stream: TextIO, message: str) -> None:
    # Flushed at once, as rich does: lines keep their order with the styled ones, and reach
    # whoever reads a pipe (a test, a wrapper) before the command ends.
    stream.write(safe(message) + "\n")
    stream.flush()


def text(message: str = "") -> None:
    """A line on stdout (unstyled lines skip rich: importing it costs a short command 50 ms,
    and plain text needs nothing it does)."""
    _line(sys.stdout, message)


def info(message: str) -> None:
    """A status line on stderr (keeps stdout clean for --json)."""
    _line(sys.stderr, message)


def warn(message: str) -> None:
    """A warning on stderr."""
    err.print(f"warning: {safe(message)}", style="yellow")


def error(message: str) -> None:
    """An error on stderr."""
    err.print(f"error: {safe(message)}", style="red")


def progress(event: ProgressEvent) -> None:
    """One engine step starting or finishing."""
    if event.phase == "start":
        err.print(safe(f"  {_VERBS.get(event.op, event.op)} {event.resource}..."), style="dim")
    elif event.phase == "done":
        took = f" ({event.seconds:.1f}s)" if event.seconds is not None else ""
        err.print(safe(f"  {_DONE.get(event.op, event.op)} {event.resource}{took}"))
    else:
        err.print(safe(f"  FAILED {event.op} {event.resource}"), style="red")


_last_tenth = [-1]


def download(done: int, total: int | None) -> None:
    """Progress of the first-use engine download, one line per tenth."""
    if total:
        tenth = done * 10 // total
        if tenth != _last_tenth[0]:
            _last_tenth[0] = tenth
            err.print(f"  downloading the Pulumi engine: {done / 1e6:.1f} of {total / 1e6:.1f} MB")
    elif done % (8 << 20) < (64 << 10):
        err.print(f"  downloading the Pulumi engine: {done / 1e6:.1f} MB")


def confirm(question: str) -> bool:
    """Ask yes/no on the terminal; anything but yes is no, and no terminal means no."""
    if not sys.stdin.isatty():
        err.print(f"{safe(question)} [y/N] no (stdin is not a terminal; pass --yes to proceed)")
        return False
    answer = err.input(f"{safe(question)} [y/N] ")
    return answer.strip().lower() in ("y", "yes")
