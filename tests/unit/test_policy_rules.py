"""The built-in policy rules through their check functions, on hand-built podman and
Kubernetes resources and on what paude's real stack programs declare under Pulumi mocks."""

from __future__ import annotations

import base64
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from paude.credentials import AgentIdentity, StagedFile
from paude.fields import WaivableRule
from paude.models import PaudeFile, Session, resolve
from paude.policies import rules
from paude.policies.egress import Egress, check_public_writes
from paude.policies.resources import Resource, Violation, selects
from paude.policies.rules import (
    BUILTIN,
    BY_ID,
    Check,
    check_agent_egress,
    check_allowlist,
    check_base_pinned,
    check_claim_size,
    check_privileges,
    check_workspace_protected,
    check_yolo_unrestricted,
    egress_of,
    pinned,
    proxy_configs,
    quantity_bytes,
)
from paude.stacks.openshift import objects
from paude.stacks.openshift.program import make_program as k8s_program
from paude.stacks.podman.program import make_program as podman_program
from paude.stacks.podman.program import squid_conf
from tests.unit.pulumi_mocks import RecordingMocks, Run, run_pulumi

DYNAMIC = "pulumi-python:dynamic/podman:"
CONTAINER, NETWORK, VOLUME, IMAGE = (DYNAMIC + k for k in ("Container", "Network", "Volume",
                                                           "Image"))
STATEFULSET = "kubernetes:apps/v1:StatefulSet"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
YOLO = "claude --dangerously-skip-permissions"
WAIVER = "reviewed with the security team for the migration spike, SEC-123"


def res(type_: str, name: str, props: Mapping[str, Any] | None = None, *,
        protected: bool = False) -> Resource:
    return Resource(type_, name, dict(props or {}), protected,
                    f"urn:pulumi:demo::paude::{type_}::{name}")


def found(check: Check, resources: Iterable[Resource],
          params: Mapping[str, Any] | None = None) -> list[tuple[str | None, str]]:
    """Each violation as (the logical name of the resource it points at, its detail)."""
    out = []
    for v in check(list(resources), params or {}):
        assert isinstance(v, Violation)
        out.append((v.resource.name if v.resource is not None else None, v.detail))
    return out


def session_of(spec: dict[str, Any]) -> Session:
    return resolve(PaudeFile.model_validate({"sessions": {"demo": spec}}), "demo")


# ---------------------------------------------------------------- podman shapes


def network(name: str, *, internal: bool, dns: bool) -> Resource:
    return res(NETWORK, name, {"name": f"paude-demo-{name}", "internal": internal, "dns": dns})


INTERNAL = network("internal", internal=True, dns=False)
EGRESS = network("egress", internal=False, dns=True)


def podman_agent(**props: Any) -> Resource:
    base: dict[str, Any] = {"name": "paude-demo-agent", "networks": ["paude-demo-internal"],
                            "labels": {"paude.role": "agent", "paude.session": "demo"},
                            "env": {"PAUDE_AGENT_CMD": "claude"},
                            "volumes": ["paude-demo-workspace:/paude"]}
    base.update(props)
    return res(CONTAINER, "agent", {k: v for k, v in base.items() if v is not None})


def podman_proxy(conf: str) -> Resource:
    return res(CONTAINER, "proxy", {
        "name": "paude-demo-proxy", "labels": {"paude.role": "proxy"},
        "networks": ["paude-demo-internal:ip=10.89.3.254", "paude-demo-egress"],
        "env": {"PAUDE_SQUID_CONF_B64": base64.b64encode(conf.encode()).decode()}})


def conf_for(allowed: list[Any]) -> str:
    return squid_conf(session_of({"allowed_domains": allowed}))


# ---------------------------------------------------------------- Kubernetes shapes

AGENT_LABELS = {"paude.io/session": "demo", "paude.io/role": "agent"}
PROXY_PEER = {"podSelector": {"matchLabels": {"paude.io/session": "demo",
                                              "paude.io/role": "proxy"}}}
PROXY_PORTS = [{"protocol": "TCP", "port": 3128}]


def k8s_agent(env: Mapping[str, str] | None = None, *, kind: str = STATEFULSET,
              annotations: Mapping[str, str] | None = None, **pod: Any) -> Resource:
    spec = {"containers": [{"name": "agent", "image": "agent:1",
                            "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
                            "securityContext": objects.CONTAINER_SECURITY}], **pod}
    meta: dict[str, Any] = {"name": "paude-demo-agent", "labels": AGENT_LABELS}
    if annotations:
        meta["annotations"] = dict(annotations)
    return res(kind, "agent", {"metadata": meta, "spec": {
        "template": {"metadata": {"labels": AGENT_LABELS}, "spec": spec}}})


def netpol(name: str, spec: Mapping[str, Any]) -> Resource:
    return res(NETPOL, name, {"metadata": {"name": name}, "spec": dict(spec)})


def agent_egress(*egress: Mapping[str, Any]) -> Resource:
    return netpol("policy-agent-egress", {"podSelector": {"matchLabels": AGENT_LABELS},
                                          "policyTypes": ["Egress"], "egress": list(egress)})


def real_policies() -> list[Resource]:
    return [netpol(f"policy-{k}", v) for k, v in objects.network_policies("demo").items()]


def config_map(conf: str) -> Resource:
    return res(CONFIG_MAP, "proxy-config", {"data": {"squid.conf": conf}})


def claim(size: str | None, *, protected: bool = True) -> Resource:
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"]}
    if size is not None:
        spec["resources"] = {"requests": {"storage": size}}
    return res(PVC, "workspace", {"spec": spec}, protected=protected)


# ================================================================ agent-no-direct-egress


def test_podman_agent_on_the_internal_network_passes() -> None:
    assert found(check_agent_egress, [INTERNAL, EGRESS, podman_agent()]) == []


def test_podman_network_options_after_the_name_are_ignored() -> None:
    agent = podman_agent(networks=["paude-demo-internal:ip=10.89.3.7,alias=a"])
    assert found(check_agent_egress, [INTERNAL, agent]) == []


def test_podman_agent_on_a_non_internal_network() -> None:
    agent = podman_agent(networks=["paude-demo-egress"])
    [(name, detail)] = found(check_agent_egress, [INTERNAL, EGRESS, agent])
    assert name == "agent"
    assert "paude-demo-egress" in detail and "not internal" in detail


def test_podman_agent_on_both_networks_is_flagged_once_for_the_open_one() -> None:
    agent = podman_agent(networks=["paude-demo-internal", "paude-demo-egress"])
    [(name, detail)] = found(check_agent_egress, [INTERNAL, EGRESS, agent])
    assert name == "agent" and "paude-demo-egress" in detail and "not internal" in detail


def test_podman_agent_on_an_internal_network_with_dns() -> None:
    resolving = network("internal", internal=True, dns=True)
    [(name, detail)] = found(check_agent_egress, [resolving, podman_agent()])
    assert name == "agent" and "DNS enabled" in detail and "paude-demo-internal" in detail


def test_podman_agent_on_an_undeclared_network() -> None:
    agent = podman_agent(networks=["podman"])
    [(name, detail)] = found(check_agent_egress, [INTERNAL, agent])
    assert name == "agent" and "network podman" in detail and "does not declare" in detail


def test_podman_agent_with_host_network_mode() -> None:
    agent = podman_agent(networks=None, network_mode="host")
    [(name, detail)] = found(check_agent_egress, [INTERNAL, agent])
    assert name == "agent" and "network mode 'host'" in detail


def test_podman_agent_with_no_networks() -> None:
    for agent in (podman_agent(networks=None), podman_agent(networks=[])):
        [(name, detail)] = found(check_agent_egress, [INTERNAL, agent])
        assert name == "agent" and "declares no network" in detail


def test_podman_rule_reads_only_the_agent() -> None:
    # The proxy must be on the egress network; only role=agent containers are held to it.
    assert found(check_agent_egress, [INTERNAL, EGRESS, podman_proxy(conf_for(["default"]))]) \
        == []


def test_k8s_agent_under_the_real_network_policies_passes() -> None:
    assert found(check_agent_egress, [k8s_agent(), *real_policies()]) == []
    assert found(check_agent_egress, [k8s_agent(kind=DEPLOYMENT), *real_policies()]) == []


def test_k8s_agent_without_an_egress_policy() -> None:
    ingress_only = netpol("policy-ingress", {"podSelector": {"matchLabels": AGENT_LABELS},
                                             "policyTypes": ["Ingress"]})
    for resources in ([k8s_agent()], [k8s_agent(), ingress_only]):
        [(name, detail)] = found(check_agent_egress, resources)
        assert name == "agent" and "no NetworkPolicy restricts" in detail


def test_k8s_egress_policy_for_another_session_does_not_govern_the_agent() -> None:
    other = netpol("other", {"podSelector": {"matchLabels": {"paude.io/session": "other"}},
                             "policyTypes": ["Egress"]})
    [(name, detail)] = found(check_agent_egress, [k8s_agent(), other])
    assert name == "agent" and "no NetworkPolicy" in detail


def test_k8s_deny_all_egress_passes() -> None:
    deny = netpol("deny", {"podSelector": {}, "policyTypes": ["Egress"]})
    assert found(check_agent_egress, [k8s_agent(), deny]) == []


def test_k8s_egress_rule_without_to() -> None:
    [(name, detail)] = found(check_agent_egress,
                             [k8s_agent(), agent_egress({"ports": PROXY_PORTS})])
    assert name == "policy-agent-egress" and "every destination" in detail


@pytest.mark.parametrize("peer", [
    {"ipBlock": {"cidr": "0.0.0.0/0"}},
    {"namespaceSelector": {}},
    {**PROXY_PEER, "namespaceSelector": {"matchLabels": {"team": "a"}}},
    {"podSelector": {"matchLabels": {"paude.io/session": "other", "paude.io/role": "proxy"}}},
    {"podSelector": {"matchLabels": {"paude.io/session": "demo", "paude.io/role": "agent"}}},
    {"podSelector": {}},
], ids=["ipBlock", "namespaceSelector", "namespace-and-pod", "other-session", "not-proxy",
        "every-pod"])
def test_k8s_egress_peer_other_than_the_proxy(peer: dict[str, Any]) -> None:
    policy = agent_egress({"to": [peer], "ports": PROXY_PORTS})
    [(name, detail)] = found(check_agent_egress, [k8s_agent(), policy])
    assert name == "policy-agent-egress" and "other than its own proxy" in detail


@pytest.mark.parametrize("ports", [
    [{"protocol": "TCP", "port": 443}],
    [{"protocol": "UDP", "port": 3128}],
    [*PROXY_PORTS, {"protocol": "TCP", "port": 22}],
    [{"protocol": "TCP", "port": "proxy"}],
    [],
], ids=["443", "udp", "extra-port", "named-port", "no-ports"])
def test_k8s_egress_rule_with_the_wrong_port(ports: list[dict[str, Any]]) -> None:
    policy = agent_egress({"to": [PROXY_PEER], "ports": ports})
    [(name, detail)] = found(check_agent_egress, [k8s_agent(), policy])
    assert name == "policy-agent-egress" and "ports other than TCP 3128" in detail


def test_k8s_agent_may_reach_its_gateway_on_its_port_only() -> None:
    gateway = {"podSelector": {"matchLabels": {"paude.io/session": "demo",
                                               "paude.io/role": "gateway"}}}
    ok = agent_egress({"to": [gateway], "ports": [{"protocol": "TCP", "port": 8080}]})
    assert found(check_agent_egress, [k8s_agent(), ok]) == []
    wrong = agent_egress({"to": [gateway], "ports": [{"protocol": "TCP", "port": 3128}]})
    [(name, detail)] = found(check_agent_egress, [k8s_agent(), wrong])
    assert name == "policy-agent-egress" and "ports other than TCP 8080" in detail


def test_k8s_proxy_port_without_protocol_means_tcp() -> None:
    policy = agent_egress({"to": [PROXY_PEER], "ports": [{"port": 3128}]})
    assert found(check_agent_egress, [k8s_agent(), policy]) == []


def test_k8s_agent_on_the_host_network() -> None:
    [(name, detail)] = found(check_agent_egress,
                             [k8s_agent(hostNetwork=True), *real_policies()])
    assert name == "agent" and "hostNetwork" in detail


def test_k8s_policy_types_are_inferred_as_kubernetes_does() -> None:
    # Without policyTypes, an `egress` section makes a policy govern egress: this one opens
    # the agent to everything, whatever the session's own policies say.
    open_all = netpol("open", {"podSelector": {}, "egress": [{}]})
    assert [(n, "every destination" in d or "ports other than" in d) for n, d in
            found(check_agent_egress, [k8s_agent(), *real_policies(), open_all])] \
        == [("open", True), ("open", True)]
    ingress_only = netpol("ingress", {"podSelector": {}, "ingress": [{}]})
    [(name, detail)] = found(check_agent_egress, [k8s_agent(), ingress_only])
    assert name == "agent" and "no NetworkPolicy restricts" in detail


def test_k8s_egress_port_range_is_refused() -> None:
    wide = agent_egress({"to": [PROXY_PEER],
                         "ports": [{"protocol": "TCP", "port": 3128, "endPort": 65535}]})
    [(name, detail)] = found(check_agent_egress, [k8s_agent(), wide])
    assert name == "policy-agent-egress" and "ports other than TCP 3128" in detail
    single = agent_egress({"to": [PROXY_PEER],
                           "ports": [{"protocol": "TCP", "port": 3128, "endPort": 3128}]})
    assert found(check_agent_egress, [k8s_agent(), single]) == []


@pytest.mark.parametrize(("selector", "chosen"), [
    ({}, True),
    ({"matchLabels": AGENT_LABELS}, True),
    ({"matchLabels": {"paude.io/role": "proxy"}}, False),
    ({"matchExpressions": [{"key": "paude.io/role", "operator": "In",
                            "values": ["agent", "x"]}]}, True),
    ({"matchExpressions": [{"key": "paude.io/role", "operator": "NotIn",
                            "values": ["agent"]}]}, False),
    ({"matchExpressions": [{"key": "paude.io/session", "operator": "Exists"}]}, True),
    ({"matchExpressions": [{"key": "team", "operator": "Exists"}]}, False),
    ({"matchExpressions": [{"key": "team", "operator": "DoesNotExist"}]}, True),
    ({"matchExpressions": [{"key": "paude.io/role", "operator": "DoesNotExist"}]}, False),
])
def test_label_selectors(selector: dict[str, Any], chosen: bool) -> None:
    assert selects(selector, AGENT_LABELS) is chosen


# ================================================================ yolo-unrestricted-egress

UNRESTRICTED = conf_for(["all"])


def test_unrestricted_conf_is_recognised() -> None:
    assert egress_of(UNRESTRICTED).unrestricted
    assert not egress_of(conf_for(["default"])).unrestricted


@pytest.mark.parametrize("env", [
    {"PAUDE_AGENT_CMD": YOLO},
    {"PAUDE_AGENT_CMD": "claude", "PAUDE_AGENT_ONCE_CMD": f"{YOLO} -p 'fix the tests'"},
], ids=["interactive", "once"])
def test_podman_yolo_with_unrestricted_egress(env: dict[str, str]) -> None:
    resources = [podman_proxy(UNRESTRICTED), podman_agent(env=env)]
    [(name, detail)] = found(check_yolo_unrestricted, resources)
    assert name == "agent" and "--yolo" in detail and "allowed_domains: all" in detail


def test_podman_yolo_with_filtered_egress_passes() -> None:
    resources = [podman_proxy(conf_for(["default", "github"])),
                 podman_agent(env={"PAUDE_AGENT_CMD": YOLO})]
    assert found(check_yolo_unrestricted, resources) == []


def test_podman_unrestricted_egress_without_yolo_passes() -> None:
    lookalike = {"PAUDE_AGENT_CMD": "claude --dangerously-skip-permissions-check"}
    for env in ({"PAUDE_AGENT_CMD": "claude"}, lookalike):
        assert found(check_yolo_unrestricted, [podman_proxy(UNRESTRICTED),
                                               podman_agent(env=env)]) == []


def test_podman_waiver_with_a_reason_silences_the_rule() -> None:
    def agent(waivers: dict[str, str]) -> Resource:
        return podman_agent(env={"PAUDE_AGENT_CMD": YOLO}, waivers=waivers)

    proxy = podman_proxy(UNRESTRICTED)
    assert found(check_yolo_unrestricted,
                 [proxy, agent({"yolo-unrestricted-egress": WAIVER})]) == []
    for not_a_waiver in ({"yolo-unrestricted-egress": "   "}, {"other-rule": WAIVER}, {}):
        assert [n for n, _ in found(check_yolo_unrestricted,
                                    [proxy, agent(not_a_waiver)])] == ["agent"]


def test_k8s_yolo_with_unrestricted_egress() -> None:
    agent = k8s_agent({"PAUDE_AGENT_CMD": YOLO})
    [(name, detail)] = found(check_yolo_unrestricted, [config_map(UNRESTRICTED), agent])
    assert name == "agent" and "--yolo" in detail
    once = k8s_agent({"PAUDE_AGENT_CMD": "claude", "PAUDE_AGENT_ONCE_CMD": f"{YOLO} -p x"})
    assert [n for n, _ in found(check_yolo_unrestricted, [config_map(UNRESTRICTED), once])] \
        == ["agent"]
    filtered = config_map(conf_for(["default"]))
    assert found(check_yolo_unrestricted, [filtered, agent]) == []


def test_k8s_waiver_annotation_silences_the_rule() -> None:
    def agent(annotations: dict[str, str]) -> Resource:
        return k8s_agent({"PAUDE_AGENT_CMD": YOLO}, annotations=annotations)

    waived = agent({"paude.io/waiver-yolo-unrestricted-egress": WAIVER})
    assert found(check_yolo_unrestricted, [config_map(UNRESTRICTED), waived]) == []
    for not_a_waiver in ({"paude.io/waiver-other-rule": WAIVER},
                         {"paude.io/waiver-yolo-unrestricted-egress": ""}):
        assert [n for n, _ in found(check_yolo_unrestricted,
                                    [config_map(UNRESTRICTED), agent(not_a_waiver)])] \
            == ["agent"]


def test_proxy_configs_come_from_proxies_and_config_maps_only() -> None:
    not_proxy = res(CONTAINER, "other", {
        "labels": {"paude.role": "agent"},
        "env": {"PAUDE_SQUID_CONF_B64": base64.b64encode(b"http_access allow all").decode()}})
    garbled = res(CONTAINER, "proxy", {"labels": {"paude.role": "proxy"},
                                       "env": {"PAUDE_SQUID_CONF_B64": "%%%not base64"}})
    no_conf = res(CONFIG_MAP, "other-config", {"data": {"x": "y"}})
    found_confs = proxy_configs([not_proxy, garbled, no_conf, config_map("cache deny all")])
    assert [(r.name, conf) for r, conf in found_confs] == [("proxy", ""),
                                                           ("proxy-config", "cache deny all")]


# ================================================================ no-privileged-or-host-write


def test_podman_clean_containers_pass() -> None:
    adc = "/s/adc.json:/home/paude/.config/gcloud/application_default_credentials.json:ro"
    agent = podman_agent(volumes=["paude-demo-workspace:/paude", adc, "/s/x:/x:z,ro"],
                         cap_drop=["ALL"])
    assert found(check_privileges, [agent, podman_proxy("")]) == []


@pytest.mark.parametrize(("props", "words"), [
    ({"privileged": True}, "the container is privileged"),
    ({"cap_add": ["NET_ADMIN", "SYS_ADMIN"]}, "adds capabilities: NET_ADMIN, SYS_ADMIN"),
    ({"volumes": ["/home/me:/home/paude"]}, "host path /home/me writable"),
    ({"volumes": ["/var/run/podman.sock:/run/podman.sock:rw"]},
     "host path /var/run/podman.sock writable"),
    ({"volumes": ["/etc:/host-etc:z"]}, "host path /etc writable"),
], ids=["privileged", "cap_add", "writable", "rw", "relabel-only"])
def test_podman_privileges(props: dict[str, Any], words: str) -> None:
    # Any container, not only the agent: the proxy is checked too.
    proxy = res(CONTAINER, "proxy", {"labels": {"paude.role": "proxy"}, **props})
    [(name, detail)] = found(check_privileges, [proxy])
    assert name == "proxy" and words in detail


def test_podman_every_problem_is_reported() -> None:
    agent = podman_agent(privileged=True, cap_add=["SYS_ADMIN"],
                         volumes=["/a:/a", "/b:/b:ro", "/c:/c"])
    details = [d for _, d in found(check_privileges, [agent])]
    assert len(details) == 4
    assert sum("host path" in d for d in details) == 2
    assert any("/a writable" in d for d in details) and any("/c writable" in d for d in details)


@pytest.mark.parametrize("source", ["./secrets", "../up", "~/.ssh"])
def test_podman_relative_host_path_is_a_host_path(source: str) -> None:
    # podman bind-mounts any source starting with '.' or '/' (docs: podman-run --volume).
    assert found(check_privileges, [podman_agent(volumes=[f"{source}:/s"])]) == [
        ("agent", f"the container mounts the host path {source} writable")]
    assert found(check_privileges, [podman_agent(volumes=[f"{source}:/s:ro"])]) == []


def test_podman_anonymous_volume_is_not_a_host_path() -> None:
    # `-v /data` names only a container path: podman creates an anonymous volume there.
    assert found(check_privileges, [podman_agent(volumes=["/data"])]) == []


def test_k8s_locked_down_pods_pass() -> None:
    agent = objects.agent_statefulset("demo", "agent:1", {}, [], [("file-0", "/x")], "1.2.3.4")
    proxy = objects.proxy_deployment("demo", "proxy:1", "abc")
    assert found(check_privileges, [res(STATEFULSET, "agent", {"spec": agent}),
                                    res(DEPLOYMENT, "proxy", {"spec": proxy})]) == []


@pytest.mark.parametrize("key", ["hostNetwork", "hostPID", "hostIPC"])
def test_k8s_pods_sharing_node_namespaces(key: str) -> None:
    [(name, detail)] = found(check_privileges, [k8s_agent(**{key: True})])
    assert name == "agent" and f"({key})" in detail


def pod_with(security: Mapping[str, Any] | None = None, *, kind: str = STATEFULSET,
             init: bool = False, mount: Mapping[str, Any] | None = None,
             volumes: list[dict[str, Any]] | None = None) -> Resource:
    container: dict[str, Any] = {"name": "tool", "securityContext": dict(security or {})}
    if mount is not None:
        container["volumeMounts"] = [dict(mount)]
    spec = {"initContainers" if init else "containers": [container], "volumes": volumes or []}
    return res(kind, "workload", {"spec": {"template": {"spec": spec}}})


@pytest.mark.parametrize(("security", "words"), [
    ({"privileged": True}, "container tool is privileged"),
    ({"capabilities": {"add": ["NET_RAW"], "drop": ["ALL"]}}, "adds capabilities: NET_RAW"),
    ({"allowPrivilegeEscalation": True}, "allows privilege escalation"),
])
def test_k8s_container_privileges(security: dict[str, Any], words: str) -> None:
    for workload in (pod_with(security), pod_with(security, kind=DEPLOYMENT),
                     pod_with(security, init=True)):
        [(name, detail)] = found(check_privileges, [workload])
        assert name == "workload" and words in detail


def test_k8s_host_path_mounts() -> None:
    host = [{"name": "host", "hostPath": {"path": "/var/lib"}}]
    writable = pod_with(mount={"name": "host", "mountPath": "/h"}, volumes=host)
    [(name, detail)] = found(check_privileges, [writable])
    assert name == "workload" and "mounts a host path writable (/h)" in detail
    read_only = pod_with(mount={"name": "host", "mountPath": "/h", "readOnly": True},
                         volumes=host)
    unmounted = pod_with(volumes=host)
    claim_mount = pod_with(mount={"name": "ws", "mountPath": "/paude"},
                           volumes=[{"name": "ws", "persistentVolumeClaim": {"claimName": "c"}}])
    assert found(check_privileges, [read_only, unmounted, claim_mount]) == []


def test_k8s_privileges_ignore_other_kinds() -> None:
    # A ConfigMap or Service never runs anything, whatever its body looks like.
    odd = res(CONFIG_MAP, "cm", {"spec": {"template": {"spec": {"hostNetwork": True}}}})
    assert found(check_privileges, [odd]) == []


# ================================================================ workspace-protected


def test_protected_workspaces_pass() -> None:
    resources = [res(VOLUME, "workspace", {"name": "w"}, protected=True), claim("10Gi"),
                 podman_agent()]  # other resources need no protection
    assert found(check_workspace_protected, resources) == []


@pytest.mark.parametrize("workspace", [res(VOLUME, "workspace", {"name": "w"}),
                                       claim("10Gi", protected=False)], ids=["volume", "pvc"])
def test_unprotected_workspace(workspace: Resource) -> None:
    [(name, detail)] = found(check_workspace_protected, [workspace, podman_agent()])
    assert name == "workspace" and "not protected" in detail


# ================================================================ base-image-pinned


@pytest.mark.parametrize(("reference", "ok"), [
    ("debian:bookworm", True),
    ("docker.io/library/debian:bookworm-slim", True),
    ("debian", False),
    ("debian:latest", False),
    ("registry:5000/x", False),
    ("registry:5000/x:1", True),
    ("registry:5000/team/x:latest", False),
    ("debian@sha256:" + "a" * 64, True),
    ("debian:latest@sha256:" + "a" * 64, True),
])
def test_pinned(reference: str, ok: bool) -> None:
    assert pinned(reference) is ok


def test_base_pinned_names_each_floating_base() -> None:
    image = res(IMAGE, "agent-image", {"base_images": ["debian:bookworm", "node", "x:latest"]})
    assert found(check_base_pinned, [image, res(IMAGE, "proxy-image", {})]) == [
        ("agent-image", "base image node has no pinned tag or digest"),
        ("agent-image", "base image x:latest has no pinned tag or digest")]
    assert found(check_base_pinned, [res(IMAGE, "i", {"base_images": ["debian:13"]})]) == []


# ================================================================ pvc-size-limit


@pytest.mark.parametrize(("text", "size"), [
    ("10Gi", 10 * 1024**3),
    ("10G", 10 * 1000**3),
    ("500Mi", 500 * 1024**2),
    ("2k", 2000),
    ("1.5Ti", 1.5 * 1024**4),
    ("0.5Gi", 512 * 1024**2),
    ("1024", 1024),
    ("1Ei", 1024**6),
    ("2E", 2 * 1000**6),
    (" 1Ki ", 1024),
])
def test_quantity_bytes(text: str, size: float) -> None:
    assert quantity_bytes(text) == size


@pytest.mark.parametrize("text", ["", "Gi", "10GB", "10gi", "10 Gi", "-1Gi", "1e3", "ten",
                                  "1.Gi", "10Ki5"])
def test_quantity_bytes_refuses_what_is_not_a_quantity(text: str) -> None:
    with pytest.raises(ValueError, match="not a storage quantity"):
        quantity_bytes(text)


def test_claim_size_default_limit() -> None:
    assert found(check_claim_size, [claim("100Gi")], BY_ID["pvc-size-limit"].params) == []
    assert found(check_claim_size, [claim("101G")]) == []  # 101 GB < 100 GiB
    [(name, detail)] = found(check_claim_size, [claim("200Gi")])
    assert name == "workspace" and "asks for 200Gi" in detail and "limit 100Gi" in detail


def test_claim_size_custom_limit() -> None:
    [(name, detail)] = found(check_claim_size, [claim("60Gi")], {"max_size": "50Gi"})
    assert name == "workspace" and "asks for 60Gi" in detail and "limit 50Gi" in detail
    assert found(check_claim_size, [claim("200Gi")], {"max_size": "1Ti"}) == []


def test_claim_without_a_size_passes_and_an_unreadable_size_is_reported() -> None:
    assert found(check_claim_size, [claim(None)]) == []
    [(name, detail)] = found(check_claim_size, [claim("lots")])
    assert name == "workspace" and "'lots' cannot be checked" in detail and "100Gi" in detail


def test_every_pvc_size_paude_accepts_is_checked() -> None:
    # paude.fields accepts E and Ei: such a claim must not slip past the limit unread.
    for size in ("2Ei", "3E"):
        session = resolve(PaudeFile.model_validate({"sessions": {"demo": {
            "backend": "openshift", "openshift": {"pvc_size": size}}}}), "demo")
        [(name, detail)] = found(check_claim_size, [claim(session.openshift.pvc_size)])
        assert name == "workspace" and f"asks for {size}" in detail


# ================================================================ allowlist-wider-than-default


def test_default_or_narrower_allowlist_passes() -> None:
    for allowed in (["default"], ["pypi"], ["vertexai"]):
        assert found(check_allowlist, [podman_proxy(conf_for(allowed))]) == []


def test_widened_allowlist_lists_the_additions_sorted() -> None:
    conf = conf_for(["default", "example.org", "github"])
    expected = ("the allowlist is wider than the default; additions: .githubusercontent.com, "
                "api.github.com, codeload.github.com, example.org, github.com")
    assert found(check_allowlist, [podman_proxy(conf)]) == [("proxy", expected)]
    assert found(check_allowlist, [config_map(conf)]) == [("proxy-config", expected)]


def test_extra_patterns_are_listed_after_names() -> None:
    conf = (conf_for(["default"])
            + "acl paude_allowed dstdomain -n zz.example\n"
            + "acl paude_allowed_re dstdom_regex -n -i ^b\\.example$ ^a\\.example$\n")
    [(_, detail)] = found(check_allowlist, [config_map(conf)])
    assert detail.endswith("additions: zz.example, ~^a\\.example$, ~^b\\.example$")


def test_unrestricted_allowlist() -> None:
    assert found(check_allowlist, [podman_proxy(UNRESTRICTED), config_map(UNRESTRICTED)]) == [
        ("proxy", "the proxy allows every destination (allowed_domains: all)"),
        ("proxy-config", "the proxy allows every destination (allowed_domains: all)")]


def test_egress_of_parses_the_acls() -> None:
    conf = "\n".join([
        "acl paude_allowed dstdomain -n a.example .b.example",
        "acl paude_allowed dstdomain -n c.example",
        "acl paude_allowed_re dstdom_regex -n -i ^x-[a-z]+\\.example$",
        "acl other dstdomain d.example",
        "# http_access allow all",
        "http_access allow paude_allowed",
    ])
    egress = egress_of(conf)
    assert egress.names == {"a.example", ".b.example", "c.example"}
    assert egress.patterns == {"^x-[a-z]+\\.example$"}
    assert not egress.unrestricted
    assert egress_of("  http_access   allow all  \n").unrestricted
    assert egress_of("") == Egress(False, frozenset(), frozenset())


def test_egress_of_reads_rules() -> None:
    egress = egress_of(conf_for(["default", "github", "example.org",
                                 {"host": "gitlab.com", "methods": ["GET"]},
                                 {"host": "api.example.com", "methods": ["GET", "PUT"],
                                  "paths": ["/v1/"]}]))
    assert {"github.com", ".githubusercontent.com", "gitlab.com", "api.example.com",
            "example.org", "pypi.org"} <= egress.names
    # github's POSTs only fetch (git-upload-pack); gitlab.com is GET-only.
    assert egress.writable == {"example.org", "api.example.com"}


@pytest.mark.parametrize(("entries", "flagged"), [
    (["default", "github.com"], "github.com"),
    (["default", {"host": "registry.npmjs.org", "methods": ["GET", "PUT"]}],
     "registry.npmjs.org"),
    (["default", ".gitlab.com"], ".gitlab.com"),
])
def test_public_host_writes_are_named(entries: list[Any], flagged: str) -> None:
    [(_, detail)] = found(check_public_writes, [podman_proxy(conf_for(entries))])
    assert detail.endswith(f"hosts: {flagged}")
    # Control: the same hosts read-only pass.
    assert found(check_public_writes, [podman_proxy(conf_for(["default", "github"]))]) == []


# ================================================================ the rule table


def test_waivable_rule_literal_lists_exactly_the_waivable_rules() -> None:
    assert set(typing.get_args(WaivableRule)) == {r.id for r in BUILTIN if r.waivable}


def test_rule_table() -> None:
    assert len(BY_ID) == len(BUILTIN)
    assert [r.id for r in BUILTIN if r.level == "mandatory"] == [
        "agent-no-direct-egress", "yolo-unrestricted-egress", "no-privileged-or-host-write",
        "workspace-protected", "builds-sandboxed"]
    for rule in BUILTIN:
        assert rule.description.endswith(".") and rule.fix and not rule.fix.endswith(".")


def image(tag: str, *, sandboxed: bool = True, allow: list[str] | None = None) -> Resource:
    props: dict[str, Any] = {"tag": tag}
    if sandboxed:
        props.update(build_proxy_image="localhost/paude-proxy:1", build_squid_conf="x")
    if allow is not None:
        props["build_allowlist"] = allow
    return res("pulumi-python:dynamic/podman:Image", "agent-image", props)


# One violating and one passing stack per rule, run through the table, so a new rule
# cannot be added without an example here.
EXAMPLES: dict[str, tuple[list[Resource], list[Resource]]] = {
    "agent-no-direct-egress": ([EGRESS, podman_agent(networks=["paude-demo-egress"])],
                               [INTERNAL, podman_agent()]),
    "yolo-unrestricted-egress": ([podman_proxy(UNRESTRICTED),
                                  podman_agent(env={"PAUDE_AGENT_CMD": YOLO})],
                                 [podman_proxy(conf_for(["default"])),
                                  podman_agent(env={"PAUDE_AGENT_CMD": YOLO})]),
    "no-privileged-or-host-write": ([podman_agent(privileged=True)], [podman_agent()]),
    "workspace-protected": ([claim("1Gi", protected=False)], [claim("1Gi")]),
    "base-image-pinned": ([res(IMAGE, "i", {"base_images": ["debian"]})],
                          [res(IMAGE, "i", {"base_images": ["debian:13"]})]),
    "pvc-size-limit": ([claim("1Pi")], [claim("1Gi")]),
    "allowlist-wider-than-default": ([podman_proxy(conf_for(["github"]))],
                                     [podman_proxy(conf_for(["default"]))]),
    "public-host-writes": ([podman_proxy(conf_for(["github.com", "pypi"]))],
                           [podman_proxy(conf_for(["github", "pypi", "example.org"]))]),
    "builds-sandboxed": ([image("localhost/paude-agent:1", sandboxed=False)],
                         [image("localhost/paude-agent:1"),
                          image("localhost/paude-proxy:1", sandboxed=False)]),
    "build-allowlist-wider-than-default": (
        [image("localhost/paude-agent:1", allow=["pypi.org", "github.com"])],
        [image("localhost/paude-agent:1", allow=["pypi.org", "deb.debian.org"])]),
    "resource-limits": (
        [podman_agent(limits={"memory": 2**32, "cpus": "2", "pids": None})],
        [podman_agent(limits={"memory": 2**32, "cpus": "2", "pids": 4096})]),
}


@pytest.mark.parametrize("backend", ["podman", "openshift"])
def test_unlimited_resources_are_an_advisory_finding(backend: str) -> None:
    rule = BY_ID["resource-limits"]
    assert rule.level == "advisory"
    unlimited = program_resources(backend, {"resources": {"memory": "unlimited"}})
    assert [d for _, d in found(rule.check, unlimited)] == [
        "container paude-demo-agent has no memory limit" if backend == "podman"
        else "container agent has no memory limit"]
    raised = program_resources(backend, {"resources": {"memory": "64Gi", "pids": 100000}})
    assert found(rule.check, raised) == []  # control: a larger limit is still a limit


def test_a_real_stack_s_builds_are_sandboxed() -> None:
    # The program's own images: the agent's is sandboxed, the proxy's is paude's own.
    run = run_pulumi(podman_program(session_of({}), "/repo"), RecordingMocks())
    images = [res("pulumi-python:dynamic/podman:Image", name, run.inputs(name))
              for name in ("agent-image", "proxy-image")]
    assert list(rules.check_builds_sandboxed(images, {})) == []
    assert list(rules.check_build_allowlist(images, {})) == []


def test_every_rule_has_an_example() -> None:
    assert set(EXAMPLES) == {r.id for r in BUILTIN if not r.host}


def test_host_rules_never_report_in_the_pack() -> None:
    """definition-changed-by-session is judged by paude on the host (it needs git history);
    in the pack its check sees resources only and must stay silent on any of them."""
    host = [r for r in BUILTIN if r.host]
    assert [r.id for r in host] == ["definition-changed-by-session"]
    assert host[0].level == "advisory"
    every = [res for bad, good in EXAMPLES.values() for res in (*bad, *good)]
    assert found(host[0].check, every, host[0].params) == []


@pytest.mark.parametrize("rule_id", sorted(EXAMPLES))
def test_rule_examples(rule_id: str) -> None:
    rule = BY_ID[rule_id]
    bad, good = EXAMPLES[rule_id]
    assert len(found(rule.check, bad, rule.params)) == 1
    assert found(rule.check, good, rule.params) == []


# ================================================================ the real stack programs

MANDATORY = [r for r in BUILTIN if r.level == "mandatory"]
EXTRA = ["default", "github"]
EXTRA_ADDITIONS = (".githubusercontent.com, api.github.com, codeload.github.com, github.com")
YOLO_ALL: dict[str, Any] = {"yolo": True, "allowed_domains": ["all"]}
WAIVED = {**YOLO_ALL, "waivers": {"yolo-unrestricted-egress": WAIVER}}
_RUNS: dict[str, Run] = {}


def program_resources(backend: str, spec: dict[str, Any],
                      identity: AgentIdentity | None = None) -> list[Resource]:
    """What a real stack program registers, as the policy pack sees it. Protection is an
    option, not an input: it is read from the recorded registration request."""
    key = repr((backend, spec, identity))
    if key not in _RUNS:
        session = session_of({"backend": backend, **spec})
        make = podman_program if backend == "podman" else k8s_program
        _RUNS[key] = run_pulumi(make(session, "/repo", identity), RecordingMocks())
    run = _RUNS[key]
    return [res(args.typ, name, dict(args.inputs), protected=bool(run.requests[name].protect))
            for name, args in run.resources.items()]


def violations(resources: list[Resource], rule_ids: Iterable[str]) -> dict[str, list[Any]]:
    return {rule_id: found(BY_ID[rule_id].check, resources, BY_ID[rule_id].params)
            for rule_id in rule_ids}


def none_for(rule_ids: Iterable[str]) -> dict[str, list[Any]]:
    return {rule_id: [] for rule_id in rule_ids}


def credentials(tmp_path: Path) -> AgentIdentity:
    adc = StagedFile(tmp_path / "adc.json", tmp_path / "stage" / "adc.json",
                     "/home/paude/.config/gcloud/application_default_credentials.json",
                     '{"refresh_token": "r"}')
    return AgentIdentity((adc,), (), {"GOOGLE_CLOUD_PROJECT": "p"}, {"ANTHROPIC_API_KEY": "sk"})


@pytest.mark.parametrize("backend", ["podman", "openshift"])
def test_default_session_passes_every_rule(backend: str) -> None:
    resources = program_resources(backend, {})
    assert violations(resources, BY_ID) == none_for(BY_ID)


@pytest.mark.parametrize("backend", ["podman", "openshift"])
def test_session_with_credentials_passes_every_mandatory_rule(backend: str,
                                                              tmp_path: Path) -> None:
    resources = program_resources(backend, {"yolo": True}, credentials(tmp_path))
    assert violations(resources, [r.id for r in MANDATORY]) == none_for(r.id for r in MANDATORY)


def test_podman_resources_look_as_the_rules_expect() -> None:
    resources = {r.name: r for r in program_resources("podman", {})}
    roles = {n: r.role for n, r in resources.items() if r.kind == "podman:Container"}
    assert roles == {"agent": "agent", "proxy": "proxy", "gateway": "gateway"}
    agent = resources["agent"]
    joined = [str(n).split(":", 1)[0] for n in agent.props["networks"]]
    networks = {str(r.props["name"]): r for r in resources.values() if r.kind == "podman:Network"}
    assert joined == ["paude-demo-internal"]
    assert networks["paude-demo-internal"].props["internal"] is True
    assert networks["paude-demo-internal"].props["dns"] is False
    assert "network_mode" not in agent.props and agent.props["waivers"] == {}
    assert {n for n, r in resources.items() if r.protected} == {"workspace"}
    assert resources["workspace"].kind == "podman:Volume"
    assert [(r.name, egress_of(c).unrestricted) for r, c in proxy_configs(list(resources.values()))
            ] == [("proxy", False)]
    assert resources["agent-image"].props["base_images"] == \
        ["docker.io/library/debian:bookworm-slim"]


def test_k8s_resources_look_as_the_rules_expect() -> None:
    resources = {r.name: r for r in program_resources("openshift", {})}
    assert [n for n, r in resources.items() if r.role == "agent"] == ["agent"]
    assert resources["agent"].kind == "kubernetes:apps/v1:StatefulSet"
    assert rules.pod_labels(resources["agent"])["paude.io/role"] == "agent"
    governing = [n for n, r in resources.items() if r.kind == NETPOL
                 and "Egress" in r.props["spec"]["policyTypes"]
                 and selects(r.props["spec"]["podSelector"], rules.pod_labels(resources["agent"]))]
    assert sorted(governing) == ["policy-agent-egress", "policy-default-deny"]
    assert {n for n, r in resources.items() if r.protected} == {"workspace"}
    assert resources["workspace"].kind == "kubernetes:core/v1:PersistentVolumeClaim"
    assert [r.name for r, _ in proxy_configs(list(resources.values()))] == ["proxy-config"]
    assert resources["agent"].annotation("paude.io/waiver-yolo-unrestricted-egress") is None


@pytest.mark.parametrize("backend", ["podman", "openshift"])
def test_yolo_with_all_domains_is_refused(backend: str) -> None:
    resources = program_resources(backend, YOLO_ALL)
    found_all = violations(resources, BY_ID)
    [(name, detail)] = found_all.pop("yolo-unrestricted-egress")
    assert name == "agent" and "--yolo" in detail
    [(proxy, wide)] = found_all.pop("allowlist-wider-than-default")
    assert proxy in ("proxy", "proxy-config") and "every destination" in wide
    assert found_all == none_for(found_all)


@pytest.mark.parametrize("backend", ["podman", "openshift"])
def test_waived_yolo_with_all_domains_passes_every_mandatory_rule(backend: str) -> None:
    resources = program_resources(backend, WAIVED)
    assert violations(resources, [r.id for r in MANDATORY]) == none_for(r.id for r in MANDATORY)
    # The waiver reaches the agent only: the advisory finding stays.
    assert len(violations(resources, ["allowlist-wider-than-default"])
               ["allowlist-wider-than-default"]) == 1


@pytest.mark.parametrize("backend", ["podman", "openshift"])
def test_extra_domains_are_listed(backend: str) -> None:
    resources = program_resources(backend, {"allowed_domains": EXTRA})
    found_all = violations(resources, BY_ID)
    [(proxy, detail)] = found_all.pop("allowlist-wider-than-default")
    assert proxy == ("proxy" if backend == "podman" else "proxy-config")
    assert detail == f"the allowlist is wider than the default; additions: {EXTRA_ADDITIONS}"
    assert found_all == none_for(found_all)


def test_large_claim_is_reported_against_the_limit() -> None:
    resources = program_resources("openshift", {"openshift": {"pvc_size": "200Gi"}})
    assert violations(resources, ["pvc-size-limit"]) == {"pvc-size-limit": [
        ("workspace", "the workspace claim asks for 200Gi, more than the limit 100Gi")]}
    assert found(check_claim_size, resources, {"max_size": "500Gi"}) == []
