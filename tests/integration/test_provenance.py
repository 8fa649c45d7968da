"""The agent edits its own definition: a commit made inside the agent container widens
egress in paude.yaml, the user pulls it, and the next plan names it, security-relevant."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from tests.integration.helpers import Paude, podman

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

GITCONFIG = "[user]\n\tname = Test User\n\temail = test@example.invalid\n"
RULE = "definition-changed-by-session"


def git(paude: Paude, *args: str) -> str:
    """git on the host, as the user runs it (git-remote-paude beside paude on PATH)."""
    env = paude.env()
    env["PATH"] = f"{paude.exe.parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(["git", *args], cwd=paude.repo, env=env, capture_output=True,
                            text=True, check=False, timeout=120)
    assert result.returncode == 0, f"git {' '.join(args)}:\n{result.stderr}"
    return result.stdout


def in_agent(paude: Paude, script: str) -> str:
    """What the agent does: a shell in its own container."""
    result = podman("exec", f"paude-{paude.session}-agent", "sh", "-c", script, check=False)
    assert result.returncode == 0, f"in the agent: {script}\n{result.stderr}"
    return result.stdout


def plan(paude: Paude) -> dict[str, Any]:
    data: dict[str, Any] = paude.plan_json()
    return data


def container_id(name: str) -> str:
    return podman("container", "inspect", "--format", "{{.Id}}", name).stdout.strip()


def test_a_definition_change_committed_by_the_agent_is_named_in_the_plan(paude: Paude) -> None:
    name = paude.session
    (paude.home.parent / "user-home" / ".gitconfig").write_text(GITCONFIG, encoding="utf-8")
    git(paude, "symbolic-ref", "HEAD", "refs/heads/main")
    git(paude, "add", "paude.yaml")
    git(paude, "commit", "-qm", "define the session")
    paude.ok("apply", name, "--yes")
    paude.ok("remote", "add", "--push", name)
    assert plan(paude)["definition_changes"] == []

    # The agent widens its own egress and commits, inside its container.
    in_agent(paude, "cd /workspace && sed -i 's/: {}$/: {allowed_domains: [default, "
                    ".example.com]}/' paude.yaml && grep -q example.com paude.yaml && "
                    "git commit -qam 'widen egress'")
    agent_head = in_agent(paude, "git -C /workspace rev-parse HEAD").strip()
    git(paude, "pull", "-q", "--ff-only", f"paude-{name}", "main")
    assert git(paude, "rev-parse", "HEAD").strip() == agent_head

    data = plan(paude)
    [change] = data["definition_changes"]
    assert (change["file"], change["change"], change["from_session"]) == (
        "paude.yaml", "modified", True)
    [commit] = change["commits"]
    assert (commit["sha"], commit["subject"], commit["source"]) == (
        agent_head, "widen egress", f"paude-{name}")
    items = {s["kind"]: s for s in data["summary"]}
    flagged = items["definition-changed-by-session"]
    assert flagged["security_relevant"] is True
    assert flagged["text"] == (f"definition changed by session commits: paude.yaml "
                               f"({commit['short']} 'widen egress', from paude-{name})")
    assert items["egress-widened"]["details"] == ["+ .example.com"]
    assert (RULE, "advisory", "") in {(f["rule"], f["level"], f["resource"])
                                      for f in data["policy"]["findings"]}
    text = paude.ok("plan", name).stdout
    assert (f"  !  definition changed by session commits: paude.yaml ({commit['short']} "
            f"'widen egress', from paude-{name})\n") in text
    assert f"advisory [{RULE}] session:" in text

    # An organisation that makes the rule mandatory: nothing is applied.
    proxy = container_id(f"paude-{name}-proxy")
    (paude.home / "policy.yaml").write_text(f"version: 1\nrules:\n  {RULE}: {{level: mandatory}}\n",
                                            encoding="utf-8")
    refused = paude.run("apply", name, "--yes")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"[{RULE}] the session:" in refused.stderr and "nothing was applied" in refused.stderr
    assert container_id(f"paude-{name}-proxy") == proxy
    assert plan_exit(paude) == 1

    # Advisory again (the default): the apply goes ahead, warns, and records the definition.
    (paude.home / "policy.yaml").unlink()
    applied = paude.ok("apply", name, "--yes")
    assert f"policy {RULE} (advisory)" in applied.stderr
    assert container_id(f"paude-{name}-proxy") != proxy  # egress widened: proxy recreated
    after = plan(paude)
    assert after["definition_changes"] == []
    assert "definition-changed-by-session" not in {s["kind"] for s in after["summary"]}
    assert RULE not in {f["rule"] for f in after["policy"]["findings"]}
    record = json.loads((paude.home / "sessions" / f"{name}.json").read_text(encoding="utf-8"))
    assert record["definition_head"] == agent_head
    assert set(record["definition_inputs"]) == {"paude.yaml"}


def plan_exit(paude: Paude) -> int:
    return paude.run("plan", paude.session).returncode

