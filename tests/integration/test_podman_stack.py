"""The Podman stack end to end: real paude CLI, real engine, real podman."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.helpers import (
    BASE_IMAGE,
    Paude,
    make_repo,
    podman,
    python_in,
    write_paude_yaml,
)

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

ALL_RESOURCES = {"agent-image", "proxy-image", "internal-network", "egress-network",
                 "workspace", "proxy", "agent", "gateway", "session-ca"}


def actions(plan: dict[str, object]) -> dict[str, str]:
    """resource name -> planned action."""
    resources = plan["resources"]
    assert isinstance(resources, list)
    return {r["resource"]: r["action"] for r in resources}


def inspect(kind: str, name: str) -> dict[str, object]:
    data: list[dict[str, object]] = json.loads(podman(kind, "inspect", name).stdout)
    return data[0]


def session_objects(session: str) -> dict[str, list[str]]:
    label = f"label=paude.session={session}"

    def names(*argv: str) -> list[str]:
        return podman(*argv, "--filter", label, "--format", "{{.Name}}").stdout.split()

    return {"containers": podman("ps", "-a", "--filter", label, "--format",
                                 "{{.Names}}").stdout.split(),
            "networks": names("network", "ls"), "volumes": names("volume", "ls")}


def can_connect(container: str, host: str, port: int) -> bool:
    code = (f"import socket; s=socket.socket(); s.settimeout(3); "
            f"s.connect(({host!r}, {port})); print('connected')")
    return "connected" in python_in(container, code).stdout


def test_session_lifecycle(paude: Paude, tmp_path: Path) -> None:
    """Plan, apply, no-op, image change, drift repair, ownership, destroy, delete-data."""
    name = paude.session
    agent, proxy = f"paude-{name}-agent", f"paude-{name}-proxy"
    internal, egress = f"paude-{name}-internal", f"paude-{name}-egress"
    volume = f"paude-{name}-workspace"

    # 1. A new session: the plan lists every resource as a create and creates nothing.
    plan = paude.plan_json()
    assert plan["new_session"] is True
    assert actions(plan) == dict.fromkeys(ALL_RESOURCES, "create")
    assert session_objects(name) == {"containers": [], "networks": [], "volumes": []}

    # 2. Apply: every container running and labelled; the agent and the model gateway only
    # on the internal network.
    paude.ok("apply", name, "--yes")
    gateway = f"paude-{name}-gateway"
    for container, role in ((agent, "agent"), (proxy, "proxy"), (gateway, "gateway")):
        info = inspect("container", container)
        state = info["State"]
        assert isinstance(state, dict) and state["Running"] is True, container
        labels = info["Config"]["Labels"]  # type: ignore[index]
        assert labels["paude.session"] == name and labels["paude.role"] == role
        assert labels["paude.repository"] == str(paude.repo.resolve())
    agent_networks = inspect("container", agent)["NetworkSettings"]["Networks"]  # type: ignore[index]
    assert sorted(agent_networks) == [internal]
    proxy_networks = inspect("container", proxy)["NetworkSettings"]["Networks"]  # type: ignore[index]
    assert sorted(proxy_networks) == sorted([internal, egress])
    gateway_networks = inspect("container", gateway)["NetworkSettings"]["Networks"]  # type: ignore[index]
    assert sorted(gateway_networks) == [internal]
    net = inspect("network", internal)
    assert net["internal"] is True and net["dns_enabled"] is False
    agent_cfg = inspect("container", agent)
    assert agent_cfg["Config"]["User"] == "paude"  # type: ignore[index]
    assert "CAP_NET_RAW" not in (agent_cfg["EffectiveCaps"] or [])

    # The agent reaches its proxy and nothing on the egress side; the proxy does (control).
    canary = f"paude-{name}-canary"
    podman("run", "-d", "--name", canary, "--network", egress, "--label",
           f"paude.session={name}", BASE_IMAGE, "python3", "-m", "http.server", "8080")
    canary_ip = _wait_ip(canary, egress)
    assert can_connect(proxy, canary_ip, 8080), "control: the proxy must reach the canary"
    assert not can_connect(agent, canary_ip, 8080), "the agent reached the egress network"
    assert can_connect(agent, proxy, 3128), "the agent cannot reach its proxy"
    resolved = python_in(agent, "import socket; print(socket.gethostbyname('deb.debian.org'))")
    assert resolved.returncode != 0, f"the agent resolved an external name: {resolved.stdout}"
    podman("rm", "-f", "-t", "0", canary)

    # 3. Nothing changed: detailed exit code 0.
    noop = paude.run("plan", name, "--detailed-exitcode")
    assert noop.returncode == 0, noop.stdout + noop.stderr
    assert "No changes" in noop.stdout

    # 4. A new package replaces the agent image and container, never the workspace.
    podman("exec", agent, "sh", "-c", "echo keep-me > /workspace/marker")
    agent_id = inspect("container", agent)["Id"]
    proxy_id = inspect("container", proxy)["Id"]
    # The build's setup step sleeps, so the apply below holds the session long enough for
    # the busy check whatever the image cache holds (the token makes the tag new).
    write_paude_yaml(paude.repo, name, packages=["jq"], setup=f"sleep 15 # {name}")
    plan = paude.plan_json()
    acts = actions(plan)
    assert acts["agent-image"] == "replace" and acts["agent"] == "replace"
    assert acts["workspace"] == "same" and acts["proxy"] == "same"
    assert {k for k, v in acts.items() if v != "same"} == {"agent-image", "agent"}
    changed = paude.run("plan", name, "--detailed-exitcode")
    assert changed.returncode == 2, changed.stdout + changed.stderr
    assert "agent image rebuilt" in changed.stdout

    # A second apply while the first holds the session gets a clear "busy" error once its
    # bounded wait (PAUDE_LOCK_WAIT, 0 here: fail at once) runs out.
    first = paude.popen("apply", name, "--yes")
    try:
        _wait_for_lock(paude.home)
        paude.extra_env["PAUDE_LOCK_WAIT"] = "0"
        try:
            second = paude.run("apply", name, "--yes")
        finally:
            del paude.extra_env["PAUDE_LOCK_WAIT"]
        assert second.returncode == 1
        assert "being changed by another" in second.stderr, second.stderr
    finally:
        out, err = first.communicate(timeout=900)
    assert first.returncode == 0, out + err
    assert paude.run("plan", name, "--detailed-exitcode").returncode == 0
    assert inspect("container", agent)["Id"] != agent_id
    assert inspect("container", proxy)["Id"] == proxy_id
    assert podman("exec", agent, "cat", "/workspace/marker").stdout.strip() == "keep-me"
    assert podman("exec", agent, "sh", "-c", "command -v jq").returncode == 0

    # 5. Drift: a proxy removed by hand is planned for creation and repaired by apply.
    podman("rm", "-f", "-t", "0", proxy)
    drift = paude.run("plan", name, "--detailed-exitcode", "--json")
    assert drift.returncode == 2
    assert actions(json.loads(drift.stdout))["proxy"] == "create"
    paude.ok("apply", name, "--yes")
    assert inspect("container", proxy)["State"]["Running"] is True  # type: ignore[index]
    assert paude.run("plan", name, "--detailed-exitcode").returncode == 0

    # 6. The same session name from another repository is refused, and nothing changes.
    other = make_repo(tmp_path / "other")
    write_paude_yaml(other, name)
    refused = paude.run("apply", name, "--yes", cwd=other)
    assert refused.returncode == 1
    assert "belongs to the repository" in refused.stderr
    assert str(paude.repo.resolve()) in refused.stderr

    # 7. Destroy keeps the workspace; --delete-data removes it.
    paude.ok("destroy", name, "--yes")
    objects = session_objects(name)
    assert objects["containers"] == [] and objects["networks"] == []
    assert objects["volumes"] == [volume]
    # Re-applying re-attaches the kept workspace with its data.
    paude.ok("apply", name, "--yes")
    assert podman("exec", agent, "cat", "/workspace/marker").stdout.strip() == "keep-me"
    # The marker is work outside git the host lacks: refused without --force.
    guarded = paude.run("destroy", name, "--yes", "--delete-data")
    assert guarded.returncode == 1 and "1 file (marker)" in guarded.stderr
    assert session_objects(name)["volumes"] == [volume]
    paude.ok("destroy", name, "--yes", "--delete-data", "--force")
    assert session_objects(name) == {"containers": [], "networks": [], "volumes": []}


def _wait_ip(container: str, network: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        nets = inspect("container", container)["NetworkSettings"]["Networks"]  # type: ignore[index]
        ip = nets.get(network, {}).get("IPAddress")
        if ip:
            return str(ip)
        time.sleep(0.1)
    raise AssertionError(f"{container} got no address on {network}")


def _wait_for_lock(home: Path, timeout: float = 60) -> None:
    locks = home / "state" / ".pulumi" / "locks"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if locks.exists() and any(p.suffix == ".json" for p in locks.rglob("*")):
            return
        time.sleep(0.05)
    raise AssertionError(f"no engine lock appeared under {locks}")
