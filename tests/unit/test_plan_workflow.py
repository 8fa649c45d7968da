"""The GitHub workflows in docs/github: pull request content never runs with secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DOCS = Path(__file__).resolve().parents[2] / "docs" / "github"


def workflow(name: str) -> tuple[str, dict[Any, Any]]:
    text = (DOCS / name).read_text(encoding="utf-8")
    return text, yaml.safe_load(text)


def code(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def test_the_plan_runs_on_pull_request_without_secrets() -> None:
    text, flow = workflow("paude-plan.yml")
    assert list(flow[True]) == ["pull_request"]  # `on:` is YAML's true
    assert flow["permissions"] == {"contents": "read"}
    assert "secrets." not in code(text) and "pull_request_target" not in code(text)
    [job] = flow["jobs"].values()
    checkout = next(s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"]["persist-credentials"] is False
    # The repository's state.backend is overridden by a folder on the runner.
    assert "PAUDE_STATE_BACKEND=file://$RUNNER_TEMP" in text


def test_the_comment_never_checks_out_the_pull_request() -> None:
    text, flow = workflow("paude-plan-comment.yml")
    assert list(flow[True]) == ["workflow_run"]
    assert flow[True]["workflow_run"]["workflows"] == [workflow("paude-plan.yml")[1]["name"]]
    [job] = flow["jobs"].values()
    assert not any(s.get("uses", "").startswith("actions/checkout") for s in job["steps"])
    assert "secrets." not in code(text)
    # The pull request number from the artifact is checked against the planned commit.
    assert "HEAD_SHA" in text and ".head.sha" in text
