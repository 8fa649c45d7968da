"""The seed's flags on real podman: `create --platform` (the host's builds; another one is
planned as a rebuild and refused at the build, leaving the session as it was, on a machine
without an emulator), `list --backend`, and --openshift-* on a podman session."""

from __future__ import annotations

import json

import pytest

from paude import arch
from tests.integration.helpers import BASE_IMAGE, Paude, podman

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

HOST = arch.host_platform() or "linux/amd64"
OTHER = "linux/arm64" if HOST == "linux/amd64" else "linux/amd64"


def test_platform_list_backend_and_openshift_flags(paude: Paude) -> None:
    if not arch.unavailable(OTHER) or arch.host_platform() is None:
        pytest.skip(f"this machine can run {OTHER} images: the refusal cannot be shown")
    name, yaml_path = paude.session, paude.repo / "paude.yaml"
    yaml_path.write_text(f"version: 1\ndefaults:\n  agent: {{install: none, command: [bash]}}\n"
                         f"  image: {{base: {BASE_IMAGE}}}\nsessions: {{}}\n")
    paude.ok("create", name, "--platform", HOST)
    assert f"  {name}: {{image: {{platform: {HOST}}}}}\n" in yaml_path.read_text()
    agent = f"paude-{name}-agent"
    image = podman("inspect", "--format", "{{.Image}}", agent).stdout.strip()
    assert podman("image", "inspect", "--format", "{{.Architecture}}", image).stdout.strip() \
        == HOST.split("/")[1]

    # list --backend: only that backend's sessions.
    assert name in paude.ok("list", "--backend", "podman").stdout
    assert "No sessions on openshift" in paude.ok("list", "--backend", "openshift").stdout
    assert json.loads(paude.ok("list", "--openshift-namespace", "team", "--json").stdout) == []

    # --openshift-* on a podman session: refused before anything runs.
    agent_id = podman("inspect", "--format", "{{.Id}}", agent).stdout.strip()
    for command in (["status", name], ["stop", name], ["apply", name, "--yes"]):
        refused = paude.run(*command, "--openshift-namespace", "team")
        assert refused.returncode == 1
        assert f"session {name} runs on podman" in refused.stderr, refused.stderr
    assert podman("inspect", "--format", "{{.State.Running}}", agent).stdout.strip() == "true"

    # Another platform: planned as a rebuild that says why, refused at the build.
    yaml_path.write_text(yaml_path.read_text().replace(HOST, OTHER))
    plan = paude.run("plan", name)
    assert plan.returncode == 0, plan.stderr
    assert "agent image rebuilt" in plan.stdout
    assert f"platform: {HOST} \u2192 {OTHER} (image.platform)" in plan.stdout
    applied = paude.run("apply", name, "--yes")
    assert applied.returncode == 1
    assert "no emulator for it is registered" in applied.stderr, applied.stderr
    assert "nothing was changed" in applied.stderr and "Traceback" not in applied.stderr
    assert podman("inspect", "--format", "{{.Id}}", agent).stdout.strip() == agent_id
    assert podman("inspect", "--format", "{{.State.Running}}", agent).stdout.strip() == "true"
