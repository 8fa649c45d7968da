"""The policy pack through the real engine: a mandatory violation fails `paude plan` and
`paude apply` naming the rule, the resource and the fix, and nothing is applied."""

from __future__ import annotations

import json

import pytest

from tests.integration.helpers import BASE_IMAGE, Paude, podman

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi]

REASON = "research sandbox without credentials; approved in SEC-42"


def _definition(name: str, extra: str = "") -> str:
    return (f"version: 1\nsessions:\n  {name}:\n    yolo: true\n    allowed_domains: [all]\n"
            f"    image: {{base: {BASE_IMAGE}}}\n{extra}")


def _nothing_created(paude: Paude) -> None:
    label = f"label=paude.session={paude.session}"
    for kind in ("ps -a", "network ls", "volume ls"):
        listed = podman(*kind.split(), "-q", "--filter", label).stdout.strip()
        assert listed == "", f"{kind}: {listed}"
    stacks = paude.home / "state" / ".pulumi" / "stacks"
    assert not stacks.exists() or not any(stacks.rglob("*.json")), "a stack was created"


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_mandatory_violation_blocks(paude: Paude, command: str) -> None:
    (paude.repo / "paude.yaml").write_text(_definition(paude.session))
    args = [command, paude.session] + (["--yes"] if command == "apply" else [])
    result = paude.run(*args)
    assert result.returncode == 1, result.stdout + result.stderr
    err = result.stderr
    assert "violates 1 mandatory policy rule; nothing was applied" in err, err
    assert "[yolo-unrestricted-egress] resource agent:" in err, err
    assert "fix: drop `all` from allowed_domains" in err, err
    assert "Traceback" not in err
    _nothing_created(paude)


def test_waiver_lets_the_plan_pass_and_is_reported(paude: Paude) -> None:
    waiver = f"    waivers:\n      yolo-unrestricted-egress: \"{REASON}\"\n"
    (paude.repo / "paude.yaml").write_text(_definition(paude.session, waiver))
    result = paude.run("plan", paude.session, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    policy = json.loads(result.stdout)["policy"]
    assert policy["passed"] is True
    # Still advisory: unrestricted egress is wider than the default.
    assert [(f["rule"], f["level"], f["resource"]) for f in policy["findings"]] == [
        ("allowlist-wider-than-default", "advisory", "proxy")]


def test_short_waiver_reason_is_refused(paude: Paude) -> None:
    waiver = "    waivers:\n      yolo-unrestricted-egress: ok\n"
    (paude.repo / "paude.yaml").write_text(_definition(paude.session, waiver))
    result = paude.run("plan", paude.session)
    assert result.returncode == 1
    assert f"sessions.{paude.session}.waivers.yolo-unrestricted-egress" in result.stderr
    assert "reason" in result.stderr


def test_organisation_file_raises_a_level_and_adds_a_rule(paude: Paude) -> None:
    """An advisory rule made mandatory and a custom rule, both in PAUDE_HOME."""
    (paude.repo / "paude.yaml").write_text(
        f"version: 1\nsessions:\n  {paude.session}:\n"
        f"    allowed_domains: [default, .example.com]\n    image: {{base: {BASE_IMAGE}}}\n")
    org_rules = ("custom_rules:\n  - id: proxy-named\n    level: advisory\n"
                 "    description: Proxies are named after their session.\n"
                 "    fix: keep paude's naming\n    check: org_rules.py:proxy_named\n")
    (paude.home / "policy.yaml").write_text(
        "version: 1\nrules:\n  allowlist-wider-than-default: {level: mandatory}\n"
        + org_rules)
    (paude.home / "org_rules.py").write_text(
        "def proxy_named(resources):\n"
        "    for r in resources:\n"
        "        if r.kind == 'podman:Container' and r.role == 'proxy':\n"
        "            yield r, f\"proxy container is {r.props['name']}\"\n")
    result = paude.run("plan", paude.session)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "[allowlist-wider-than-default] resource proxy:" in result.stderr
    assert "additions: .example.com" in result.stderr
    _nothing_created(paude)

    # Back to advisory-by-default: the custom rule's finding is reported with the plan.
    (paude.home / "policy.yaml").write_text("version: 1\n" + org_rules)
    result = paude.run("plan", paude.session, "--json")
    assert result.returncode == 0, result.stderr
    findings = {(f["rule"], f["resource"]): f for f in json.loads(result.stdout)["policy"]
                ["findings"]}
    custom = findings[("proxy-named", "proxy")]
    assert custom["message"] == f"proxy container is paude-{paude.session}-proxy"
    assert custom["fix"] == "keep paude's naming"


# Writes a marker outside the repository when imported and when run.
TIDY = """\
import pathlib
pathlib.Path({marker!r}).write_text("imported")


def tidy(resources):
    pathlib.Path({marker!r}).write_text("ran")
    yield "tidied"
"""
TIDY_RULE = ("version: 1\ncustom_rules:\n  - id: tidy\n    level: advisory\n"
             "    description: Keeps the repository tidy.\n    fix: nothing\n"
             "    check: tidy.py:tidy\n")


def test_repository_policy_code_never_runs(paude: Paude) -> None:
    """The agent commits a policy file with a rule and the rule's code; after `git pull`,
    `paude plan` refuses the file and runs none of it."""
    marker = paude.home.parent / "tidy-ran"
    (paude.repo / "paude.yaml").write_text(
        f"version: 1\nsessions:\n  {paude.session}:\n    image: {{base: {BASE_IMAGE}}}\n")
    (paude.repo / "tidy.py").write_text(TIDY.format(marker=str(marker)))
    (paude.repo / "paude-policy.yaml").write_text(TIDY_RULE)
    result = paude.run("plan", paude.session)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{paude.repo / 'paude-policy.yaml'}:3: custom_rules.0: a repository's policy file " \
           "cannot add rules with code: code in the repository would run on your machine; " \
           "the agent can write this file" in result.stderr, result.stderr
    assert "$PAUDE_HOME/policy.yaml" in result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()
    _nothing_created(paude)

    # Control: the same rule and code from PAUDE_HOME run in the pack, so the test above
    # would have seen them run.
    (paude.repo / "paude-policy.yaml").unlink()
    (paude.home / "tidy.py").write_text(TIDY.format(marker=str(marker)))
    (paude.home / "policy.yaml").write_text(TIDY_RULE)
    result = paude.run("plan", paude.session, "--json")
    assert result.returncode == 0, result.stderr
    assert marker.read_text() == "ran"
    assert [(f["rule"], f["message"]) for f in json.loads(result.stdout)["policy"]["findings"]
            if f["rule"] == "tidy"] == [("tidy", "tidied")]


def test_organisation_rule_whose_code_is_in_the_repository_is_refused(paude: Paude) -> None:
    """PAUDE_HOME's file is trusted, but not a check file it names inside the repository."""
    marker = paude.home.parent / "tidy-ran"
    (paude.repo / "paude.yaml").write_text(
        f"version: 1\nsessions:\n  {paude.session}:\n    image: {{base: {BASE_IMAGE}}}\n")
    (paude.repo / "tidy.py").write_text(TIDY.format(marker=str(marker)))
    (paude.home / "policy.yaml").write_text(
        TIDY_RULE.replace("tidy.py:tidy", f"{paude.repo / 'tidy.py'}:tidy"))
    result = paude.run("plan", paude.session)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{paude.home / 'policy.yaml'}:7: custom_rules.0.check" in result.stderr
    assert "inside the repository" in result.stderr
    assert not marker.exists()
    _nothing_created(paude)


def test_lowering_a_mandatory_rule_is_refused(paude: Paude) -> None:
    (paude.repo / "paude.yaml").write_text(_definition(paude.session))
    (paude.repo / "paude-policy.yaml").write_text(
        "version: 1\nrules:\n  yolo-unrestricted-egress:\n    level: advisory\n")
    result = paude.run("plan", paude.session)
    assert result.returncode == 1
    assert "paude-policy.yaml" in result.stderr
    assert "mandatory rule and cannot be set to advisory" in result.stderr
    _nothing_created(paude)


def test_plan_all_reports_a_blocked_session_with_the_others(paude: Paude) -> None:
    fine = f"{paude.session}-ok"
    (paude.repo / "paude.yaml").write_text(
        _definition(paude.session)
        + f"  {fine}:\n    image: {{base: {BASE_IMAGE}}}\n")
    result = paude.run("plan", "--all", "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"mandatory policy rules failed for: {paude.session}" in result.stderr
    plans = {p["session"]: p for p in json.loads(result.stdout)["plans"]}
    assert plans[fine]["policy"] == {"passed": True, "findings": []}
    blocked = plans[paude.session]["policy"]
    assert blocked["passed"] is False
    assert ("yolo-unrestricted-egress", "mandatory", "agent") in {
        (f["rule"], f["level"], f["resource"]) for f in blocked["findings"]}
    markdown = paude.run("plan", "--all", "--markdown")
    assert markdown.returncode == 1
    assert f"### paude plan: `{paude.session}` (podman) - BLOCKED by policy" in markdown.stdout
    _nothing_created(paude)
