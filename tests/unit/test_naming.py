"""Object names come from paude/naming.py only."""

from __future__ import annotations

import re
from pathlib import Path

from paude import gitsync, naming
from paude.backends import podman as podman_backend
from paude.backends.kubernetes import KubernetesBackend
from paude.stacks.openshift.objects import agent_statefulset, proxy_deployment

ROOT = Path(__file__).resolve().parents[2]


def test_podman_names() -> None:
    names = naming.PodmanNames("demo")
    assert (names.agent, names.proxy, names.gateway, names.workspace, names.internal_network,
            names.egress_network) == (
        "paude-demo-agent", "paude-demo-proxy", "paude-demo-gateway", "paude-demo-workspace",
        "paude-demo-internal", "paude-demo-egress")


def test_cluster_names() -> None:
    names = naming.ClusterNames("demo")
    assert (names.agent, names.agent_pod, names.proxy, names.proxy_config, names.workspace,
            names.credentials, names.gateway, names.gateway_credentials) == (
        "paude-demo-agent", "paude-demo-agent-0", "paude-demo-proxy", "paude-demo-proxy-config",
        "paude-demo-workspace", "paude-demo-credentials", "paude-demo-gateway",
        "paude-demo-gateway-credentials")
    assert names.network_policy("default-deny") == "paude-demo-default-deny"
    assert names.image_stream("agent") == "paude-demo-agent"


def test_git_remote_and_images() -> None:
    assert naming.git_remote("demo") == gitsync.remote_name("demo") == "paude-demo"
    assert naming.git_remote_url("demo") == gitsync.remote_url("demo") == "paude::demo"
    assert naming.image_repository("agent") == "paude-agent"


def test_stacks_and_backends_use_the_same_names() -> None:
    names = naming.ClusterNames("demo")
    spec = agent_statefulset("demo", "img", {}, ["K"], [("file-0", "/x")], "10.0.0.1")
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    assert volumes["workspace"]["persistentVolumeClaim"]["claimName"] == names.workspace
    assert volumes["credentials"]["secret"]["secretName"] == names.credentials
    assert spec["template"]["spec"]["hostAliases"][0]["hostnames"] == [names.proxy]
    proxy = proxy_deployment("demo", "img", "hash")["template"]["spec"]
    assert proxy["volumes"][0]["configMap"]["name"] == names.proxy_config
    backend = KubernetesBackend(tool="kubectl")
    assert names.agent_pod in backend.exec_argv(session="demo", argv=["true"])
    assert podman_backend.agent("demo") == naming.PodmanNames("demo").agent


# `"paude-{session}-..."` and its spellings, outside the naming module.
_COMPUTED = re.compile(r"""f["']paude-\{[^}]*\}""")


def test_no_object_name_is_computed_elsewhere() -> None:
    offenders = []
    for folder in ("paude", "stacks", "policies"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == ROOT / "paude" / "naming.py":
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if _COMPUTED.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
