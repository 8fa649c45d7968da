"""Claude Code's release is pinned, comes from this machine's settings, and an upgrade
rebuilds only the agent's image: the plan names it and the workspace stays."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.integration.helpers import BASE_IMAGE, PROXY_BASE_IMAGE, Paude

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

OLD, NEW = "2.1.331", "2.1.332"


def agent(paude: Paude, *argv: str) -> str:
    return subprocess.run(["podman", "exec", f"paude-{paude.session}-agent", *argv],
                          capture_output=True, text=True, check=True).stdout


def test_claude_code_upgrade_keeps_the_workspace(paude: Paude) -> None:
    # This machine's settings, as `make setup` writes them here: the local base image, Claude
    # Code from npm, the host's CAs (the npm registry is behind a TLS-inspecting proxy).
    (paude.home / "config.yaml").write_text(
        f"version: 1\nimage: {{base: {BASE_IMAGE}, trust_host_certificates: true}}\n"
        f"proxy: {{base: {PROXY_BASE_IMAGE}}}\nagent: {{install: npm, version: {OLD}}}\n")
    (paude.repo / "paude.yaml").write_text(
        "version: 1\ndefaults:\n  agent: {command: [bash]}\n"
        f"sessions:\n  {paude.session}: {{}}\n")
    paude.ok("apply", paude.session, "--yes")
    assert OLD in agent(paude, "claude", "--version")
    agent(paude, "sh", "-c", "echo work > /workspace/keep.txt && mkdir -p ~/.claude && "
          "echo remembered > ~/.claude/history.txt")

    # The machine moves to the pinned release (its agent.version removed).
    (paude.home / "config.yaml").write_text(
        f"version: 1\nimage: {{base: {BASE_IMAGE}, trust_host_certificates: true}}\n"
        f"proxy: {{base: {PROXY_BASE_IMAGE}}}\nagent: {{install: npm}}\n")
    plan = json.loads(paude.ok("plan", paude.session, "--json").stdout)
    summary = {item["kind"]: item["text"] for item in plan["summary"]}
    assert summary.get("agent-version") == f"Claude Code {OLD} \u2192 {NEW}", summary
    assert summary.get("workspace-kept") == "workspace volume kept"
    ops = {c["resource"]: c["action"] for c in plan["resources"]}
    assert ops["agent-image"] == "replace" and ops["proxy-image"] == "same", ops
    text = paude.ok("plan", paude.session).stdout
    assert f"Claude Code {OLD} \u2192 {NEW}" in text

    paude.ok("apply", paude.session, "--yes")
    assert NEW in agent(paude, "claude", "--version")
    assert agent(paude, "cat", "/workspace/keep.txt") == "work\n"
    assert agent(paude, "cat", "/home/paude/.claude/history.txt") == "remembered\n"
