"""Drift on real podman: a session's containers changed outside paude show in the plan as
security-relevant drift, and apply puts the declared containers back."""

from __future__ import annotations

import json

import pytest

from paude.backends.base import SQUID_CONF
from tests.integration.helpers import Paude, podman, write_paude_yaml

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

CONF = SQUID_CONF


def drift_items(paude: Paude) -> dict[str, list[str]]:
    """The plan's drift statements, by container, and its exit code checked (2: changes)."""
    plan = paude.run("plan", paude.session, "--json", "--detailed-exitcode")
    assert plan.returncode == 2, plan.stdout + plan.stderr
    found = {}
    for item in json.loads(plan.stdout)["summary"]:
        if item["kind"] == "drift":
            assert item["security_relevant"] is True
            found[item["text"].split()[0]] = item["details"]
    return found


def inspect(name: str) -> dict[str, object]:
    data: dict[str, object] = json.loads(podman("container", "inspect", name).stdout)[0]
    return data


def test_drift_is_shown_and_repaired(paude: Paude) -> None:
    write_paude_yaml(paude.repo, paude.session)
    name = paude.session
    agent, proxy = f"paude-{name}-agent", f"paude-{name}-proxy"
    paude.ok("apply", name, "--yes")
    podman("exec", agent, "sh", "-c", "echo keep-me > /workspace/marker")
    clean = paude.run("plan", name, "--detailed-exitcode")
    assert clean.returncode == 0, clean.stdout + clean.stderr  # control

    # 1. The squid configuration edited inside the running proxy.
    podman("exec", proxy, "sh", "-c", f"echo 'http_access allow all' >> {CONF}")
    assert drift_items(paude) == {
        "proxy": [f"squid configuration edited inside the proxy ({CONF})"]}
    paude.ok("apply", name, "--yes")
    assert "http_access allow all" not in podman("exec", proxy, "cat", CONF).stdout
    assert paude.run("plan", name, "--detailed-exitcode").returncode == 0

    # 2. The agent swapped for a look-alike of the same name: privileged, with the host's
    # root mounted and an extra variable.
    found = inspect(agent)
    config = found["Config"]
    assert isinstance(config, dict)
    labels = [a for k, v in config["Labels"].items() for a in ("--label", f"{k}={v}")]
    podman("rm", "--force", "--time", "0", agent)
    podman("run", "-d", "--name", agent, "--privileged", "-v", "/:/host", "-v",
           f"paude-{name}-workspace:/workspace", "--network", f"paude-{name}-internal",
           "--env", "SMUGGLED=1", *labels, str(found["Image"]), "sleep", "infinity")
    items = drift_items(paude)
    assert list(items) == ["agent"], items
    details = items["agent"]
    for line in ("replaced outside paude: another container has its name", "privileged",
                 "mount added: /:/host", "environment SMUGGLED added"):
        assert line in details, details
    paude.ok("apply", name, "--yes")
    repaired = inspect(agent)
    host = repaired["HostConfig"]
    assert isinstance(host, dict) and host["Privileged"] is False
    mounts = repaired["Mounts"]
    assert isinstance(mounts, list)
    assert "/host" not in [m["Destination"] for m in mounts]
    assert podman("exec", agent, "cat", "/workspace/marker").stdout.strip() == "keep-me"
    assert paude.run("plan", name, "--detailed-exitcode").returncode == 0
