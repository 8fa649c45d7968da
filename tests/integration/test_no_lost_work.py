"""No lost work: a failed create never takes a workspace it did not make."""

from __future__ import annotations

import pytest
import yaml

from tests.integration.helpers import Paude, podman
from tests.integration.test_git_sync import git as host_git
from tests.integration.test_quickstart import agent_exec, project

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]


def volume_exists(name: str) -> bool:
    return podman("volume", "exists", f"paude-{name}-workspace", check=False).returncode == 0


def test_refused_create_keeps_a_destroyed_session_s_workspace(paude: Paude) -> None:
    name = project(paude)
    paude.ok("create", "--yolo", name)
    paude.ok("remote", "add", "--push", name)
    agent_exec(name, "sh", "-c", "cd /workspace && echo work > agent.txt && git add agent.txt "
               "&& git commit -qm 'agent work'")
    head = agent_exec(name, "git", "-C", "/workspace", "rev-parse", "HEAD").strip()

    # Destroy keeps the workspace (with the unpulled commit), as documented.
    paude.ok("destroy", name, "--yes")
    assert volume_exists(name)

    # The session leaves paude.yaml; a create the policy pack refuses follows.
    definition = yaml.safe_load((paude.repo / "paude.yaml").read_text())
    definition.pop("sessions", None)
    (paude.repo / "paude.yaml").write_text(yaml.safe_dump(definition))
    refused = paude.run("create", "--yolo", "--allowed-domains", "all", name)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "nothing was applied" in refused.stderr
    assert "Traceback" not in refused.stderr

    # The kept workspace, and the agent's commit on it, are still there.
    assert volume_exists(name)
    paude.ok("create", "--yolo", name)
    assert agent_exec(name, "git", "-C", "/workspace", "rev-parse", "HEAD").strip() == head
    host_git(paude, "pull", "--ff-only", "-q", f"paude-{name}", "main")
    assert (paude.repo / "agent.txt").read_text() == "work\n"


def test_refused_create_of_a_new_session_leaves_nothing(paude: Paude) -> None:
    # The control: with nothing there before, a refused create leaves no volume, no stack
    # and no paude.yaml change behind.
    name = project(paude)
    before = (paude.repo / "paude.yaml").read_text()
    refused = paude.run("create", "--yolo", "--allowed-domains", "all", name)
    assert refused.returncode == 1
    assert not volume_exists(name)
    assert (paude.repo / "paude.yaml").read_text() == before
    assert paude.run("destroy", name, "--yes").returncode == 1  # no stack to destroy
