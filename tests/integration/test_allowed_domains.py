"""`paude allowed-domains` on real podman: a domain added through the command reaches the
agent through the proxy, the plan says egress widened, only the proxy is replaced (the
agent keeps running), paude.yaml keeps its comments, and an edit that would carry other
pending changes is refused with paude.yaml restored. The new domain is a canary on the
session's egress network under a made-up name (never a public address)."""

from __future__ import annotations

import json

import pytest

from tests.integration.canary import Canary, in_container, start_canary
from tests.integration.helpers import BASE_IMAGE, Paude, podman

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

NEW = "widened.paude-test.example"


def definition(session: str) -> str:
    return (f"# The team's sessions.\nversion: 1\ndefaults:\n"
            f"  agent: {{install: none, command: [bash]}}\n"
            f"  image: {{base: {BASE_IMAGE}}}\n"
            f"sessions:\n  {session}:\n    allowed_domains:\n"
            f"      - pypi   # package installs\n")


def container_id(name: str) -> str:
    return podman("inspect", "--format", "{{.Id}}", name).stdout.strip()


def reached(paude: Paude, canary: Canary) -> bool:
    """The agent asks the proxy for the new name; True when the canary saw a connection
    (the proxy let it through), False when nothing arrived."""
    before = len(canary.records())
    in_container(f"paude-{paude.session}-agent", "sh", "-c",
                 f"curl -s -o /dev/null --max-time 5 https://{NEW}/")
    return any(r["event"] == "accept" and r["port"] == 443
               for r in canary.records()[before:])


def test_adding_a_domain_replaces_only_the_proxy_and_opens_the_way(paude: Paude) -> None:
    session = paude.session
    yaml_path = paude.repo / "paude.yaml"
    yaml_path.write_text(definition(session))
    paude.ok("apply", session, "--yes")
    canary = start_canary(f"paude-{session}-widened", f"paude-{session}-egress",
                          session=session, aliases=[NEW])
    agent, proxy = f"paude-{session}-agent", f"paude-{session}-proxy"
    agent_id, proxy_id = container_id(agent), container_id(proxy)
    assert not reached(paude, canary)  # not allowed yet: the proxy refuses the name

    shown = paude.ok("allowed-domains", session).stdout
    assert shown.startswith(f"Session {session} allowed_domains: [pypi]\n")
    dry = paude.ok("allowed-domains", session, "--add", NEW, "--dry-run").stdout
    assert f"  + [pypi, {NEW}]" in dry and "egress widened" in dry and f"+ {NEW}" in dry
    assert "Dry run: nothing was written or changed." in dry
    assert yaml_path.read_text() == definition(session)

    refused = paude.run("allowed-domains", session, "--add", "http://bad.example", "--yes")
    assert refused.returncode == 1
    assert f"sessions.{session}.allowed_domains.1: " in refused.stderr
    assert yaml_path.read_text() == definition(session)

    applied = paude.ok("allowed-domains", session, "--add", NEW, "--yes")
    assert yaml_path.read_text() == definition(session) + f"      - {NEW}\n"  # comments kept
    assert container_id(agent) == agent_id  # the agent kept running, untouched
    assert container_id(proxy) != proxy_id
    assert "agent" not in json.dumps([line for line in applied.stdout.splitlines()
                                      if "replace" in line or "update" in line])
    # At once: the new proxy has the old one's address and MAC (the agent's neighbour cache
    # would otherwise send to the old one for about half a minute).
    assert reached(paude, canary)
    assert paude.plan_json()["has_changes"] is False  # the stack matches paude.yaml

    # A definition with another pending change (yolo replaces the agent): refused, and
    # paude.yaml is back to the text the command found.
    edited = yaml_path.read_text().replace(f"  {session}:\n", f"  {session}:\n    yolo: true\n")
    yaml_path.write_text(edited)
    proxy_id = container_id(proxy)
    other = paude.run("allowed-domains", session, "--remove", NEW, "--yes")
    assert other.returncode == 1, other.stdout + other.stderr
    assert "other pending changes: agent" in other.stderr
    assert yaml_path.read_text() == edited
    assert container_id(proxy) == proxy_id and container_id(agent) == agent_id
    assert reached(paude, canary)  # nothing was applied
