"""--openshift-context / --openshift-namespace: written by create, a check elsewhere (a
session applied or defined in another place is refused), a filter for list."""

from __future__ import annotations

from pathlib import Path

import pytest

from paude import index, placement
from paude.definition import CreateFlags, plan_definition
from paude.errors import PaudeError

HERE = placement.Placement(context="prod", namespace="team-a")


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    index.write("local", backend="podman", owner="/r", outputs={})
    index.write("remote", backend="openshift", owner="/r",
                outputs={"context": "prod", "namespace": "team-a"})
    index.write("current", backend="openshift", owner="/r",
                outputs={"context": None, "namespace": "team-a"})


def test_a_session_where_the_flags_say_passes() -> None:
    placement.require_recorded("remote", HERE)
    placement.require_recorded("remote", placement.Placement(namespace="team-a"))
    placement.require_recorded("local", placement.Placement())  # no flags: nothing checked
    placement.require_recorded("never-applied", HERE)  # the command says it is not applied


@pytest.mark.parametrize("name, where, says", [
    ("remote", placement.Placement(namespace="team-b"),
     "session remote was applied with namespace team-a, not team-b (--openshift-namespace)"),
    ("remote", placement.Placement(context="staging"),
     "session remote was applied with context prod, not staging (--openshift-context)"),
    ("current", HERE, "session current was applied with the kubeconfig's current context, "
                      "not prod (--openshift-context)"),
    ("local", HERE, "session local runs on podman: --openshift-context prod "
                    "--openshift-namespace team-a is for openshift sessions"),
])
def test_a_session_elsewhere_is_refused(name: str, where: placement.Placement,
                                        says: str) -> None:
    with pytest.raises(PaudeError) as caught:
        placement.require_recorded(name, where)
    assert caught.value.message == says
    if "podman" not in says:
        assert "cannot move it for one run" in (caught.value.hint or "")


def test_the_definition_is_checked_for_plan_and_apply() -> None:
    placement.require_declared("new", HERE, "openshift", "prod", "team-a")
    with pytest.raises(PaudeError, match=r"is defined in paude\.yaml with namespace other"):
        placement.require_declared("new", HERE, "openshift", "prod", "other")


def test_list_filter() -> None:
    rows = [("podman", None, None), ("openshift", "prod", "team-a"),
            ("openshift", "prod", "team-b"), ("openshift", None, "team-a")]
    keep = [r for r in rows if placement.matches(placement.Placement(namespace="team-a"), *r)]
    assert keep == [rows[1], rows[3]]
    assert [r for r in rows if placement.matches(HERE, *r)] == [rows[1]]
    assert [r for r in rows if placement.matches(placement.Placement(), *r)] == rows


def test_create_writes_them_into_the_definition(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "paude.yaml").write_text("version: 1  # ours\nsessions:\n  other: {}\n")
    planned = plan_definition(repo, "demo", CreateFlags(
        backend="openshift", openshift_context="prod", openshift_namespace="team-a"))
    assert planned.text == ("version: 1  # ours\nsessions:\n  demo: {backend: openshift, "
                            "openshift: {context: prod, namespace: team-a}}\n  other: {}\n")
    session = planned.file.sessions["demo"]
    assert session.openshift is not None and session.openshift.namespace == "team-a"
