"""Bare `paude plan`, `apply`, `destroy`: the repository's sessions (service layer patched)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from paude import guard, index, sessions, stackset
from paude.cli import main, output
from paude.errors import UnfetchedWorkError
from paude.results import ApplyResult, DestroyResult, PlanResult, PolicyFinding, ResourceChange


def plan_of(name: str, op: str = "create") -> PlanResult:
    return PlanResult(name, "podman", (ResourceChange("agent", "podman:Container", op),
                                       ResourceChange("proxy", "podman:Container", op)))


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository whose paude.yaml defines two sessions; ownership always holds."""
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PAUDE_DEBUG", raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal: questions say no
    path = tmp_path / "repo"
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "paude.yaml").write_text("version: 1\nsessions:\n  alpha: {}\n  beta: {}\n")
    monkeypatch.chdir(path)
    monkeypatch.setattr(sessions, "require_owner", lambda root, name: None)
    return path


def one_session(repo: Path) -> None:
    (repo / "paude.yaml").write_text("version: 1\nsessions:\n  alpha: {}\n")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every service call the commands make, as (what, session)."""
    seen: list[tuple[str, str]] = []

    def fake_plan(name: str, **_kw: Any) -> PlanResult:
        seen.append(("plan", name))
        return plan_of(name)

    def fake_plan_all(**_kw: Any) -> list[PlanResult]:
        seen.append(("plan_all", ""))
        return [plan_of("alpha"), plan_of("beta", "same")]

    def fake_apply(name: str, *, confirm: Any = None, **_kw: Any) -> ApplyResult:
        fresh = plan_of(name) if name == "alpha" else plan_of(name, "same")
        if confirm is not None and fresh.has_changes:
            confirm(fresh)
        seen.append(("apply", name))
        return ApplyResult(name, fresh.changes, {}, 1.0)

    def fake_destroy(name: str, *, confirm: Any = None, **_kw: Any) -> DestroyResult:
        if confirm is not None:
            assert confirm(f"destroy session {name}?"), "declined"
        seen.append(("destroy", name))
        return DestroyResult(name, ("agent",), ("workspace",), False, 1.0)

    monkeypatch.setattr(sessions, "plan", fake_plan)
    monkeypatch.setattr(sessions, "plan_all", fake_plan_all)
    monkeypatch.setattr(sessions, "apply", fake_apply)
    monkeypatch.setattr(sessions, "destroy", fake_destroy)
    return seen


def applied(repo: Path, *names: str) -> None:
    for name in names:
        index.write(name, backend="podman", owner=str(repo.resolve()), outputs={})


# ---------------------------------------------------------------- plan


def test_bare_plan_of_the_only_session_is_its_plan(
        repo: Path, calls: list[tuple[str, str]], capsys: pytest.CaptureFixture[str]) -> None:
    one_session(repo)
    assert main(["plan", "--json"]) == 0
    assert calls == [("plan", "alpha")]
    assert json.loads(capsys.readouterr().out)["session"] == "alpha"  # not a list of plans


def test_bare_plan_of_several_sessions_is_the_combined_plan(
        repo: Path, calls: list[tuple[str, str]], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--json", "--detailed-exitcode"]) == 2
    assert calls == [("plan_all", "")]
    data = json.loads(capsys.readouterr().out)
    assert [p["session"] for p in data["plans"]] == ["alpha", "beta"]
    # The control: --all gives the same document.
    assert main(["plan", "--all", "--json", "--detailed-exitcode"]) == 2
    assert json.loads(capsys.readouterr().out) == data


def test_bare_plan_without_sessions_says_so(repo: Path, calls: list[tuple[str, str]],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "paude.yaml").write_text("version: 1\nsessions: {}\n")
    assert main(["plan"]) == 1
    assert "error: paude.yaml defines no sessions" in capsys.readouterr().err
    assert calls == []


def test_bare_plan_render_needs_a_name_when_there_are_several(
        repo: Path, calls: list[tuple[str, str]], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--render", "out"]) == 1
    err = capsys.readouterr().err
    assert "--render writes one session's manifests and paude.yaml defines several" in err
    assert calls == [] and not (repo / "out").exists()


# ---------------------------------------------------------------- apply


def test_bare_apply_shows_one_plan_and_asks_once(
        repo: Path, calls: list[tuple[str, str]], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apply"]) == 1
    captured = capsys.readouterr()
    assert calls == [("plan_all", "")]  # nothing applied
    assert captured.out.startswith("Session alpha (podman)\n")
    assert "Session beta (podman)" in captured.out
    assert captured.err.count("[y/N]") == 1
    assert "Apply these changes to sessions alpha? [y/N] no" in captured.err  # beta: no change
    assert captured.err.endswith("error: apply cancelled; nothing was changed\n")


def test_bare_apply_confirmed_applies_each_session(
        repo: Path, calls: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    questions: list[str] = []
    monkeypatch.setattr(output, "confirm", lambda q: questions.append(q) or True)
    assert main(["apply"]) == 0
    assert calls == [("plan_all", ""), ("apply", "alpha"), ("apply", "beta")]
    assert questions == ["Apply these changes to sessions alpha?"]
    out = capsys.readouterr().out
    assert "Session alpha applied in 1.0s: 2 created." in out
    assert "Session beta applied in 1.0s: no changes" in out


def test_bare_apply_stops_when_a_plan_changed_after_it_was_shown(
        repo: Path, calls: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(output, "confirm", lambda q: True)
    # What was shown: alpha replaces its agent; what apply now finds: two creates.
    monkeypatch.setattr(sessions, "plan_all", lambda **_kw: [
        plan_of("alpha", "replace"), plan_of("beta", "same")])
    assert main(["apply"]) == 1
    err = capsys.readouterr().err
    assert "error: the plan of session alpha changed after it was shown; nothing was " \
           "changed in alpha or after it" in err
    assert "fix: run `paude apply` again" in err
    assert calls == []  # neither alpha nor beta was applied


def test_plan_comparison_ignores_the_order_of_steps() -> None:
    shown = plan_of("alpha")
    fresh = replace(shown, changes=tuple(reversed(shown.changes)))
    assert stackset._same_as(shown, [])(fresh) is True
    with pytest.raises(stackset.PlanChangedError):
        stackset._same_as(shown, [])(plan_of("alpha", "update"))


def test_bare_apply_yes_does_not_ask(repo: Path, calls: list[tuple[str, str]],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output, "confirm", lambda q: pytest.fail("asked"))
    assert main(["apply", "--yes"]) == 0
    assert calls == [("plan_all", ""), ("apply", "alpha"), ("apply", "beta")]


def test_bare_apply_with_a_blocked_session_applies_none(
        repo: Path, calls: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    finding = PolicyFinding("yolo-unrestricted-egress", "mandatory", "agent", "yolo and all",
                            "drop all")
    monkeypatch.setattr(sessions, "plan_all", lambda **_kw: [
        plan_of("alpha"), replace(plan_of("beta"), policy=(finding,))])
    assert main(["apply", "--yes"]) == 1
    captured = capsys.readouterr()
    assert "mandatory policy rules failed for: beta; nothing was applied" in captured.err
    assert "BLOCKED  [yolo-unrestricted-egress]" in captured.out
    assert calls == []


def test_bare_apply_of_the_only_session_is_apply_name(
        repo: Path, calls: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    one_session(repo)
    monkeypatch.setattr(output, "confirm", lambda q: q == "Apply these changes to session alpha?")
    assert main(["apply"]) == 0
    assert calls == [("apply", "alpha")]
    # --all takes the combined path even for one session.
    calls.clear()
    monkeypatch.setattr(sessions, "plan_all", lambda **_kw: [plan_of("alpha")])
    monkeypatch.setattr(output, "confirm", lambda q: q == "Apply these changes to sessions alpha?")
    assert main(["apply", "--all"]) == 0
    assert calls == [("apply", "alpha")]


# ---------------------------------------------------------------- destroy


def test_bare_destroy_names_the_applied_sessions_and_asks_once(
        repo: Path, calls: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    applied(repo, "alpha", "beta", "gone")  # gone: no longer in paude.yaml, still applied
    index.write("other", backend="podman", owner="/elsewhere", outputs={})
    assert main(["destroy"]) == 1
    err = capsys.readouterr().err
    assert "destroy sessions alpha, beta, gone: remove their containers, networks? [y/N] no" in err
    assert calls == []
    questions: list[str] = []
    monkeypatch.setattr(output, "confirm", lambda q: questions.append(q) or True)
    assert main(["destroy"]) == 0
    assert calls == [("destroy", "alpha"), ("destroy", "beta"), ("destroy", "gone")]
    assert len(questions) == 1  # one question, not one per session
    assert "Session gone destroyed in 1.0s." in capsys.readouterr().out


def test_bare_destroy_with_delete_data_checks_every_session_first(
        repo: Path, calls: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    applied(repo, "alpha", "beta")
    checked: list[str] = []

    def fake_guard(root: Path, backend: str, name: str, *, container_expected: bool) -> None:
        checked.append(name)
        if name == "beta":
            raise UnfetchedWorkError("session beta has 1 commit the host lacks")

    monkeypatch.setattr(stackset, "guard_unfetched", fake_guard)
    assert main(["destroy", "--delete-data", "--yes"]) == 1
    assert checked == ["alpha", "beta"]
    assert calls == []  # alpha was not destroyed either
    assert "session beta has 1 commit the host lacks" in capsys.readouterr().err
    # The control: --force skips the check, and both go.
    assert main(["destroy", "--delete-data", "--force", "--yes"]) == 0
    assert calls == [("destroy", "alpha"), ("destroy", "beta")]
    assert guard.guard_unfetched is not fake_guard  # single destroy keeps its own check


def test_bare_destroy_with_nothing_applied_changes_nothing(
        repo: Path, calls: list[tuple[str, str]], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["destroy", "--yes"]) == 0
    assert "no session of this repository is applied; nothing to destroy" in \
        capsys.readouterr().err
    assert calls == []


def test_bare_destroy_of_the_only_session_is_destroy_name(
        repo: Path, calls: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    one_session(repo)
    monkeypatch.setattr(output, "confirm", lambda q: q == "destroy session alpha?")
    assert main(["destroy"]) == 0
    assert calls == [("destroy", "alpha")]
