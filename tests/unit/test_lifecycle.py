"""Session name resolution and `paude list`, with the index and podman faked."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from paude import index, lifecycle, overview
from paude.errors import PaudeError
from paude.proc import CommandResult


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "paude-home"))
    return tmp_path


def repo(tmp_path: Path, name: str, sessions: Sequence[str]) -> Path:
    path = tmp_path / name
    (path / ".git").mkdir(parents=True)
    body = "".join(f"  {s}: {{}}\n" for s in sessions)
    (path / "paude.yaml").write_text(f"version: 1\nsessions:\n{body}" if sessions else "")
    return path


def record(name: str, owner: Path) -> None:
    index.write(name, backend="podman", owner=str(owner), outputs={})


def test_explicit_name_wins_and_is_validated(tmp_path: Path) -> None:
    assert lifecycle.resolve_name("demo", tmp_path) == "demo"
    with pytest.raises(PaudeError, match="NAME"):
        lifecycle.resolve_name("-rf", tmp_path)


def test_the_repository_s_only_session(tmp_path: Path) -> None:
    here = repo(tmp_path, "proj", ["alpha"])
    assert lifecycle.resolve_name(None, here) == "alpha"


def test_the_repository_s_applied_session_among_several_defined(tmp_path: Path) -> None:
    here = repo(tmp_path, "proj", ["alpha", "beta"])
    record("beta", here)
    record("gamma", tmp_path / "elsewhere")
    assert lifecycle.resolve_name(None, here) == "beta"


def test_the_only_session_anywhere(tmp_path: Path) -> None:
    record("solo", tmp_path / "elsewhere")
    assert lifecycle.resolve_name(None, tmp_path / "nowhere") == "solo"


def test_ambiguous_lists_the_candidates(tmp_path: Path) -> None:
    here = repo(tmp_path, "proj", ["alpha", "beta"])
    with pytest.raises(PaudeError) as exc:
        lifecycle.resolve_name(None, here)
    assert "candidates: alpha, beta" in exc.value.message


def test_nothing_at_all_says_how_to_create(tmp_path: Path) -> None:
    with pytest.raises(PaudeError) as exc:
        lifecycle.resolve_name(None, tmp_path)
    assert exc.value.hint is not None and "paude create" in exc.value.hint


def test_default_name_is_the_folder_and_must_be_valid(tmp_path: Path) -> None:
    assert lifecycle.default_name(repo(tmp_path, "my-project", [])) == "my-project"
    with pytest.raises(PaudeError, match="NAME"):
        lifecycle.default_name(repo(tmp_path, "My_Project", []))


def test_list_uses_one_podman_call_and_no_engine(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("up", "down", "half", "gone"):
        record(name, tmp_path / name)
    calls: list[tuple[str, ...]] = []
    containers = [
        {"Names": ["paude-up-agent"], "State": "running"},
        {"Names": ["paude-up-proxy"], "State": "running"},
        {"Names": ["paude-down-agent"], "State": "exited"},
        {"Names": ["paude-down-proxy"], "State": "exited"},
        {"Names": ["paude-half-agent"], "State": "exited"},
        {"Names": ["paude-half-proxy"], "State": "running"},
    ]

    def run(argv: Sequence[str], **_kw: Any) -> CommandResult:
        calls.append(tuple(argv))
        return CommandResult(tuple(argv), 0, json.dumps(containers), "")

    monkeypatch.setattr("paude.proc.run", run)
    rows = {r.name: r for r in overview.list_sessions()}
    assert len(calls) == 1 and calls[0][:3] == ("podman", "ps", "--all")
    assert {n: r.status for n, r in rows.items()} == {
        "up": "running", "down": "stopped", "half": "degraded", "gone": "missing"}
    assert rows["up"].to_json() == {"name": "up", "backend": "podman", "status": "running",
                                    "workspace": str(tmp_path / "up")}


def _workload(kind: str, name: str, replicas: int, ready: int) -> dict[str, Any]:
    return {"kind": kind, "metadata": {"name": name}, "spec": {"replicas": replicas},
            "status": {"readyReplicas": ready}}


def test_list_reads_cluster_sessions_once_per_namespace(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("paude.backends.kubernetes.proc.which", lambda _tool: None)
    record("local", tmp_path / "local")
    for name, namespace in (("ready", "team-a"), ("idle", "team-a"), ("new", "team-a"),
                            ("gone", "team-a"), ("far", "team-b")):
        index.write(name, backend="openshift", owner=str(tmp_path / name),
                    outputs={"context": "prod", "namespace": namespace})
    team_a = {"items": [
        _workload("StatefulSet", "paude-ready-agent", 1, 1),
        _workload("Deployment", "paude-ready-proxy", 1, 1),
        _workload("StatefulSet", "paude-idle-agent", 0, 0),
        _workload("Deployment", "paude-idle-proxy", 1, 1),
        _workload("StatefulSet", "paude-new-agent", 1, 0),
        _workload("Deployment", "paude-new-proxy", 1, 0)]}
    calls: list[tuple[str, ...]] = []

    def run(argv: Sequence[str], **_kw: Any) -> CommandResult:
        calls.append(tuple(argv))
        if argv[0] == "podman":
            return CommandResult(tuple(argv), 0, "[]", "")
        if "team-b" in argv:  # a cluster that cannot be reached
            return CommandResult(tuple(argv), 1, "", "Unable to connect to the server")
        return CommandResult(tuple(argv), 0, json.dumps(team_a), "")

    monkeypatch.setattr("paude.proc.run", run)
    rows = {r.name: (r.backend, r.status) for r in overview.list_sessions()}
    assert rows == {"local": ("podman", "missing"), "ready": ("openshift", "running"),
                    "idle": ("openshift", "stopped"), "new": ("openshift", "pending"),
                    "gone": ("openshift", "missing"), "far": ("openshift", "unknown")}
    kube = sorted(c for c in calls if c[0] == "kubectl")
    assert kube == [
        ("kubectl", "--context", "prod", "--namespace", ns, "get", "statefulsets,deployments",
         "-l", "app.kubernetes.io/managed-by=paude", "-o", "json")
        for ns in ("team-a", "team-b")]
