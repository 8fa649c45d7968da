"""The command line: exit codes, the error boundary and output modes (service layer patched)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from paude import __version__, diagnose, sessions
from paude.cli import main
from paude.diagnose import Check
from paude.errors import AbortedError, PaudeError, SessionBusyError
from paude.results import ApplyResult, DestroyResult, PlanResult, ResourceChange

TYPES = {"agent": "podman:Container", "proxy": "podman:Container",
         "agent-image": "podman:Image", "proxy-image": "podman:Image",
         "internal-network": "podman:Network", "egress-network": "podman:Network",
         "workspace": "podman:Volume"}


def plan_result(op: str) -> PlanResult:
    changes = tuple(ResourceChange(n, t, op) for n, t in sorted(TYPES.items()))
    return PlanResult("demo", "podman", changes, new_session=op == "create")


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private PAUDE_HOME and working folder; no debug mode; a non-TTY stdin."""
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PAUDE_DEBUG", raising=False)
    monkeypatch.delenv("PAUDE_STATE_BACKEND", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))
    return tmp_path


@pytest.fixture
def planned(monkeypatch: pytest.MonkeyPatch) -> dict[str, PlanResult]:
    """Patch sessions.plan to return the PlanResult stored under 'result'."""
    box: dict[str, PlanResult] = {"result": plan_result("same")}

    def fake_plan(name: str, **_kw: Any) -> PlanResult:
        assert name == "demo"
        return box["result"]

    monkeypatch.setattr(sessions, "plan", fake_plan)
    return box


# ---------------------------------------------------------------- help and usage


def test_help_lists_the_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("plan", "apply", "destroy", "doctor"):
        assert f" {command} " in out
    assert "Exit codes: 0 success; 1 error; 2 changes present" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"paude {__version__}\n"


def test_plan_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--detailed-exitcode" in out and "--json" in out and "--markdown" in out


def test_bare_plan_without_paude_yaml_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan"]) == 1
    err = capsys.readouterr().err
    assert "paude.yaml: (file): file not found" in err
    assert "fix: run `paude create NAME` to define a session" in err


def test_unknown_option_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "demo", "--bogus"]) == 1
    assert "No such option: --bogus" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "name"), [
    (["plan", "--", "-rf"], "-rf"),
    (["plan", "A b"], "A b"),
    (["plan", "../x"], "../x"),
    (["apply", "--yes", "--", "--all"], "--all"),
    (["destroy", "--yes", "Demo"], "Demo"),
])
def test_bad_session_names_exit_1_naming_the_problem(
        argv: list[str], name: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The name is checked before paude.yaml is even looked for.
    monkeypatch.setattr(sessions, "open_project",
                        lambda *_a: pytest.fail("opened the project with a bad name"))
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error: command line: invalid session definition\n" in captured.err
    assert f"NAME: invalid session name {name!r}: " in captured.err
    assert "lowercase letters, digits and '-'" in captured.err


# ---------------------------------------------------------------- the error boundary


def test_paude_error_prints_error_and_fix(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    def busy(name: str, **_kw: Any) -> PlanResult:
        raise SessionBusyError(f"session {name} is being changed", hint="wait and retry")

    monkeypatch.setattr(sessions, "plan", busy)
    assert main(["plan", "demo"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "error: session demo is being changed\n  fix: wait and retry\n"


def test_paude_debug_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAUDE_DEBUG", "1")
    monkeypatch.setattr(sessions, "plan",
                        lambda *_a, **_k: (_ for _ in ()).throw(PaudeError("boom")))
    with pytest.raises(PaudeError, match="boom"):
        main(["plan", "demo"])


def test_ctrl_c_exits_130(monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(*_a: Any, **_k: Any) -> PlanResult:
        raise KeyboardInterrupt

    monkeypatch.setattr(sessions, "plan", interrupted)
    assert main(["plan", "demo"]) == 130
    assert capsys.readouterr().out == ""


def test_unexpected_exceptions_are_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    def bug(*_a: Any, **_k: Any) -> PlanResult:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(sessions, "plan", bug)
    with pytest.raises(ZeroDivisionError):
        main(["plan", "demo"])


# ---------------------------------------------------------------- plan output modes


def test_plan_prints_text(planned: dict[str, PlanResult],
                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "demo"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Session demo (podman)\n")
    assert out.endswith("No changes. 7 resources unchanged.\nPolicies: all rules passed.\n")


@pytest.mark.parametrize(("op", "code"), [("create", 2), ("same", 0)])
def test_detailed_exitcode(op: str, code: int, planned: dict[str, PlanResult]) -> None:
    planned["result"] = plan_result(op)
    assert main(["plan", "demo", "--detailed-exitcode"]) == code


def test_changes_without_detailed_exitcode_exit_0(planned: dict[str, PlanResult]) -> None:
    planned["result"] = plan_result("create")
    assert main(["plan", "demo"]) == 0


def test_plan_json(planned: dict[str, PlanResult], capsys: pytest.CaptureFixture[str]) -> None:
    planned["result"] = plan_result("create")
    assert main(["plan", "demo", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["version"] == 1
    assert data["session"] == "demo" and data["has_changes"] is True
    assert data["counts"]["create"] == 7


def test_plan_markdown(planned: dict[str, PlanResult],
                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "demo", "--markdown"]) == 0
    assert capsys.readouterr().out.startswith("### paude plan: `demo` (podman) - no changes\n")


# ---------------------------------------------------------------- apply and destroy


def test_apply_without_yes_declines_when_stdin_is_not_a_tty(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    answers: list[bool] = []

    def fake_apply(name: str, *, confirm: Any = None, on_progress: Any = None,
                   on_install: Any = None, on_warning: Any = None,
                   on_notice: Any = None) -> ApplyResult:
        assert confirm is not None, "without --yes, apply must ask"
        answers.append(confirm(plan_result("create")))
        if not answers[-1]:
            raise AbortedError("apply cancelled; nothing was changed")
        pytest.fail("applied without consent")

    monkeypatch.setattr(sessions, "apply", fake_apply)
    assert main(["apply", "demo"]) == 1
    captured = capsys.readouterr()
    assert answers == [False]
    assert "Plan: 7 to create, 0 unchanged." in captured.out
    assert ("Apply these changes to session demo? [y/N] no (stdin is not a terminal; pass "
            "--yes to proceed)") in captured.err
    assert captured.err.endswith("error: apply cancelled; nothing was changed\n")


def test_apply_with_yes_does_not_ask(monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    def fake_apply(name: str, *, confirm: Any = None, on_progress: Any = None,
                   on_install: Any = None, on_warning: Any = None,
                   on_notice: Any = None) -> ApplyResult:
        assert confirm is None and on_progress is not None
        return ApplyResult(name, plan_result("create").changes, {}, 1.0)

    monkeypatch.setattr(sessions, "apply", fake_apply)
    assert main(["apply", "demo", "--yes"]) == 0
    assert capsys.readouterr().out == "Session demo applied in 1.0s: 7 created.\n"


def test_destroy_without_yes_declines(monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    def fake_destroy(name: str, *, delete_data: bool, confirm: Any, force: bool = False,
                     on_progress: Any, on_install: Any = None,
                     on_notice: Any = None) -> DestroyResult:
        assert confirm is not None and not delete_data
        if not confirm(f"destroy session {name}?"):
            raise AbortedError("destroy cancelled; nothing was changed")
        pytest.fail("destroyed without consent")

    monkeypatch.setattr(sessions, "destroy", fake_destroy)
    assert main(["destroy", "demo"]) == 1
    assert capsys.readouterr().err.endswith("error: destroy cancelled; nothing was changed\n")


def test_destroy_reports_the_kept_workspace(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sessions, "destroy", lambda name, **_k: DestroyResult(
        name, ("agent", "proxy"), ("workspace",), False, 2.0))
    assert main(["destroy", "demo", "--yes"]) == 0
    assert capsys.readouterr().out == (
        "Session demo destroyed in 2.0s.\n"
        "  workspace volume kept: paude-demo-workspace (`paude destroy demo --delete-data` "
        "removes it)\n")


# ---------------------------------------------------------------- doctor


def test_doctor_exits_1_when_a_check_fails(monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(diagnose, "run_all", lambda _home: [
        Check("engine", True, "pulumi v3.274.1"),
        Check("podman", False, "podman is not installed", "install podman"),
    ])
    assert main(["doctor"]) == 1
    assert capsys.readouterr().out.startswith("ok   engine  pulumi v3.274.1\n"
                                              "FAIL podman  podman is not installed\n"
                                              "     fix: install podman\n\nsettings ")


def test_doctor_exits_0_when_all_checks_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(diagnose, "run_all", lambda _home: [Check("state", True, "file:///x")])
    assert main(["doctor"]) == 0


def test_engine_download_progress_prints_one_line_per_tenth(
        capsys: pytest.CaptureFixture[str]) -> None:
    from paude.cli import output

    output._last_tenth[0] = -1
    total = 80_000_000
    for done in range(0, total + 1, 1_000_000):
        output.download(done, total)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "downloading" in ln]
    assert len(lines) == 11  # 0%, 10%, ..., 100%
    assert lines[-1].endswith("80.0 of 80.0 MB")


def test_plan_all_exits_1_when_a_session_is_blocked(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from dataclasses import replace

    from paude.results import PolicyFinding

    finding = PolicyFinding("yolo-unrestricted-egress", "mandatory", "agent", "yolo and all",
                            "drop all")
    plans = [plan_result("same"), replace(plan_result("create"), session="wide",
                                          policy=(finding,))]
    monkeypatch.setattr(sessions, "plan_all", lambda **_kw: plans)
    assert main(["plan", "--all", "--detailed-exitcode"]) == 1
    captured = capsys.readouterr()
    assert "mandatory policy rules failed for: wide" in captured.err
    assert "BLOCKED  [yolo-unrestricted-egress] agent: yolo and all" in captured.out


def test_policies_lists_effective_levels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    repo, home = tmp_path / "repo", tmp_path / "home"
    (repo / ".git").mkdir(parents=True)
    home.mkdir()
    (repo / "paude-policy.yaml").write_text(
        "version: 1\nrules:\n  base-image-pinned: {level: mandatory}\n"
        "  allowlist-wider-than-default: {level: disabled}\n")
    monkeypatch.setenv("PAUDE_HOME", str(home))
    monkeypatch.chdir(repo)
    assert main(["policies", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["base-image-pinned"]["level"] == "mandatory"
    assert rows["allowlist-wider-than-default"]["level"] == "disabled"
    assert rows["pvc-size-limit"]["level"] == "advisory"
    assert rows["workspace-protected"]["source"] == "built-in"
    assert main(["policies"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("mandatory  agent-no-direct-egress")
    assert f"Policy files: {repo / 'paude-policy.yaml'}" in out


# ---------------------------------------------------------------- plan --base


@pytest.fixture
def base_planned(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from paude import baseplan
    from paude.results import BaseCommit

    calls: dict[str, Any] = {}

    def fake(ref: str, *, name: str | None = None, **_: Any) -> list[PlanResult]:
        calls.update(ref=ref, name=name)
        changes = tuple(ResourceChange(n, t, "same") for n, t in sorted(TYPES.items()))
        return [PlanResult("demo", "podman", changes, base=BaseCommit(ref, "a" * 40))]

    monkeypatch.setattr(baseplan, "plan", fake)
    return calls


def test_plan_base_never_touches_the_live_session(base_planned: dict[str, Any],
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sessions, "plan", lambda *_a, **_k: pytest.fail("live plan ran"))
    assert main(["plan", "demo", "--base", "origin/main", "--detailed-exitcode"]) == 0
    assert base_planned == {"ref": "origin/main", "name": "demo"}
    assert capsys.readouterr().out.startswith(
        "Session demo (podman) against base origin/main (aaaaaaaa)\n")
    assert main(["plan", "--all", "--base", "auto", "--json"]) == 0
    assert base_planned == {"ref": "auto", "name": None}
    data = json.loads(capsys.readouterr().out)
    assert data["plans"][0]["base"] == {"ref": "auto", "commit": "a" * 40}
    assert data["plans"][0]["removed_session"] is False


def test_plan_base_without_a_name_is_all_and_no_render(
        base_planned: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--base", "main", "--json"]) == 0
    assert base_planned == {"ref": "main", "name": None}
    assert "plans" in json.loads(capsys.readouterr().out)
    base_planned.clear()
    assert main(["plan", "demo", "--base", "main", "--render", "out"]) == 1
    assert "--render and --base do not go together" in capsys.readouterr().err
    assert base_planned == {}


def test_list_backend_reads_and_shows_only_that_backend(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from paude import index, overview
    from paude.backends.base import RuntimeStatus

    index.write("local", backend="podman", owner="/r/a", outputs={})
    index.write("remote", backend="openshift", owner="/r/b", outputs={})
    read: list[str] = []

    class Observed:
        def __init__(self, backend: str) -> None:
            self.backend = backend

        def observe(self, *, sessions: list[str]) -> dict[str, RuntimeStatus]:
            read.append(self.backend)
            return {n: RuntimeStatus(True, True, True, False) for n in sessions}

    monkeypatch.setattr(overview, "_place_backend", lambda b, c, n: Observed(b))
    assert main(["list", "--backend=podman"]) == 0
    assert read == ["podman"]
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["NAME", "local"]
    assert main(["list", "--backend", "openshift", "--json"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == ["remote"]
    assert read == ["podman", "openshift"]
    assert main(["list"]) == 0  # control: without the flag, both
    assert read[2:] == ["podman", "openshift"] or read[2:] == ["openshift", "podman"]
