"""A fork server for the engine's Python plugins: paude's dynamic providers and its policy
pack start as forks of a process that has imported them already.

Every engine run starts the policy pack and the dynamic provider afresh, each a new Python
that imports pulumi, grpc and paude before it can print its port: a quarter to a third of
a second each, twice per apply, on the path of every plan and apply. So a command that
runs the engine first forks itself (before it starts any thread), and the fork imports
what the plugins need while paude gets on with its own work; the engine then runs
plugin_shim.py instead of Python, which passes its command line, environment and standard
streams over a Unix socket, and the server forks the plugin from its warm state.

What is served is narrow: exactly the two command lines paude's own launchers build
(ALLOWED), for the same user (SO_PEERCRED), over a socket in a private folder. Anything
else is declined and the shim runs the command itself, as it does when no server answers:
a plugin always starts, only slower. The server exits when paude does (its end of a pipe
closes), and each plugin when its shim does (the engine killed it) or when the engine
stops reading its output (paude/enginewatch.py)."""

from __future__ import annotations

import array
import atexit
import contextlib
import io
import json
import os
import select
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import traceback
from pathlib import Path

from paude.plugin_shim import ENV, MAX_REPLY

SHIM = Path(__file__).with_name("plugin_shim.py")
# The command lines served, after the interpreter: the dynamic provider as enginewatch runs
# it, and the policy pack as its launcher runs it (paude/policy.py); each maps to the
# module run as `__main__` and the arguments it gets before the plugin's own (the engine's
# address).
ALLOWED = {
    ("-u", "-m", "paude.enginewatch", "-m", "pulumi.dynamic"):
        ("paude.enginewatch", ("-m", "pulumi.dynamic")),
    ("-u", "-P", "-m", "paude.policies"): ("paude.policies", ()),
}
MAX_REQUEST = 1 << 20
DISABLE = "PAUDE_NO_FORKSERVER"
# A file the server appends a line to for every request ("served MODULE" or "declined"):
# how a test sees that the plugins of a real run came from it.
LOG = "PAUDE_FORKSERVER_LOG"

_socket_path: str | None = None


def socket_path() -> str | None:
    """The running server's socket, for the engine's environment; None without one."""
    return _socket_path


def shim_command(python: str) -> list[str]:
    """The argv prefix that runs a plugin command line through the shim."""
    return [python, "-I", "-S", str(SHIM)]


def start() -> str | None:
    """Start this process's fork server, once; its socket path, or None when there is
    none (turned off, or threads already running: forking then is not safe)."""
    global _socket_path
    if _socket_path is not None:
        return _socket_path
    if os.environ.get(DISABLE) or not hasattr(os, "fork") or threading.active_count() != 1:
        return None
    folder = tempfile.mkdtemp(prefix="paude-plugins-")  # 0700: only this user reaches it
    path = os.path.join(folder, "socket")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        listener.bind(path)
        listener.listen(16)
    except OSError:
        listener.close()
        shutil.rmtree(folder, ignore_errors=True)
        return None
    alive_r, alive_w = os.pipe()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # or the fork writes paude's buffered output a second time
    pid = os.fork()
    if pid == 0:
        os.close(alive_w)
        _serve(listener, alive_r, folder)  # never returns
    os.close(alive_r)
    listener.close()
    os.set_inheritable(alive_w, False)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    _socket_path = path
    return path


def _serve(listener: socket.socket, alive: int, folder: str) -> None:
    """The server: warm up, then fork a plugin per request until paude is gone."""
    try:
        _close_other_fds({0, 1, 2, listener.fileno(), alive})
        # Nor paude's terminal or pipes: a caller reading paude's output until it ends must
        # not wait for this process (the plugins get the engine's streams from their shims).
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        os.close(null)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # paude's Ctrl-C is paude's to handle
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # plugins are reaped by the kernel
        with contextlib.suppress(Exception):  # a plugin that cannot import says so itself
            _warm()
        while True:
            ready, _, _ = select.select([listener.fileno(), alive], [], [])
            if alive in ready:
                break
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                _log(_answer(conn, listener, alive))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        os._exit(0)


def _close_other_fds(keep: set[int]) -> None:
    """Drop what paude had open (lock files above all: a lock held by a stray descriptor
    outlives the command that took it)."""
    for name in os.listdir("/proc/self/fd") if os.path.isdir("/proc/self/fd") else ():
        fd = int(name)
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def _warm() -> None:
    """Import what the plugins import, once, here."""
    import dill  # noqa: F401
    import pulumi.dynamic  # noqa: F401
    import pulumi_policy  # noqa: F401
    from google.protobuf import empty_pb2  # type: ignore[import-untyped]  # noqa: F401
    from pulumi.runtime.proto import provider_pb2_grpc  # noqa: F401

    import paude.policies.pack  # noqa: F401


def _log(line: str) -> None:
    path = os.environ.get(LOG)
    if path:
        with contextlib.suppress(OSError), open(path, "a", encoding="utf-8") as log:
            log.write(line + "\n")


def _answer(conn: socket.socket, listener: socket.socket, alive: int) -> str:
    """Read one request; fork its plugin, or decline it. What it did, for the log."""
    with conn:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        fds: list[int] = []
        try:
            body, ancillary, _flags, _addr = conn.recvmsg(
                MAX_REQUEST, socket.CMSG_SPACE(3 * array.array("i").itemsize))
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.extend(array.array("i", data[:len(data) - len(data) % 4]))
            request = _parse(body) if uid == os.getuid() and len(fds) == 3 else None
            if request is not None and _hung_up(conn):
                return "declined (the shim gave up waiting)"  # it runs the command itself
            if request is None:
                conn.send(json.dumps({"declined": True}).encode())
                return "declined"
            pid = os.fork()
            if pid == 0:
                listener.close()
                os.close(alive)
                _run_plugin(conn, fds, *request)  # never returns
            conn.send(json.dumps({"pid": pid}).encode())
            return f"served {request[0]}"
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _hung_up(conn: socket.socket) -> bool:
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _parse(body: bytes) -> tuple[str, list[str], dict[str, str], str] | None:
    """(module, its argv after the name, env, cwd) of a request for a served command line,
    else None."""
    try:
        request = json.loads(body)
        argv, env, cwd = request["argv"], request["env"], request["cwd"]
    except (ValueError, KeyError, TypeError):
        return None
    if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv) and argv
            and isinstance(env, dict) and isinstance(cwd, str)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
        return None
    if os.path.realpath(argv[0]) != os.path.realpath(sys.executable):
        return None  # another interpreter: its packages are not the ones imported here
    for prefix, (module, lead) in ALLOWED.items():
        if tuple(argv[1:1 + len(prefix)]) == prefix:
            return module, [*lead, *argv[1 + len(prefix):]], env, cwd
    return None


def _run_plugin(conn: socket.socket, fds: list[int], module: str, args: list[str],
                env: dict[str, str], cwd: str) -> None:
    """In the forked plugin: take the shim's streams, directory and environment, then run
    the module as `python -m` would, and report its exit status to the shim."""
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        _unbuffered_stdio()
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        # As `-P` and `-I` would: nothing is imported from the folder the engine runs in.
        sys.path[:] = [p for p in sys.path if p and os.path.isabs(p) and p != cwd]
        _exit_with_shim(conn)
        code = _main(module, args)
    except BaseException:  # the plugin's own failure goes where its stderr goes
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        with contextlib.suppress(OSError):
            conn.send(json.dumps({"exit": code}).encode())
        os._exit(code)


def _main(module: str, args: list[str]) -> int:
    """Run the plugin's module as `python -m MODULE ARGS` would; its exit status."""
    import runpy

    sys.argv = [module, *args]
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        sys.stderr.write(f"{exc.code}\n")  # as Python does for sys.exit("message")
        return 1
    return 0


def _unbuffered_stdio() -> None:
    """Standard streams on the new descriptors, unbuffered as `python -u` has them: the
    engine reads the port from the first line of stdout."""
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "rb", closefd=False)))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "wb", closefd=False),
                                  write_through=True, line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "wb", closefd=False),
                                  write_through=True, line_buffering=True,
                                  errors="backslashreplace")


def _exit_with_shim(conn: socket.socket) -> None:
    """End the plugin when its shim is gone: the engine kills the process it started."""
    def watch() -> None:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        while True:
            if poller.poll():
                try:  # the shim sends nothing after its request: readable means closed
                    gone = not conn.recv(MAX_REPLY, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    continue
                except OSError:
                    gone = True
                if gone:
                    os._exit(1)

    threading.Thread(target=watch, name="paude-shim-watch", daemon=True).start()


__all__ = ["ENV", "SHIM", "shim_command", "socket_path", "start"]
