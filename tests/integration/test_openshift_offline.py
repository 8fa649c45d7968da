"""OpenShift sessions on a machine without a cluster: clear errors, nothing half-made."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.helpers import BASE_IMAGE, Paude

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi]


def define(paude: Paude) -> None:
    (paude.repo / "paude.yaml").write_text(
        f"version: 1\ndefaults:\n  agent: {{install: none}}\n  image: {{base: {BASE_IMAGE}}}\n"
        f"sessions:\n  {paude.session}:\n    backend: openshift\n"
        "    openshift: {namespace: team-a, context: no-such-context}\n")


def test_plan_without_a_cluster_says_what_to_do(paude: Paude, tmp_path: Path) -> None:
    define(paude)
    paude.extra_env["KUBECONFIG"] = str(tmp_path / "no-kubeconfig")
    result = paude.run("plan", paude.session)
    assert "Traceback" not in result.stderr and "grpc" not in result.stderr
    if result.returncode == 0:
        # pulumi-kubernetes previews without a cluster when it can: then the plan is shown.
        for resource in ("agent", "proxy", "workspace", "policy-default-deny"):
            assert resource in result.stdout
        assert "new session" in result.stdout
    else:
        assert result.returncode == 1
        assert ("no OpenShift / Kubernetes cluster is reachable" in result.stderr
                or "provider plugin is not installed" in result.stderr), result.stderr
        assert "fix:" in result.stderr


def test_create_on_openshift_without_a_cluster_leaves_nothing_behind(
        paude: Paude, tmp_path: Path) -> None:
    define(paude)
    paude.extra_env["KUBECONFIG"] = str(tmp_path / "no-kubeconfig")
    before = (paude.repo / "paude.yaml").read_text()
    result = paude.run("create", "--backend", "openshift", "other")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "grpc" not in result.stderr
    assert "cluster" in result.stderr and "fix:" in result.stderr, result.stderr
    assert (paude.repo / "paude.yaml").read_text() == before
    assert paude.ok("list", "--json").stdout.strip() == "[]"
    stacks = paude.home / "state" / ".pulumi" / "stacks"
    assert not stacks.exists() or not any(stacks.rglob("other.json")), "a stack was left"
