"""paude's engine plugins end when the engine that started them is gone.

The engine runs paude's dynamic providers and its policy pack as child processes and reads
their stdout for as long as it runs. An engine that dies without closing them (paude
killed with SIGKILL: its engine dies on the broken pipe to paude) leaves them orphaned:
idle forever, or still changing podman objects while the next paude repairs the session.
So each plugin watches its stdout pipe and exits once nobody reads it any more.
"""

from __future__ import annotations

import os
import select
import stat
import sys
import threading
from pathlib import Path

# How a plugin process is started: `python -m pulumi.dynamic` (dynamic providers) or
# `python -m paude.policies` (the policy pack).
_PLUGIN_MAINS = (("pulumi", "dynamic", "__main__.py"), ("paude", "policies", "__main__.py"))
_GONE = select.POLLERR | select.POLLHUP | select.POLLNVAL if hasattr(select, "poll") else 0


def in_plugin() -> bool:
    """Whether this process is one of paude's engine plugins (not paude itself)."""
    return tuple(Path(sys.argv[0] if sys.argv else "").parts[-3:]) in _PLUGIN_MAINS


def exit_with_engine() -> None:
    """In a plugin whose stdout is the engine's pipe, exit once the engine stops reading;
    elsewhere do nothing. Safe to call more than once."""
    if not in_plugin() or not _GONE or _started.is_set():
        return
    try:
        if not stat.S_ISFIFO(os.fstat(1).st_mode):
            return
    except OSError:
        return
    _started.set()
    threading.Thread(target=_watch, name="paude-engine-watch", daemon=True).start()


_started = threading.Event()


def _watch() -> None:
    poller = select.poll()
    poller.register(1, 0)  # error and hang-up are reported whatever the mask asks for
    while True:
        # A pipe's write end reports an error once no process holds its read end.
        if any(mask & _GONE for _fd, mask in poller.poll(1000)):
            os._exit(1)
