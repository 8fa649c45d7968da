"""engine: what a crash leaves in a stack is resolved, concurrent runs share nothing they
could half-write, and the messages a user sees about both."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pulumi import automation as auto
from pulumi.automation._cmd import CommandResult

from paude import engine, engine_text, home, index, locks, sessions
from paude.errors import PaudeError, SessionBusyError
from paude.toolchain import Engine

STACK = {"type": "pulumi:pulumi:Stack", "urn": "urn:pulumi:demo::paude::pulumi:pulumi:Stack::x",
         "outputs": {"owner": "/repo", "backend": "podman"}}


def pending(op: str, name: str) -> dict[str, Any]:
    return {"type": op, "resource": {"urn": f"urn:pulumi:demo::paude::podman:Container::{name}"}}


class FakeStack:
    """The calls recover() and outputs() make, recorded."""

    def __init__(self, deployment: dict[str, Any]) -> None:
        self.deployment = deployment
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def export_stack(self) -> auto.Deployment:
        self.calls.append(("export", {}))
        return auto.Deployment(version=3, deployment=self.deployment)

    def import_stack(self, state: auto.Deployment) -> None:
        self.calls.append(("import", {"deployment": state.deployment}))
        self.deployment = dict(state.deployment or {})

    def refresh(self, **kwargs: Any) -> None:
        self.calls.append(("refresh", kwargs))
        self.deployment = {**self.deployment, "pending_operations": []}

    def outputs(self) -> dict[str, auto.OutputValue]:
        self.calls.append(("outputs", {}))
        return {"owner": auto.OutputValue("/repo", False)}


def context(tmp_path: Path, notices: list[str]) -> engine.EngineContext:
    return engine.EngineContext(tmp_path, f"file://{tmp_path}/state",
                                Engine(tmp_path / "bin", "v3.274.1", "PATH"), "secret",
                                notices.append)


def handle(stack: FakeStack) -> engine.StackHandle:
    """A stack as open_stack gives it: with the deployment read when it was opened."""
    return engine.StackHandle("demo", stack, False, dict(stack.deployment))  # type: ignore[arg-type]


def test_unfinished_operations_are_cleared_by_the_engines_own_refresh(tmp_path: Path) -> None:
    notices: list[str] = []
    stack = FakeStack({"resources": [STACK], "pending_operations": [
        pending("creating", "agent"), pending("deleting", "proxy")]})
    assert engine.recover(context(tmp_path, notices), handle(stack)) == 2
    assert [name for name, _ in stack.calls] == ["refresh"]  # for an apply
    assert stack.calls[0] == ("refresh", {"clear_pending_creates": True, "color": "never",
                                          "suppress_progress": True})
    assert notices == ["session demo: resolved what a killed paude left unfinished "
                       "(create agent, delete proxy)"]


def test_a_plan_reports_unfinished_operations_and_changes_nothing(tmp_path: Path) -> None:
    notices: list[str] = []
    stack = FakeStack({"resources": [STACK], "pending_operations": [pending("creating", "agent")]})
    assert engine.recover(context(tmp_path, notices), handle(stack), "plan") == 1
    assert stack.calls == []
    assert notices == ["session demo: a killed paude left create agent unfinished; the next "
                       "`paude apply demo` or `paude destroy demo` resolves it"]


def test_a_destroy_takes_objects_being_created_into_the_state_first(tmp_path: Path) -> None:
    # What the killed apply created must go with the destroy (a container left behind
    # would even keep its network from being removed).
    stack = FakeStack({"resources": [STACK], "pending_operations": [
        pending_create("Container", "agent", name="paude-demo-agent")]})
    assert engine.recover(context(tmp_path, []), handle(stack), "destroy") == 1
    assert [name for name, _ in stack.calls] == ["export", "import", "refresh"]
    imported = stack.calls[1][1]["deployment"]
    assert imported["pending_operations"] == []
    assert imported["resources"][-1]["id"] == "paude-demo-agent"


def pending_create(kind: str, logical: str, **inputs: str) -> dict[str, Any]:
    return {"type": "creating", "resource": {
        "urn": f"urn:pulumi:demo::paude::pulumi-python:dynamic/podman:{kind}::{logical}",
        "type": f"pulumi-python:dynamic/podman:{kind}", "custom": True,
        "inputs": {"__provider": "gASV", **inputs}}}


def test_adopting_pending_creates_records_each_object_under_its_name() -> None:
    agent = pending_create("Container", "agent", name="paude-demo-agent")
    image = pending_create("Image", "agent-image", tag="localhost/paude-agent:1")
    existing = pending_create("Network", "internal", name="paude-demo-internal")
    deployment = {"resources": [STACK, {**existing["resource"], "id": "paude-demo-internal"}],
                  "pending_operations": [
                      agent, image, existing,  # already in the state: not twice
                      {"type": "deleting", "resource": STACK},  # a delete adopts nothing
                      {"type": "creating", "resource": {  # not paude's: nothing to name it by
                          "urn": "urn:pulumi:demo::paude::kubernetes:core/v1:Pod::p",
                          "type": "kubernetes:core/v1:Pod", "inputs": {"name": "p"}}}]}
    adopted = engine_text.adopt_pending_creates(deployment)
    assert adopted["pending_operations"] == []
    assert [(r["urn"].rsplit("::", 1)[-1], r.get("id")) for r in adopted["resources"]] == [
        ("x", None), ("internal", "paude-demo-internal"), ("agent", "paude-demo-agent"),
        ("agent-image", "localhost/paude-agent:1")]
    assert adopted["resources"][2]["outputs"] == agent["resource"]["inputs"]


def test_a_clean_stack_is_read_once_and_its_outputs_come_from_that_read(tmp_path: Path) -> None:
    notices: list[str] = []
    stack = FakeStack({"resources": [STACK]})
    opened = handle(stack)
    assert engine.recover(context(tmp_path, notices), opened) == 0
    assert engine.outputs(opened) == {"owner": "/repo", "backend": "podman"}
    assert stack.calls == []  # read when opened: no engine run at all
    assert notices == []


def test_secret_outputs_are_read_through_the_engine(tmp_path: Path) -> None:
    # How the state keeps a secret value: encrypted, under the secret marker.
    value = {engine_text.SECRET_SIG: "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "v1:a"}
    secret = {**STACK, "outputs": {"token": value}}
    stack = FakeStack({"resources": [secret]})
    opened = handle(stack)
    engine.recover(context(tmp_path, []), opened)
    assert engine.outputs(opened) == {"owner": "/repo"}
    assert [name for name, _ in stack.calls] == ["outputs"]


def test_a_stack_nothing_was_applied_to_has_no_outputs(tmp_path: Path) -> None:
    stack = FakeStack({"resources": []})
    opened = handle(stack)
    engine.recover(context(tmp_path, []), opened)
    assert engine.outputs(opened) == {}
    assert engine.outputs(engine.StackHandle("demo", stack, True)) == {}  # type: ignore[arg-type]


def test_open_stack_clears_stale_locks_before_it_selects(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    monkeypatch.setattr(locks, "hold_session",
                        lambda home, name, exclusive=True, on_notice=None: order.append(
                            f"hold {'exclusive' if exclusive else 'shared'}"))
    monkeypatch.setattr(locks, "clear_stale_state_locks",
                        lambda *a, **k: order.append("clear locks"))
    monkeypatch.setattr(locks, "repair_state_files", lambda *a, **k: order.append("repair"))
    monkeypatch.setattr(engine, "_options", lambda ctx: None)

    def select(*args: Any) -> None:
        order.append("select")

    class Workspace:
        def create_stack(self, name: str) -> None:
            order.append("create")

    monkeypatch.setattr(engine, "_select", select)
    monkeypatch.setattr(engine, "_workspace", lambda program, opts: Workspace())
    monkeypatch.setattr(engine, "_Named", lambda name, workspace, url: type(
        "Named", (), {"name": name, "workspace": workspace})())
    opened = engine.open_stack(context(tmp_path, []), "demo", purpose="plan")
    assert opened is not None and opened.new
    # A plan of a new session makes nothing: its preview runs on the spare stack.
    assert order == ["hold shared", "clear locks", "repair", "select"]
    assert opened.making is None and opened.spare is not None
    engine.discard(opened)  # nothing to remove
    assert order[-1] == "select"

    # An apply makes the session's stack while its preview runs on the spare.
    order.clear()
    opened = engine.open_stack(context(tmp_path, []), "demo", purpose="apply")
    assert opened is not None and opened.new and opened.making is not None
    engine.made(opened)
    assert order == ["hold exclusive", "clear locks", "repair", "select", "create"]


def test_the_engine_runs_with_its_own_backend_and_an_atomic_project_file(
        tmp_path: Path) -> None:
    ctx = context(tmp_path, [])
    opts = engine._options(ctx)
    assert opts.project_settings is None  # the Automation API would rewrite it in place
    assert (tmp_path / "project" / "Pulumi.yaml").read_text() == (
        f"name: paude\nruntime: python\nbackend:\n  url: file://{tmp_path}/state\n")
    assert opts.env_vars is not None
    assert opts.env_vars["PULUMI_BACKEND_URL"] == f"file://{tmp_path}/state"
    script = Path(opts.env_vars["PULUMI_PYTHON_CMD"])
    assert script.parent == tmp_path / "plugins" and script.stat().st_mode & 0o111
    assert sys.executable in script.read_text()
    assert list((tmp_path / "project").iterdir()) == [tmp_path / "project" / "Pulumi.yaml"]


def test_a_lock_held_elsewhere_names_its_holder_and_file() -> None:
    stderr = ("error: the stack is currently locked by 1 lock(s). Either wait for the other "
              "process(es) to end or delete the lock file with `pulumi cancel`.\n"
              "  file:///home/me/.paude/state/.pulumi/locks/organization/paude/demo/"
              "5f0c.json: created by me@build-7 (pid 4242) at 2026-12-02T10:30:25Z")
    err = engine._engine_error(auto.ConcurrentUpdateError(CommandResult("", stderr, 255)), "demo")
    assert type(err) is SessionBusyError
    assert err.message == ("session demo is being changed by another paude or pulumi process "
                           "(pid 4242 on build-7)")
    assert err.hint is not None and err.hint.endswith(
        "remove the lock file file:///home/me/.paude/state/.pulumi/locks/organization/paude/"
        "demo/5f0c.json")


def test_pending_operations_are_described_by_step_and_resource() -> None:
    assert engine_text.describe_pending([pending("updating", "b"), pending("importing", "a"),
                                         pending("reading", "c")]) == (
        "import a, read c, update b")


def test_two_first_runs_agree_on_one_passphrase(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from paude.home import passphrase; "
            "print(passphrase(Path(sys.argv[1])))")
    env = {k: v for k, v in os.environ.items() if k != "PULUMI_CONFIG_PASSPHRASE"}
    runs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], env=env,
                             stdout=subprocess.PIPE, text=True) for _ in range(8)]
    seen = {proc.communicate()[0].strip() for proc in runs}
    assert len(seen) == 1 and len(seen.pop()) > 20
    assert [p.name for p in tmp_path.iterdir()] == ["passphrase"]  # no temporary files left
    assert (tmp_path / "passphrase").stat().st_mode & 0o777 == 0o600


def test_write_if_changed_replaces_whole_files_only_when_needed(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "file"
    home.write_if_changed(target, "one\n", mode=0o755)
    first = target.stat().st_ino
    home.write_if_changed(target, "one\n")
    assert target.stat().st_ino == first  # unchanged: not rewritten
    home.write_if_changed(target, "two\n")
    assert target.read_text() == "two\n" and target.stat().st_ino != first


# ---------------------------------------------------------------- index and destroy


@pytest.fixture
def paude_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_a_delete_check_is_forgotten_when_the_agent_may_run_again(paude_home: Path) -> None:
    index.mark_delete_checked("demo")
    assert index.delete_checked("demo")
    index.write("demo", backend="podman", owner="/repo", outputs={})  # an apply
    assert not index.delete_checked("demo")
    index.mark_delete_checked("demo")
    index.forget_delete_check("demo")  # a start
    assert not index.delete_checked("demo")
    index.mark_delete_checked("demo")
    index.remove("demo")  # the delete finished
    assert not index.delete_checked("demo")
    assert [p.name for p in (paude_home / "sessions").iterdir()] == []


class Backend:
    def __init__(self, *, agent_running: bool) -> None:
        self.agent_running = agent_running
        self.deleted: list[str] = []

    def status(self, *, session: str) -> Any:
        return type("S", (), {"exists": True, "agent_running": self.agent_running})()

    def delete_data(self, *, session: str) -> list[str]:
        self.deleted.append(session)
        return [f"paude-{session}-workspace"]

    def owner(self, *, session: str) -> str | None:
        return None


@pytest.fixture
def repo(paude_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "paude.yaml").write_text("version: 1\nsessions:\n  demo: {}\n")
    monkeypatch.setattr(sessions, "_context", lambda project, on_install, on_notice=None: None)
    monkeypatch.setattr(engine, "open_stack", lambda ctx, name, create=True, purpose="": None)
    return path


def test_a_destroy_killed_after_its_stack_went_finishes_on_the_next_run(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index.write("demo", backend="podman", owner=str(repo), outputs={})
    monkeypatch.setattr(sessions, "get_backend", lambda *a: Backend(agent_running=False))
    subprocess.run(["git", "-C", str(repo), "remote", "add", "paude-demo", "paude::demo"],
                   check=True)
    result = sessions.destroy("demo", cwd=repo)
    assert result.deleted == () and index.read("demo") is None
    remotes = subprocess.run(["git", "-C", str(repo), "remote"], capture_output=True,
                             text=True, check=True).stdout
    assert remotes == ""
    # The control: with nothing recorded, there is no session to destroy.
    with pytest.raises(PaudeError, match="has no stack to destroy"):
        sessions.destroy("demo", cwd=repo)


def test_a_delete_killed_after_its_check_finishes_without_the_agent(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = Backend(agent_running=False)
    monkeypatch.setattr(sessions, "get_backend", lambda *a: backend)
    guarded: list[str] = []
    monkeypatch.setattr(sessions, "guard_unfetched", lambda *a, **k: guarded.append(a[2]))
    index.mark_delete_checked("demo")
    sessions.destroy("demo", cwd=repo, delete_data=True)
    assert guarded == [] and backend.deleted == ["demo"]
    # The control: without the record of a finished check, the delete checks.
    sessions.destroy("demo", cwd=repo, delete_data=True)
    assert guarded == ["demo"]
    # ... and so it does when the agent runs (it may have worked since).
    backend.agent_running = True
    index.mark_delete_checked("demo")
    sessions.destroy("demo", cwd=repo, delete_data=True)
    assert guarded == ["demo", "demo"]


def test_an_agent_pod_stuck_on_its_old_version_is_named_with_the_way_out() -> None:
    # What pulumi-kubernetes reported on the test node for an agent that never started.
    diagnostic = (
        "4 errors occurred:\n"
        "    * the Kubernetes API server reported that \"qs1/paude-dbg-agent\" failed to fully "
        "initialize or become live: 'paude-dbg-agent' timed out waiting to be Ready\n"
        "    * StatefulSet controller failed to advance from revision \"paude-dbg-agent-6ff\" "
        "to revision \"paude-dbg-agent-7c5\"\n"
        "    * [Pod qs1/paude-dbg-agent-0]: containers with unready status: [agent]")
    err = engine._engine_error(auto.CommandError(CommandResult("", "", 1)), "dbg", [diagnostic])
    assert "timed out waiting to be Ready" in err.message
    assert "kubectl -n qs1 delete pod paude-dbg-agent-0" in (err.hint or "")
    # Control: a workload that failed for another reason gets the general advice.
    other = engine._engine_error(auto.CommandError(CommandResult("", "", 1)), "dbg", [
        "the Kubernetes API server reported that \"qs1/paude-dbg-proxy\" failed to fully "
        "initialize: [Pod qs1/paude-dbg-proxy-1]: ImagePullBackOff"])
    assert "delete pod" not in (other.hint or "") and "fix the cause" in (other.hint or "")
