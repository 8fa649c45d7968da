"""Exact argv of the OpenShift / Kubernetes backend, with the subprocess seam patched."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from paude.backends.kubernetes import KubernetesBackend
from paude.errors import SessionNotFoundError
from paude.proc import CommandResult


class Recorder:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, stdout: str = "", code: int = 0,
                 stderr: str = "") -> None:
        self.calls: list[list[str]] = []
        self.reply = (code, stdout, stderr)
        monkeypatch.setattr("paude.backends.kubernetes.proc.run", self.run)

    def run(self, argv: Sequence[str], **_kw: Any) -> CommandResult:
        self.calls.append(list(argv))
        code, out, err = self.reply
        return CommandResult(tuple(argv), code, out, err)


def backend() -> KubernetesBackend:
    return KubernetesBackend(context="prod", namespace="team-a", tool="oc")


def test_exec_goes_to_the_agent_pod_with_context_and_namespace() -> None:
    assert backend().exec_argv(session="demo", argv=["git", "status"], stdin=True,
                               env={"GIT_PROTOCOL": "version=2"}) == [
        "oc", "--context", "prod", "--namespace", "team-a", "exec", "--stdin",
        "paude-demo-agent-0", "-c", "agent", "--", "env", "GIT_PROTOCOL=version=2",
        "git", "status"]


def test_kubectl_without_context_or_namespace() -> None:
    plain = KubernetesBackend(tool="kubectl")
    assert plain.exec_argv(session="demo", argv=["true"]) == [
        "kubectl", "exec", "paude-demo-agent-0", "-c", "agent", "--", "true"]


def test_attach_is_an_interactive_tmux_session() -> None:
    argv = backend().attach_argv(session="demo")
    assert argv[5:8] == ["exec", "--stdin", "--tty"]
    assert argv[-3:-1] == ["sh", "-c"] and "tmux new-session -A -s paude" in argv[-1]


def test_stop_and_start_scale_the_statefulset(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch)
    backend().stop(session="demo")
    backend().start(session="demo")
    base = ["oc", "--context", "prod", "--namespace", "team-a"]
    assert rec.calls == [
        [*base, "scale", "statefulset/paude-demo-agent", "--replicas=0"],
        [*base, "scale", "statefulset/paude-demo-agent", "--replicas=1"],
        [*base, "rollout", "status", "statefulset/paude-demo-agent", "--timeout=300s"]]


def test_stop_of_an_unknown_session(monkeypatch: pytest.MonkeyPatch) -> None:
    Recorder(monkeypatch, code=1, stderr='Error from server (NotFound): "x" not found')
    with pytest.raises(SessionNotFoundError, match="no agent StatefulSet"):
        backend().stop(session="demo")


def test_status_reads_ready_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    items = {"items": [{"kind": "StatefulSet", "status": {"readyReplicas": 0}},
                       {"kind": "Deployment", "status": {"readyReplicas": 1}}]}
    Recorder(monkeypatch, stdout=json.dumps(items))
    status = backend().status(session="demo")
    assert (status.exists, status.agent_running, status.proxy_running) == (True, False, True)
    assert status.state == "partial" and status.agent_alive is False


def test_delete_data_removes_only_the_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch, stdout='persistentvolumeclaim "paude-demo-workspace" deleted')
    assert backend().delete_data(session="demo") == ["paude-demo-workspace"]
    assert rec.calls[0][5:] == ["delete", "pvc", "paude-demo-workspace", "--ignore-not-found",
                                "--wait=false"]
