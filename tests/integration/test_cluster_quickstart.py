"""The seed's OpenShift quick start, command for command, on the test cluster's node:
`create --yolo --backend=openshift` runs real pods (containerd, runc) from images paude
pushed to the loopback registry, `start` attaches through `kubectl exec` in tmux, git
travels over exec, stop/start keep the claim, and delete guards unfetched work.

The namespace is created by the test as a cluster admin would, with the `restricted`
Pod Security Standard enforced: every pod of the session must pass it to run at all."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

import pytest
import yaml

from paude.naming import ClusterNames
from stacks.openshift.objects import AGENT_UID
from tests.integration.cluster import Cluster, kube_bin
from tests.integration.helpers import BASE_IMAGE, Paude
from tests.integration.node import add_volume, apply
from tests.integration.stand_in_agent import SOURCE
from tests.integration.terminal import HostTerminal

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi,
              pytest.mark.requires_k8s_provider, pytest.mark.requires_cluster,
              pytest.mark.requires_node, pytest.mark.slow]


def git(repo: Path, *args: str, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True, env=env)


def project(paude: Paude, node: Cluster, namespace: str) -> None:
    """The user's repository: a commit, and the team's defaults for the cluster."""
    repo = paude.repo
    (repo / "README.md").write_text("# my project\n")
    defaults = {
        "agent": {"install": "none", "command": ["python3", "-c", SOURCE]},
        "image": {"base": BASE_IMAGE},
        "openshift": {"context": "paude-test", "image_registry": f"{node.registry}/paude",
                      "registry_tls_verify": False, "pvc_size": "1Gi"}}
    (repo / "paude.yaml").write_text(yaml.safe_dump({"version": 1, "defaults": defaults}))
    git(repo, "checkout", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-qm", "init")
    apply(node, {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": namespace, "labels": {"pod-security.kubernetes.io/enforce": "restricted",
                                      "pod-security.kubernetes.io/enforce-version": "latest"}}})
    paude.extra_env.update({"KUBECONFIG": str(node.kubeconfig),
                            "PATH": f"{kube_bin()}{os.pathsep}{os.environ['PATH']}"})


def test_openshift_quick_start_on_a_real_node(paude: Paude, node: Cluster,
                                              terminal: HostTerminal, tmp_path: Path) -> None:
    name, namespace = paude.session, f"qs-{secrets.token_hex(3)}"
    names = ClusterNames(name)
    project(paude, node, namespace)
    add_volume(node, tmp_path / "volumes", f"pv-{namespace}", uid=AGENT_UID)
    env = paude.env()

    def agent(*argv: str) -> str:
        result = node.kubectl("-n", namespace, "exec", names.agent_pod, "-c", "agent", "--",
                              *argv)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def pod_names() -> set[str]:
        return {p["metadata"]["name"] for p in node.items("-n", namespace, "pods")}

    # 1. create --yolo: apply waits until the proxy, the gateway and the agent run.
    paude.ok("create", "--yolo", "--backend=openshift", "--openshift-namespace", namespace,
             name)
    pods = node.items("-n", namespace, "pods")
    assert {p["spec"]["nodeName"] for p in pods} == {"paude-test-node"}
    assert all(p["status"]["phase"] == "Running" for p in pods), pods
    claim = node.get("-n", namespace, "pvc", names.workspace)
    assert claim["status"]["phase"] == "Bound"

    # start attaches to the agent in tmux, through kubectl exec.
    first = terminal.run("start", name)
    terminal.wait_for(first, "stand-in agent ready", timeout=120)
    assert "--dangerously-skip-permissions" in terminal.screen(first)

    # 2. remote add --push from a second terminal: git over exec fills the workspace.
    pushed = paude.ok("remote", "add", "--push", name)
    assert f"paude-{name}" in pushed.stdout + pushed.stderr
    assert agent("cat", "/workspace/README.md") == "# my project\n"

    # 3. The agent commits; git pull brings the commit back.
    terminal.type(first, "commit agent.txt hello from the agent", "Enter")
    terminal.wait_for(first, "committed agent.txt")
    git(paude.repo, "pull", "-q", f"paude-{name}", "main", env=env)
    assert (paude.repo / "agent.txt").read_text() == "hello from the agent\n"

    # 4. list shows the session on its backend.
    rows = {r["name"]: r for r in json.loads(paude.ok("list", "--json").stdout)}
    assert rows[name]["status"] == "running" and rows[name]["backend"] == "openshift"

    # Ctrl+b d detaches; the agent keeps running.
    terminal.type(first, "C-b", "d")
    terminal.wait_for(first, "PAUDE-EXITED=0", timeout=30)
    status = json.loads(paude.ok("status", name, "--json").stdout)
    assert status["agent_alive"] is True and status["unfetched_commits"] == 0

    # 5. stop scales the agent to nothing and keeps the claim; start brings it back
    # with the commit and the agent's state.
    paude.ok("stop", name)
    assert names.agent_pod not in pod_names()
    assert node.get("-n", namespace, "pvc", names.workspace)["status"]["phase"] == "Bound"
    assert json.loads(paude.ok("list", "--json").stdout)[0]["status"] == "stopped"
    assert paude.run("plan", name, "--detailed-exitcode").returncode == 0, "stop is not drift"
    second = terminal.run("start", name)
    terminal.wait_for(second, "stand-in agent ready", timeout=120)
    assert "agent: agent.txt" in agent("git", "-C", "/workspace", "log", "--oneline")
    assert "commit agent.txt hello from the agent" in agent(
        "cat", "/home/paude/.claude/history.txt")

    # 6. delete --confirm refuses while an unfetched commit exists...
    terminal.type(second, "commit later.txt not fetched yet", "Enter")
    terminal.wait_for(second, "committed later.txt")
    refused = paude.run("delete", name, "--confirm")
    assert refused.returncode == 1
    assert "main" in refused.stderr and "1 commit" in refused.stderr
    assert f"git pull paude-{name} main" in refused.stderr
    assert names.agent_pod in pod_names()
    assert node.exists("-n", namespace, "pvc", names.workspace)

    # ...and works after a pull, or with --force.
    git(paude.repo, "pull", "-q", f"paude-{name}", "main", env=env)
    terminal.type(second, "commit last.txt discarded on purpose", "Enter")
    terminal.wait_for(second, "committed last.txt")
    assert paude.run("delete", name, "--confirm").returncode == 1
    paude.ok("delete", name, "--confirm", "--force")
    assert not node.exists("-n", namespace, "pvc", names.workspace)
    assert f"paude-{name}" not in git(paude.repo, "remote").stdout
    assert json.loads(paude.ok("list", "--json").stdout) == []
