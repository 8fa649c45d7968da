"""What the engine runs in place of one of paude's Python plugins while a fork server
answers (paude/forkserver.py): hand this process's command line, environment and standard
streams to the server, which forks a plugin that has its imports done already, then stand
in for that plugin until it exits.

    python -I -S plugin_shim.py PYTHON ARGS...

PYTHON ARGS... is the plugin's own command line; when no server answers, or it declines,
the shim becomes that command (exec), so a plugin always starts. Standard library only,
and run with -I -S, so that it starts in a few milliseconds: it is on every plan's path."""

import array
import contextlib
import json
import os
import signal
import socket
import sys

ENV = "PAUDE_FORKSERVER"
# A request carries the environment, which the engine fills; far below a datagram's limit.
MAX_REPLY = 4096
# How long to wait for the server to answer (it may still be importing on a loaded machine)
# before running the command without it.
ANSWER_WITHIN = 60.0


def _ask(path: str, argv: list[str]) -> socket.socket | None:
    """The connection to a server that has started the plugin, or None."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    conn.settimeout(ANSWER_WITHIN)
    try:
        conn.connect(path)
        body = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
        fds = array.array("i", [0, 1, 2])
        conn.sendmsg([body], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
        reply = json.loads(conn.recv(MAX_REPLY) or b"{}")
    except (OSError, ValueError):
        conn.close()
        return None
    if not isinstance(reply, dict) or not isinstance(reply.get("pid"), int):
        conn.close()  # declined: not a command it serves
        return None
    conn.settimeout(None)
    _forward_signals(reply["pid"])
    return conn


def _forward_signals(pid: int) -> None:
    """The engine signals the process it started; the plugin is the server's child."""
    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            os.kill(pid, signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)


def _wait(conn: socket.socket) -> int:
    """The plugin's exit status: what it sends as it exits, 1 if it died without a word."""
    while True:
        try:
            data = conn.recv(MAX_REPLY)
        except InterruptedError:
            continue
        except OSError:
            return 1
        if not data:
            return 1
        try:
            code = json.loads(data).get("exit")
        except (ValueError, AttributeError):
            return 1
        return code if isinstance(code, int) else 1


def main() -> None:
    argv = sys.argv[1:]
    if not argv:
        sys.exit("usage: plugin_shim.py PYTHON ARGS...")
    path = os.environ.get(ENV, "")
    conn = _ask(path, argv) if path else None
    if conn is None:
        os.execv(argv[0], argv)
    sys.exit(_wait(conn))


if __name__ == "__main__":
    main()
