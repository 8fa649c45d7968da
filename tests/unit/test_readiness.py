"""Readiness probes against a fake /proc, and wait_running with a probe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from paude import procfs
from stacks.podman import podman, readiness

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"


def _proc(tmp_path: Path, pid: int, *, tcp: str = "", tcp6: str | None = None,
          children: dict[int, str] | None = None) -> Path:
    net = tmp_path / str(pid) / "net"
    net.mkdir(parents=True)
    (net / "tcp").write_text(HEADER + tcp)
    if tcp6 is not None:
        (net / "tcp6").write_text(HEADER + tcp6)
    task = tmp_path / str(pid) / "task" / str(pid)
    task.mkdir(parents=True)
    (task / "children").write_text(" ".join(str(c) for c in children or {}) + " ")
    for child, comm in (children or {}).items():
        (tmp_path / str(child)).mkdir()
        (tmp_path / str(child) / "comm").write_text(comm + "\n")
    return tmp_path


LISTEN_V4 = "   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 13\n"
LISTEN_V6 = ("   0: 00000000000000000000000000000000:0C38 00000000000000000000000000000000:0000"
             " 0A 00000000:00000000 00:00000000 00000000 13\n")
# An established connection from port 3128 is not a listener.
CONNECTED = "   1: 0100007F:0C38 0100007F:A000 01 00000000:00000000 00:00000000 00000000 13\n"


def test_listening_on_ipv4_and_ipv6(tmp_path: Path) -> None:
    proc = _proc(tmp_path, 7, tcp=LISTEN_V4 + CONNECTED, tcp6=LISTEN_V6)
    assert procfs.listening(7, 8080, proc) is True
    assert procfs.listening(7, 3128, proc) is True
    assert procfs.listening(7, 9999, proc) is False


def test_a_connection_on_the_port_is_not_a_listener(tmp_path: Path) -> None:
    proc = _proc(tmp_path, 7, tcp=CONNECTED, tcp6="")
    assert procfs.listening(7, 3128, proc) is False


def test_a_gone_process_is_not_ready_and_unreadable_is_unknown(tmp_path: Path) -> None:
    assert procfs.listening(99, 3128, tmp_path) is False
    assert procfs.has_child(99, "sleep", tmp_path) is False
    (tmp_path / "5").mkdir()  # exists, but nothing under it can be read here
    assert procfs.listening(5, 3128, tmp_path) is None
    assert procfs.has_child(5, "sleep", tmp_path) is None


def test_child_probe(tmp_path: Path) -> None:
    proc = _proc(tmp_path, 7, children={8: "tmux: server", 9: "sleep"})
    assert procfs.has_child(7, "sleep", proc) is True
    assert procfs.has_child(7, "squid", proc) is False
    assert readiness.ready(7, {"child": "sleep"}, proc) is True
    assert readiness.ready(7, {"port": 1}, proc) is False
    assert readiness.ready(7, {}, proc) is None


RUNNING: dict[str, Any] = {"Id": "cid", "State": {"Running": True, "Status": "running", "Pid": 7},
                           "RestartCount": 0}


def test_wait_running_returns_as_soon_as_the_probe_answers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([False, False, True])
    asked: list[str] = []
    monkeypatch.setattr(podman, "inspect", lambda _k, n: asked.append(n) or RUNNING)
    monkeypatch.setattr(podman.readiness, "ready", lambda _pid, _spec: next(answers))
    monkeypatch.setattr(podman, "_alive", lambda _pid: True)
    slept: list[float] = []
    monkeypatch.setattr(podman.time, "sleep", slept.append)
    assert podman.wait_running("paude-demo-proxy", ready={"port": 3128}) == "cid"
    assert len(slept) == 2 and sum(slept) < 0.2  # no fixed settle period
    assert asked == ["paude-demo-proxy"]  # the polls read /proc, not podman


def test_a_process_gone_while_polling_sends_it_back_to_podman(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A restart (a new main process) is a failure even when the new one would listen."""
    states = iter([RUNNING, {**RUNNING, "State": {**RUNNING["State"], "Pid": 8},
                             "RestartCount": 1}])
    monkeypatch.setattr(podman, "inspect", lambda _k, _n: next(states))
    monkeypatch.setattr(podman.readiness, "ready", lambda pid, _spec: pid == 8)
    monkeypatch.setattr(podman, "_alive", lambda pid: pid == 8)
    monkeypatch.setattr(podman.time, "sleep", lambda _s: None)
    monkeypatch.setattr(podman.proc, "run", lambda *_a, **_k: type(
        "R", (), {"stdout": "restarted\n", "stderr": ""})())
    with pytest.raises(RuntimeError, match="did not stay running"):
        podman.wait_running("paude-demo-proxy", ready={"port": 3128})


def test_alive_reads_the_process_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(podman, "PROC", tmp_path)
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "stat").write_text("7 (squid (x)) S 1 7")
    (tmp_path / "8").mkdir()
    (tmp_path / "8" / "stat").write_text("8 (squid) Z 1 8")
    assert podman._alive(7) is True
    assert podman._alive(8) is False  # exited, not yet reaped
    assert podman._alive(9) is False


def test_wait_running_fails_when_it_exits_before_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    states = iter([RUNNING, {**RUNNING, "State": {"Running": False, "Status": "exited"}}])
    monkeypatch.setattr(podman, "inspect", lambda _k, _n: next(states))
    monkeypatch.setattr(podman.readiness, "ready", lambda _pid, _spec: False)
    alive = iter([True, True, False])
    monkeypatch.setattr(podman, "_alive", lambda _pid: next(alive, False))
    monkeypatch.setattr(podman.time, "sleep", lambda _s: None)
    monkeypatch.setattr(podman.proc, "run", lambda *_a, **_k: type(
        "R", (), {"stdout": "paude-proxy: squid rejected the rendered configuration\n",
                  "stderr": ""})())
    with pytest.raises(RuntimeError, match=r"did not stay running(.|\n)*squid rejected"):
        podman.wait_running("paude-demo-proxy", ready={"port": 3128})
