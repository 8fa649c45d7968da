"""paude's engine plugins end when the engine that started them is gone.

The engine runs paude's dynamic providers and its policy pack as child processes and reads
their stdout for as long as it runs. An engine that dies without closing them (paude
killed with SIGKILL: its engine dies on the broken pipe to paude) leaves them orphaned:
idle forever, or still changing podman objects while the next paude repairs the session.
So each plugin watches its stdout pipe and exits once nobody reads it any more.

Dynamic providers start as `python -u -m pulumi.dynamic ADDRESS` with the interpreter
named by PULUMI_PYTHON_CMD; paude points that at a small script (see interpreter_script)
that runs them through this module's main, which starts the watch first.
"""

from __future__ import annotations

import hashlib
import os
import runpy
import select
import shlex
import stat
import sys
import threading
from pathlib import Path
from typing import Any

from paude.home import write_if_changed

_GONE = select.POLLERR | select.POLLHUP | select.POLLNVAL if hasattr(select, "poll") else 0
_started = threading.Event()


def exit_with_engine() -> None:
    """In a plugin whose stdout is the engine's pipe, exit once the engine stops reading;
    elsewhere (stdout a terminal or a file) do nothing. Safe to call more than once."""
    if not _GONE or _started.is_set():
        return
    try:
        if not stat.S_ISFIFO(os.fstat(1).st_mode):
            return
    except OSError:
        return
    _started.set()
    threading.Thread(target=_watch, name="paude-engine-watch", daemon=True).start()


def _watch() -> None:
    poller = select.poll()
    poller.register(1, 0)  # error and hang-up are reported whatever the mask asks for
    while True:
        # A pipe's write end reports an error once no process holds its read end.
        if any(mask & _GONE for _fd, mask in poller.poll(1000)):
            os._exit(1)


def interpreter(home: Path) -> Path:
    """The script paude gives the engine as PULUMI_PYTHON_CMD: this paude's Python, one
    script per interpreter (paude installs sharing PAUDE_HOME never run each other's)."""
    digest = hashlib.sha256(sys.executable.encode()).hexdigest()[:12]
    path = home / "plugins" / f"python-{digest}"
    write_if_changed(path, interpreter_script(sys.executable), mode=0o755)
    return path


def interpreter_script(python: str) -> str:
    """The PULUMI_PYTHON_CMD script: dynamic providers run under the watch, anything else
    the engine runs with Python exactly as asked."""
    from paude import forkserver

    py = shlex.quote(python)
    shim = " ".join(shlex.quote(a) for a in forkserver.shim_command(python))
    return ("#!/bin/sh\n"
            "# The interpreter the Pulumi engine runs paude's dynamic providers with; written\n"
            "# by paude. Providers exit when their engine is gone (paude.enginewatch), and\n"
            "# start as forks of paude's fork server when there is one (paude.forkserver).\n"
            'if [ "$1" = "-u" ] && [ "$2" = "-m" ] && [ "$3" = "pulumi.dynamic" ]; then\n'
            "  shift 3\n"
            f'  if [ -n "${{{forkserver.ENV}:-}}" ]; then\n'
            f'    exec {shim} {py} -u -m paude.enginewatch -m pulumi.dynamic "$@"\n'
            "  fi\n"
            f'  exec {py} -u -m paude.enginewatch -m pulumi.dynamic "$@"\n'
            "fi\n"
            f'exec {py} "$@"\n')


def main(argv: list[str]) -> None:
    """`python -m paude.enginewatch -m MODULE ARGS...`: start the watch, then run MODULE as
    `python -m MODULE ARGS...` would."""
    if len(argv) < 2 or argv[0] != "-m":
        sys.exit("usage: python -m paude.enginewatch -m MODULE [ARGS...]")
    sys.argv = [argv[1], *argv[2:]]
    exit_with_engine()
    if argv[1] == "pulumi.dynamic":
        _wider_pool()
    runpy.run_module(argv[1], run_name="__main__", alter_sys=True)


# Requests a dynamic provider serves at once. The SDK's server takes 4, and nearly every
# request waits on podman: a refresh's 9 reads went in waves, and a new session's three
# container creates (each waiting for its readiness probe) held 3 of the 4.
PROVIDER_WORKERS = 16


def _wider_pool() -> None:
    """Make the thread pools of this process at least PROVIDER_WORKERS wide: the SDK's
    provider builds its gRPC server's pool inline, with no setting to change it."""
    from concurrent import futures

    class Wider(futures.ThreadPoolExecutor):
        def __init__(self, max_workers: int | None = None, *args: Any, **kwargs: Any) -> None:
            super().__init__(max(max_workers or 0, PROVIDER_WORKERS), *args, **kwargs)

    futures.ThreadPoolExecutor = Wider  # type: ignore[misc]


if __name__ == "__main__":
    main(sys.argv[1:])
