"""Exact argv of the OpenShift / Kubernetes backend, with the subprocess seam patched."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from paude.backends.kubernetes import KubernetesBackend, runtime_status
from paude.errors import PaudeError, SessionNotFoundError
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
        [*base, "wait", "--for=delete", "pod/paude-demo-agent-0", "--timeout=120s"],
        [*base, "scale", "statefulset/paude-demo-agent", "--replicas=1"],
        [*base, "rollout", "status", "statefulset/paude-demo-agent", "--timeout=300s"]]


def test_stop_of_an_unknown_session(monkeypatch: pytest.MonkeyPatch) -> None:
    Recorder(monkeypatch, code=1, stderr='Error from server (NotFound): "x" not found')
    with pytest.raises(SessionNotFoundError, match="no agent StatefulSet"):
        backend().stop(session="demo")


def test_stop_accepts_an_agent_pod_already_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch)
    rec.reply = (0, "", "")

    def run(argv: Sequence[str], **_kw: Any) -> CommandResult:
        rec.calls.append(list(argv))
        if "wait" in argv:
            return CommandResult(tuple(argv), 1, "", 'Error from server (NotFound): pods '
                                 '"paude-demo-agent-0" not found')
        return CommandResult(tuple(argv), 0, "", "")

    monkeypatch.setattr("paude.backends.kubernetes.proc.run", run)
    backend().stop(session="demo")
    assert [c[5] for c in rec.calls] == ["scale", "wait"]


def test_stop_reports_a_pod_that_does_not_end(monkeypatch: pytest.MonkeyPatch) -> None:
    def run(argv: Sequence[str], **_kw: Any) -> CommandResult:
        if "wait" in argv:
            return CommandResult(tuple(argv), 1, "", "error: timed out waiting for the "
                                 "condition on pods/paude-demo-agent-0")
        return CommandResult(tuple(argv), 0, "", "")

    monkeypatch.setattr("paude.backends.kubernetes.proc.run", run)
    with pytest.raises(PaudeError, match="timed out"):
        backend().stop(session="demo")


def _workload(kind: str, name: str, replicas: int, ready: int) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name}, "spec": {"replicas": replicas},
            "status": {"readyReplicas": ready}}


def test_status_reads_ready_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    items = {"kind": "List", "items": [_workload("StatefulSet", "paude-demo-agent", 1, 0),
                                       _workload("Deployment", "paude-demo-proxy", 1, 1)]}
    rec = Recorder(monkeypatch, stdout=json.dumps(items))
    status = backend().status(session="demo")
    assert rec.calls == [["oc", "--context", "prod", "--namespace", "team-a", "get",
                          "statefulset/paude-demo-agent", "deployment/paude-demo-proxy",
                          "--ignore-not-found", "-o", "json"]]
    assert (status.exists, status.agent_running, status.proxy_running) == (True, False, True)
    assert status.state == "pending" and status.agent_alive is False


@pytest.mark.parametrize(("items", "state"), [
    ([], "absent"),
    ([_workload("StatefulSet", "paude-demo-agent", 0, 0),
      _workload("Deployment", "paude-demo-proxy", 1, 1)], "stopped"),
    ([_workload("Deployment", "paude-demo-proxy", 1, 1)], "partial"),
    ([_workload("StatefulSet", "paude-other-agent", 1, 1)], "absent"),
])
def test_runtime_status_of_a_cluster_session(items: list[dict[str, Any]], state: str) -> None:
    assert runtime_status(items, "demo").state == state


def test_status_of_a_session_that_is_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    Recorder(monkeypatch, stdout="")  # --ignore-not-found prints nothing
    assert backend().status(session="demo").state == "absent"


def test_status_of_an_unreachable_cluster_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    Recorder(monkeypatch, code=1, stderr="Unable to connect to the server: dial tcp: refused")
    with pytest.raises(PaudeError, match="Unable to connect"):
        backend().status(session="demo")


def test_observe_reads_the_namespace_once(monkeypatch: pytest.MonkeyPatch) -> None:
    items = {"items": [_workload("StatefulSet", "paude-a-agent", 1, 1),
                       _workload("Deployment", "paude-a-proxy", 1, 1)]}
    rec = Recorder(monkeypatch, stdout=json.dumps(items))
    found = backend().observe(sessions=["a", "b"])
    assert found is not None
    assert {k: v.state for k, v in found.items()} == {"a": "running", "b": "absent"}
    assert len(rec.calls) == 1


def test_delete_data_removes_only_the_claim(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch, stdout='persistentvolumeclaim "paude-demo-workspace" deleted')
    assert backend().delete_data(session="demo") == ["paude-demo-workspace"]
    assert rec.calls[0][5:] == ["delete", "pvc", "paude-demo-workspace", "--ignore-not-found",
                                "--wait=false"]
