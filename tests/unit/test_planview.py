"""Plan rendering (text, JSON, markdown) from hand-built PlanResults: golden files."""

from __future__ import annotations

import json
from typing import Any

import pytest

from paude.cli.planview import (
    PLAN_JSON_VERSION,
    apply_text,
    plan_json,
    plan_json_text,
    plan_markdown,
    plan_text,
    plans_markdown,
)
from paude.domains import expand
from paude.results import (
    ApplyResult,
    DefinitionChange,
    DefinitionCommit,
    PlanResult,
    PolicyFinding,
    ResourceChange,
    SummaryItem,
)
from paude.summary import summarize

TYPES = {"agent": "podman:Container", "proxy": "podman:Container",
         "agent-image": "podman:Image", "proxy-image": "podman:Image",
         "internal-network": "podman:Network", "egress-network": "podman:Network",
         "workspace": "podman:Volume"}


def changes(op: str = "same", **special: ResourceChange) -> tuple[ResourceChange, ...]:
    return tuple(special.get(n.replace("-", "_"), ResourceChange(n, t, op))
                 for n, t in sorted(TYPES.items()))


def new_session() -> PlanResult:
    created = changes("create")
    return PlanResult("demo", "podman", created, summarize(created, new_session=True),
                      new_session=True)


def no_changes() -> PlanResult:
    same = changes()
    return PlanResult("demo", "podman", same, summarize(same, new_session=False))


def image_change() -> PlanResult:
    old = {"tag": "localhost/paude-agent:1111111111111111",
           "files": {"Containerfile": "FROM debian\nRUN apt-get install -y git\n"}}
    new = {"tag": "localhost/paude-agent:2222222222222222",
           "files": {"Containerfile": "FROM debian\nRUN apt-get install -y git make\n"}}
    planned = changes(
        agent_image=ResourceChange("agent-image", "podman:Image", "replace",
                                   diff_keys=("files", "tag"), replace_keys=("tag",),
                                   retained=True, old_inputs=old, new_inputs=new),
        agent=ResourceChange("agent", "podman:Container", "replace", diff_keys=("image",),
                             replace_keys=("image",)),
    )
    return PlanResult("demo", "podman", planned, summarize(planned, new_session=False))


def egress_widened() -> PlanResult:
    planned = changes(proxy=ResourceChange(
        "proxy", "podman:Container", "replace", diff_keys=("allowlist", "env"),
        replace_keys=("env",),
        old_inputs={"allowlist": expand(["default"]).describe()},
        new_inputs={"allowlist": expand(["default", ".example.com"]).describe()}))
    wider = PolicyFinding("allowlist-wider-than-default", "advisory", "proxy",
                          "the allowlist is wider than the default; additions: .example.com",
                          "remove the additions from allowed_domains unless the agent needs them")
    return PlanResult("demo", "podman", planned, summarize(planned, new_session=False),
                      policy=(wider,))


def yolo_on() -> PlanResult:
    mounts = ["paude-demo-workspace:/paude"]
    adc = "/s/adc.json:/home/paude/.config/gcloud/application_default_credentials.json:ro"
    planned = changes(agent=ResourceChange(
        "agent", "podman:Container", "replace", diff_keys=("env", "volumes"),
        replace_keys=("env", "volumes"),
        old_inputs={"env": {"PAUDE_AGENT_CMD": "claude"}, "volumes": mounts},
        new_inputs={"env": {"PAUDE_AGENT_CMD": "claude --dangerously-skip-permissions"},
                    "volumes": [*mounts, adc]}))
    return PlanResult("demo", "podman", planned, summarize(planned, new_session=False))


def workspace_replaced() -> PlanResult:
    planned = changes(workspace=ResourceChange("workspace", "podman:Volume", "replace",
                                               diff_keys=("name",), replace_keys=("name",)),
                      agent=ResourceChange("agent", "podman:Container", "replace",
                                           diff_keys=("volumes",), replace_keys=("volumes",)))
    return PlanResult("demo", "podman", planned, summarize(planned, new_session=False))


def yolo_unrestricted_blocked() -> PlanResult:
    planned = changes(proxy=ResourceChange(
        "proxy", "podman:Container", "replace", diff_keys=("allowlist", "env"),
        replace_keys=("env",), old_inputs={"allowlist": expand(["default"]).describe()},
        new_inputs={"allowlist": expand(["all"]).describe()}))
    findings = (
        PolicyFinding("yolo-unrestricted-egress", "mandatory", "agent",
                      "the agent runs with --yolo (no permission prompts) and its proxy allows "
                      "every destination (allowed_domains: all)",
                      "drop `all` from allowed_domains and list the domains the agent needs"),
        PolicyFinding("allowlist-wider-than-default", "advisory", "proxy",
                      "the proxy allows every destination (allowed_domains: all)",
                      "remove the additions from allowed_domains unless the agent needs them"),
    )
    return PlanResult("demo", "podman", planned, summarize(planned, new_session=False),
                      policy=findings)


def definition_changed() -> PlanResult:
    """The agent widened its own egress in paude.yaml, and the user pulled the commit."""
    commit = DefinitionCommit("3f2a1c9d" + "0" * 32, "3f2a1c9", "widen egress", "Agent",
                              "paude-demo")
    sneaky = DefinitionCommit("5b7e0aa1" + "0" * 32, "5b7e0aa", "`tidy` [docs](http://x) | y",
                              "Agent", "paude-demo")
    definition = (DefinitionChange("paude.yaml", "modified", (commit,), True),
                  DefinitionChange("docker/setup.sh", "added", (sneaky,), True),
                  DefinitionChange("paude-policy.yaml", "modified"))
    planned = changes(proxy=ResourceChange(
        "proxy", "podman:Container", "replace", diff_keys=("allowlist", "env"),
        replace_keys=("env",),
        old_inputs={"allowlist": expand(["default"]).describe()},
        new_inputs={"allowlist": expand(["default", ".example.com"]).describe()}))
    finding = PolicyFinding(
        "definition-changed-by-session", "advisory", "",
        "the session's definition changed in commits that came from a session: paude.yaml "
        "(3f2a1c9 from paude-demo); docker/setup.sh (5b7e0aa from paude-demo)",
        "review each listed commit (`git show SHA`) before applying")
    return PlanResult("demo", "podman", planned,
                      summarize(planned, new_session=False, definition=definition),
                      policy=(finding,), definition_changes=definition)


PLANS = {
    "definition-changed": definition_changed,
    "policy-blocked": yolo_unrestricted_blocked,
    "new-session": new_session,
    "no-changes": no_changes,
    "image-change": image_change,
    "egress-widened": egress_widened,
    "workspace-replaced": workspace_replaced,
    "yolo-on": yolo_on,
}


# ---------------------------------------------------------------- golden files


@pytest.mark.parametrize("case", sorted(PLANS))
def test_plan_text_golden(case: str, golden: Any) -> None:
    golden.check(f"plan/{case}.txt", plan_text(PLANS[case]()))


@pytest.mark.parametrize("case", sorted(PLANS))
def test_plan_json_golden(case: str, golden: Any) -> None:
    golden.check(f"plan/{case}.json", plan_json_text(PLANS[case]()))


@pytest.mark.parametrize("case", sorted(PLANS))
def test_plan_markdown_golden(case: str, golden: Any) -> None:
    golden.check(f"plan/{case}.md", plan_markdown(PLANS[case]()))


# ---------------------------------------------------------------- JSON contract


def test_plan_json_contract() -> None:
    data = json.loads(plan_json_text(image_change()))
    assert PLAN_JSON_VERSION == 1
    assert set(data) == {"version", "session", "backend", "new_session", "has_changes",
                         "summary", "counts", "resources", "warnings", "policy",
                         "definition_changes"}
    assert data["definition_changes"] == []
    assert data["policy"] == {"passed": True, "findings": []}
    assert data["version"] == 1
    assert (data["session"], data["backend"]) == ("demo", "podman")
    assert data["new_session"] is False and data["has_changes"] is True
    assert data["counts"] == {"delete": 0, "replace": 2, "create": 0, "update": 0, "same": 5}
    assert data["warnings"] == []
    for resource in data["resources"]:
        assert set(resource) == {"resource", "type", "action", "changed", "replace_because",
                                 "retained"}
    for item in data["summary"]:
        assert set(item) == {"kind", "text", "security_relevant", "data_loss", "details"}
    # Inputs (which may hold build files or tokens) never appear in the JSON form.
    assert "old_inputs" not in plan_json_text(image_change())
    assert "apt-get" not in json.dumps(data["resources"])


def test_plan_json_lists_riskiest_first() -> None:
    data = plan_json(workspace_replaced())
    assert [r["action"] for r in data["resources"]][:2] == ["replace", "replace"]
    assert data["summary"][0]["data_loss"] is True


def test_has_changes_follows_ops() -> None:
    assert new_session().has_changes
    assert not no_changes().has_changes


# ---------------------------------------------------------------- text details


def test_text_marks_data_loss_and_security() -> None:
    text = plan_text(workspace_replaced())
    assert "  !! workspace volume will be replaced: its data is LOST\n" in text
    assert "\n  ! " not in text.split("!!", 1)[0]
    assert "  !  egress widened\n" in plan_text(egress_widened())


def test_text_shows_replace_reasons_and_kept_on_disk() -> None:
    text = plan_text(image_change())
    assert "  -/+ replace  agent-image        podman:Image  (tag)  [kept on disk]\n" in text
    assert "Plan: 2 to replace, 5 unchanged.\n" in text


def test_no_changes_line() -> None:
    assert plan_text(no_changes()).endswith(
        "No changes. 7 resources unchanged.\nPolicies: all rules passed.\n")


def test_policy_findings_in_every_form() -> None:
    blocked = yolo_unrestricted_blocked()
    assert blocked.blocked and not egress_widened().blocked
    text = plan_text(blocked)
    # Blocking findings come first and carry their fix.
    policy = text.split("Policies:\n", 1)[1].splitlines()
    assert policy[0].startswith("  BLOCKED  [yolo-unrestricted-egress] agent: the agent runs")
    assert policy[1].startswith("           fix: drop `all`")
    assert policy[2].startswith("  advisory [allowlist-wider-than-default] proxy:")
    data = plan_json(blocked)["policy"]
    assert data["passed"] is False
    assert [f["rule"] for f in data["findings"]] == ["yolo-unrestricted-egress",
                                                     "allowlist-wider-than-default"]
    markdown = plan_markdown(blocked)
    assert markdown.startswith("### paude plan: `demo` (podman) - BLOCKED by policy\n")
    assert "| **mandatory** | `yolo-unrestricted-egress` | agent |" in markdown


def test_markdown_status_line() -> None:
    assert plan_markdown(no_changes()).startswith(
        "### paude plan: `demo` (podman) - no changes\n")
    assert plan_markdown(egress_widened()).startswith(
        "### paude plan: `demo` (podman) - changes\n")


WARNING = ".devcontainer/devcontainer.json: runArgs is ignored (paude controls it)"


def test_text_and_json_show_warnings() -> None:
    plan = PlanResult("demo", "podman", changes(), warnings=(WARNING,))
    assert f"\n  warning: {WARNING}\n" in plan_text(plan)
    assert plan_json(plan)["warnings"] == [WARNING]


def test_markdown_shows_warnings() -> None:
    plan = PlanResult("demo", "podman", changes(), warnings=(WARNING,))
    assert WARNING in plan_markdown(plan)


def test_apply_text() -> None:
    result = ApplyResult(
        "demo", changes("create"),
        {"agent_container": "paude-demo-agent", "proxy_container": "paude-demo-proxy",
         "workspace_volume": "paude-demo-workspace", "git_remote_name": "paude-demo",
         "git_remote_url": "paude::demo"},
        12.34, (SummaryItem("new-session", "new session"),))
    assert apply_text(result) == (
        "Session demo applied in 12.3s: 7 created.\n"
        "  agent:     paude-demo-agent\n"
        "  proxy:     paude-demo-proxy\n"
        "  workspace: paude-demo-workspace\n"
        "  git remote: paude-demo -> paude::demo\n")


def test_apply_text_without_changes_or_outputs() -> None:
    assert apply_text(ApplyResult("demo", changes(), {}, 0.5)) == (
        "Session demo applied in 0.5s: no changes.\n")


def test_yolo_and_credentials_are_security_items() -> None:
    kinds = {i.kind: i for i in yolo_on().summary}
    assert kinds["yolo-toggled"].security and "ON" in kinds["yolo-toggled"].text
    assert kinds["credentials-added"].details == (
        "+ /home/paude/.config/gcloud/application_default_credentials.json",)
    assert "**security:** yolo turned ON" in plan_markdown(yolo_on())


def test_plan_all_markdown_puts_risky_sessions_first_and_splits_long_comments() -> None:
    from dataclasses import replace

    from paude.cli.planview import plans_json, plans_markdown

    plans = [replace(no_changes(), session="calm"), replace(egress_widened(), session="wide"),
             replace(workspace_replaced(), session="lossy")]
    (comment,) = plans_markdown(plans)
    table = comment.split("\n### ", 1)[0]
    assert table.index("`lossy`") < table.index("`wide`") < table.index("`calm`")
    assert "egress widened" in table and "| `calm` | podman | none | - |" in table
    parts = plans_markdown(plans, limit=900)
    assert len(parts) > 1 and all(len(p) <= 900 for p in parts)
    assert "".join(parts).count("### paude plan:") == 3
    assert [p["session"] for p in plans_json(plans)["plans"]] == ["calm", "wide", "lossy"]
    assert plans_json(plans)["version"] == PLAN_JSON_VERSION


def test_plan_all_lists_blocked_sessions_first_with_their_rules() -> None:
    from dataclasses import replace

    from paude.cli.planview import plans_json, plans_markdown

    plans = [replace(workspace_replaced(), session="lossy"),
             replace(yolo_unrestricted_blocked(), session="blocked"),
             replace(egress_widened(), session="wide")]
    (comment,) = plans_markdown(plans)
    table = comment.split("\n### ", 1)[0]
    assert table.index("`blocked`") < table.index("`lossy`") < table.index("`wide`")
    assert "| **blocked**: `yolo-unrestricted-egress` |" in table
    assert table.splitlines()[-1].endswith("| 1 advisory |")  # wide: one advisory finding
    assert "| passed |" in table  # lossy: no findings
    data = plans_json(plans)["plans"]
    assert [p["policy"]["passed"] for p in data] == [True, False, True]


def test_definition_changed_by_a_session_in_every_form() -> None:
    plan = definition_changed()
    text = plan_text(plan)
    # The session's edit leads the summary, marked security-relevant, before egress.
    lines = text.splitlines()
    assert lines[1] == ("  !  definition changed by session commits: paude.yaml (3f2a1c9 "
                        "'widen egress', from paude-demo); docker/setup.sh (5b7e0aa '`tidy` "
                        "[docs](http://x) | y', from paude-demo)")
    assert lines[2] == "       paude.yaml: 3f2a1c9 'widen egress' by Agent, from paude-demo"
    assert "  *  definition changed since the last apply: paude-policy.yaml (modified)" in text
    data = plan_json(plan)
    assert data["has_changes"] is True  # the proxy; the definition alone would not count
    assert data["definition_changes"][0] == {
        "file": "paude.yaml", "change": "modified", "from_session": True,
        "commits": [{"sha": "3f2a1c9d" + "0" * 32, "short": "3f2a1c9",
                     "subject": "widen egress", "author": "Agent", "source": "paude-demo"}]}
    assert data["definition_changes"][2]["from_session"] is False
    assert data["summary"][0]["kind"] == "definition-changed-by-session"
    assert data["summary"][0]["security_relevant"] is True
    markdown = plan_markdown(plan)
    # The agent's subject cannot become a link: escaped in text, fenced in code spans.
    assert "'\\`tidy\\` \\[docs\\](http://x) \\| y'" in markdown
    assert "  - ``docker/setup.sh: 5b7e0aa '`tidy` [docs](http://x) | y' by Agent, from " \
           "paude-demo``\n" in markdown
    assert "- **security:** definition changed by session commits:" in markdown
    assert "| `definition-changed-by-session` | session |" in markdown


def test_definition_changes_alone_are_not_resource_changes() -> None:
    from dataclasses import replace

    plan = replace(no_changes(), definition_changes=(
        DefinitionChange("paude.yaml", "modified", (), False),))
    assert not plan.has_changes


def test_plan_all_puts_a_session_edited_definition_in_the_security_column() -> None:
    from paude.cli.planview import plans_markdown

    (comment,) = plans_markdown([definition_changed()])
    row = comment.splitlines()[4]
    assert row.startswith("| `demo` | podman | 1 replace | definition changed by session "
                          "commits: paude.yaml (3f2a1c9 'widen egress', from paude-demo);")
    assert "\\| y" in row and row.endswith("| 1 advisory |")


# ---------------------------------------------------------------- plans against a base


def base_plans() -> list[PlanResult]:
    from paude.results import BaseCommit

    base = BaseCommit("origin/main", "0123456789abcdef" * 2 + "01234567")
    new = PolicyFinding("yolo-unrestricted-egress", "mandatory", "agent", "yolo with all", "x",
                        new=True)
    old = PolicyFinding("base-image-pinned", "advisory", "agent-image", "unpinned", "y",
                        new=False)
    blocked = PlanResult("demo", "podman", changes(), base=base, policy=(new, old))
    gone = PlanResult("old", "podman", changes("delete"), base=base, removed_session=True,
                      summary=(SummaryItem("session-removed", "session removed"),))
    return [blocked, gone]


def test_a_base_plan_says_against_what_and_what_is_new() -> None:
    blocked, gone = base_plans()
    text = plan_text(blocked)
    assert text.startswith("Session demo (podman) against base origin/main (01234567)\n")
    assert "[yolo-unrestricted-egress] agent: yolo with all (new: not at the base)" in text
    assert "[base-image-pinned] agent-image: unpinned\n" in text
    assert plan_text(gone).startswith("Session old (podman) against base origin/main "
                                      "(01234567): removed from paude.yaml\n")
    md = plan_markdown(blocked)
    assert "| **mandatory** (new) | `yolo-unrestricted-egress` |" in md
    assert "| advisory | `base-image-pinned` |" in md
    assert plan_markdown(gone).startswith("### paude plan: `old` (podman) - removed\n")
    data = plan_json(blocked)
    assert data["base"] == {"ref": "origin/main", "commit": "0123456789abcdef" * 2 + "01234567"}
    assert [f["new"] for f in data["policy"]["findings"]] == [True, False]
    [comment] = plans_markdown(base_plans())
    assert "Against the definitions at base `origin/main` (01234567)" in comment
    assert "| **newly blocked**: `yolo-unrestricted-egress` |" in comment
    assert "| `old` | podman | session removed |" in comment


def test_a_live_plan_has_no_base_keys() -> None:
    plan = PlanResult("demo", "podman", changes(),
                      policy=(PolicyFinding("r", "advisory", "", "m", "f"),))
    data = plan_json(plan)
    assert "base" not in data and "removed_session" not in data
    assert "new" not in data["policy"]["findings"][0]
    assert "against" not in plan_text(plan) and "(new" not in plan_markdown(plan)
