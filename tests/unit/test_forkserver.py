"""The plugin fork server (paude/forkserver.py) and its shim, with real forks, sockets and
processes: what it serves, what it declines (and the shim then runs itself), and that
nothing it starts outlives the process that started it or the shim that asked."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from paude import forkserver

PY = sys.executable
PROVIDER = [PY, "-u", "-m", "paude.enginewatch", "-m", "pulumi.dynamic", "127.0.0.1:1"]
POLICY = [PY, "-u", "-P", "-m", "paude.policies", "127.0.0.1:1"]

# A process that starts a fork server, says where, and waits until its stdin closes.
OWNER = textwrap.dedent("""
    import os, sys
    from paude import forkserver
    path = forkserver.start()
    print(os.getpid(), path, flush=True)
    sys.stdin.read()
""")


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A fork server owned by a child process (the test process runs threads)."""
    lock = tmp_path / "held"
    env = {k: v for k, v in os.environ.items() if k != forkserver.DISABLE}
    env[forkserver.LOG] = str(tmp_path / "served.log")
    owner = subprocess.Popen([PY, "-c", f"held = open({str(lock)!r}, 'w')\n{OWNER}"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert owner.stdout is not None
    pid, path = owner.stdout.readline().split()
    assert path != "None", "no server started"
    yield int(pid), path, owner
    if owner.stdin:
        owner.stdin.close()
    owner.wait(timeout=10)


def shim(path: str, argv: list[str], **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(forkserver.shim_command(PY) + argv, text=True,
                            env={**os.environ, forkserver.ENV: path, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def served(proc: subprocess.Popen[str]) -> bool:
    """The shim still stands in for a forked plugin (it did not exec the command)."""
    cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
    return any(Path(arg.decode()).name == "plugin_shim.py" for arg in cmdline)


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def open_files(pid: int) -> set[str]:
    """What a process's descriptors point at; one closed while listed is left out."""
    targets = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            continue
    return targets


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def wait_until(check, timeout: float = 10) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_the_socket_is_in_a_folder_only_this_user_reaches(server) -> None:  # type: ignore[no-untyped-def]
    _pid, path, _owner = server
    mode = stat.S_IMODE(os.stat(Path(path).parent).st_mode)
    assert mode == 0o700


def test_a_provider_is_forked_and_ends_with_its_shim(server) -> None:  # type: ignore[no-untyped-def]
    _pid, path, _owner = server
    proc = shim(path, PROVIDER)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    assert served(proc)  # the fork answers, not a Python the shim became
    assert accepts(port)
    proc.kill()  # as the engine ends a plugin
    proc.wait()
    assert wait_until(lambda: not accepts(port)), "the plugin outlived its shim"


def test_a_command_it_does_not_serve_is_run_by_the_shim_itself(server) -> None:  # type: ignore[no-untyped-def]
    _pid, path, _owner = server
    # Control: the same shim and server serve the provider (above); this command line they
    # do not, so the shim becomes it: same process, exit status and output its own.
    proc = shim(path, [PY, "-c", "import os, sys; print(os.getpid()); sys.exit(3)"])
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 3 and int(out) == proc.pid
    # Another interpreter's command line, though the flags match: its packages may differ.
    other = Path(path).parent / "python"
    other.symlink_to("/bin/echo")
    proc = shim(path, [str(other), *PROVIDER[1:]])
    out, _ = proc.communicate(timeout=30)
    assert out.split() == PROVIDER[1:]


def test_the_log_says_what_was_served_and_declined(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _pid, path, _owner = server
    provider = shim(path, PROVIDER)
    assert provider.stdout is not None and int(provider.stdout.readline()) > 0
    provider.kill()
    provider.wait()
    declined = shim(path, [PY, "-c", "pass"])
    declined.communicate(timeout=30)
    log = tmp_path / "served.log"
    assert wait_until(lambda: log.exists() and len(log.read_text().splitlines()) == 2)
    assert log.read_text().splitlines() == ["served paude.enginewatch", "declined"]


def test_without_a_server_the_shim_runs_the_command(tmp_path: Path) -> None:
    proc = shim(str(tmp_path / "gone"), PROVIDER)
    assert proc.stdout is not None
    assert int(proc.stdout.readline()) > 0
    assert not served(proc)
    proc.kill()
    proc.wait()


def test_the_plugins_exit_status_and_stderr_reach_the_engine(server) -> None:  # type: ignore[no-untyped-def]
    _pid, path, _owner = server
    env = {k: v for k, v in os.environ.items() if k != "PAUDE_POLICY_CONFIG"}
    proc = subprocess.Popen(forkserver.shim_command(PY) + POLICY, text=True,
                            env={**env, forkserver.ENV: path},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1 and out == ""
    assert "PAUDE_POLICY_CONFIG is not set" in err


def test_the_server_holds_nothing_paude_had_open_and_ends_with_paude(server) -> None:  # type: ignore[no-untyped-def]
    pid, path, owner = server
    zygotes = children(pid)
    assert len(zygotes) == 1
    # The server drops paude's descriptors just after the fork, while paude goes on: on a
    # loaded machine the owner can print its path before that has happened.
    assert wait_until(lambda: not any(t.endswith("/held") for t in open_files(zygotes[0]))), \
        open_files(zygotes[0])
    # Control: the owner itself holds the file the server dropped.
    assert any(t.endswith("/held") for t in open_files(pid))
    owner.stdin.close()
    owner.wait(timeout=10)
    assert wait_until(lambda: not Path(f"/proc/{zygotes[0]}").exists()
                      or "Z" in Path(f"/proc/{zygotes[0]}/stat").read_text().split()[2])
    assert wait_until(lambda: not Path(path).parent.exists())


def test_no_server_once_a_second_thread_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    monkeypatch.delenv(forkserver.DISABLE, raising=False)
    monkeypatch.setattr(forkserver, "_socket_path", None)
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert forkserver.start() is None  # a fork beside a thread could copy a held lock
    finally:
        stop.set()
        thread.join()


def test_turned_off_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(forkserver.DISABLE, "1")
    monkeypatch.setattr(forkserver, "_socket_path", None)
    assert forkserver.start() is None
