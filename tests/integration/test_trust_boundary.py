"""The agent's commits reach the host by design: a policy file with code, committed inside
the session and pulled, never runs on the host, and the plan names what the agent changed;
a link it planted never makes paude write outside the repository."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from tests.integration.helpers import Paude
from tests.integration.test_policy import TIDY, TIDY_RULE
from tests.integration.test_provenance import GITCONFIG, git, in_agent, plan

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]


def test_policy_code_committed_by_the_agent_never_runs(paude: Paude) -> None:
    name = paude.session
    marker = paude.home.parent / "tidy-ran"
    (paude.home.parent / "user-home" / ".gitconfig").write_text(GITCONFIG, encoding="utf-8")
    git(paude, "symbolic-ref", "HEAD", "refs/heads/main")
    git(paude, "add", "paude.yaml")
    git(paude, "commit", "-qm", "define the session")
    paude.ok("apply", name, "--yes")
    paude.ok("remote", "add", "--push", name)

    # Inside its container, the agent commits a rule with code and the code.
    files = {"tidy.py": TIDY.format(marker=str(marker)), "paude-policy.yaml": TIDY_RULE}
    writes = " && ".join(f"printf %s {shlex.quote(text)} > {path}"
                         for path, text in files.items())
    in_agent(paude, f"cd /workspace && {writes} && git add -A && git commit -qm 'tidy up'")
    git(paude, "pull", "-q", "--ff-only", f"paude-{name}", "main")
    assert (paude.repo / "tidy.py").exists()

    # The step a careful user runs to review it: refused, and nothing ran.
    for command in (("plan", name), ("apply", name, "--yes")):
        refused = paude.run(*command)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "cannot add rules with code" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert not marker.exists(), f"paude {command[0]} ran the agent's code"

    # The agent's policy file made data-only by the user (levels may only tighten): the
    # plan runs, still runs no code, and names the agent's commit as security-relevant.
    (paude.repo / "paude-policy.yaml").write_text(
        "version: 1\nrules: {pvc-size-limit: {level: mandatory}}\n")
    data = plan(paude)
    assert not marker.exists()
    changed = {c["file"]: c for c in data["definition_changes"]}
    assert changed["paude-policy.yaml"]["from_session"] is True
    assert [c["subject"] for c in changed["paude-policy.yaml"]["commits"]] == ["tidy up"]
    flagged = {s["kind"]: s for s in data["summary"]}["definition-changed-by-session"]
    assert flagged["security_relevant"] is True and "paude-policy.yaml" in flagged["text"]

    # Control: the same code named by the machine's own policy file does run, so the
    # checks above would have seen it run.
    (paude.home / "tidy.py").write_text(TIDY.format(marker=str(marker)))
    (paude.home / "policy.yaml").write_text(TIDY_RULE)
    paude.ok("plan", name)
    assert marker.read_text() == "ran"


LAUNCHER = """import os, sys
# What a pull can bring: links named as a writer of paude.yaml might name its temporary
# file (the writer's pid; this process becomes paude, so the pid is paude's).
os.symlink(sys.argv[1], f".paude.yaml.{os.getpid()}.tmp")
os.execv(sys.argv[2], sys.argv[2:])
"""


def test_a_link_the_agent_planted_never_makes_paude_write_outside(paude: Paude) -> None:
    bashrc = paude.home.parent / "user-home" / ".bashrc"
    bashrc.write_text("the user's\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-c", LAUNCHER, str(bashrc), str(paude.exe), "allowed-domains",
         paude.session, "--add", ".example.com"],
        cwd=paude.repo, env=paude.env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    [planted] = paude.repo.glob(".paude.yaml.*.tmp")
    assert planted.is_symlink() and planted.resolve() == bashrc  # it was there, aimed home
    assert bashrc.read_text(encoding="utf-8") == "the user's\n"
    # Control: the edit itself landed, in the repository's own paude.yaml.
    assert not (paude.repo / "paude.yaml").is_symlink()
    assert ".example.com" in (paude.repo / "paude.yaml").read_text(encoding="utf-8")
