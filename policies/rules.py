"""paude's built-in policy rules: plain functions over a session's resources.

Each rule reads what the engine is about to create (podman containers, networks, volumes
and images; Kubernetes workloads, NetworkPolicies and claims), not paude.yaml, so a
bug in paude's own stack programs is caught as surely as a bad definition."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from paude import domains, naming
from paude.fields import YOLO_FLAG

from .resources import (
    POD_OWNERS,
    Resource,
    Violation,
    of_kind,
    pod_labels,
    pod_spec,
    selects,
)

Level = Literal["mandatory", "advisory", "disabled"]
Check = Callable[[Sequence[Resource], Mapping[str, Any]], Iterable[Violation]]

PROXY_PORT = 3128
GATEWAY_PORT = 8080
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
CLAIM = "kubernetes:core/v1:PersistentVolumeClaim"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"


@dataclass(frozen=True)
class Rule:
    """One rule: its id, default level, what it guards, how to fix a violation, and its check."""

    id: str
    level: Level
    description: str
    fix: str
    check: Check
    params: Mapping[str, Any] = field(default_factory=dict)
    waivable: bool = False  # a session may waive it with a written reason (waivers: in paude.yaml)
    # Evaluated by paude on the host, not by the pack: its check never reports.
    host: bool = False


# -- helpers -------------------------------------------------------------------------------

def _agents(resources: Sequence[Resource]) -> Iterator[Resource]:
    return (r for r in resources if r.role == "agent"
            and (r.kind == "podman:Container" or r.kind in POD_OWNERS))


def _containers(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]


def _env(resource: Resource) -> dict[str, str]:
    """A container's (podman) or a workload's first container's (Kubernetes) environment."""
    if resource.kind == "podman:Container":
        return {str(k): str(v) for k, v in (resource.props.get("env") or {}).items()}
    out: dict[str, str] = {}
    for container in _containers(pod_spec(resource)):
        for item in container.get("env") or []:
            if "value" in item:
                out[str(item.get("name"))] = str(item["value"])
    return out


def proxy_configs(resources: Sequence[Resource]) -> list[tuple[Resource, str]]:
    """The squid configuration each proxy runs: what actually decides egress."""
    out = []
    for res in of_kind(resources, "podman:Container"):
        encoded = (res.props.get("env") or {}).get("PAUDE_SQUID_CONF_B64")
        if res.role == "proxy" and isinstance(encoded, str):
            try:
                out.append((res, base64.b64decode(encoded).decode("utf-8")))
            except (binascii.Error, UnicodeDecodeError):
                out.append((res, ""))
    for res in of_kind(resources, CONFIG_MAP):
        conf = (res.props.get("data") or {}).get("squid.conf")
        if isinstance(conf, str):
            out.append((res, conf))
    return out


@dataclass(frozen=True)
class Egress:
    """What a squid configuration lets through."""

    unrestricted: bool
    names: frozenset[str]
    patterns: frozenset[str]


def egress_of(conf: str) -> Egress:
    """Parse paude's squid configuration back into the names it allows."""
    names: set[str] = set()
    patterns: set[str] = set()
    for line in conf.splitlines():
        parts = line.split()
        if parts[:3] == ["acl", "paude_allowed", "dstdomain"]:
            names.update(p for p in parts[3:] if not p.startswith("-"))
        elif parts[:3] == ["acl", "paude_allowed_re", "dstdom_regex"]:
            patterns.update(p for p in parts[3:] if not p.startswith("-"))
    unrestricted = any(ln.split() == ["http_access", "allow", "all"] for ln in conf.splitlines())
    return Egress(unrestricted, frozenset(names), frozenset(patterns))


# -- mandatory ------------------------------------------------------------------------------

def check_agent_egress(resources: Sequence[Resource], _: Mapping[str, Any]) -> Iterator[Violation]:
    """The agent's only way out is its proxy: internal networks without DNS on podman; a
    NetworkPolicy allowing only the proxy on 3128 on Kubernetes."""
    networks = {str(n.props.get("name")): n for n in of_kind(resources, "podman:Network")}
    policies = list(of_kind(resources, NETWORK_POLICY))
    for agent in _agents(resources):
        if agent.kind == "podman:Container":
            yield from _podman_agent_egress(agent, networks)
        else:
            yield from _k8s_agent_egress(agent, policies)


def _podman_agent_egress(agent: Resource, networks: Mapping[str, Resource]
                         ) -> Iterator[Violation]:
    mode = agent.props.get("network_mode")
    if mode:
        yield Violation(f"the agent uses network mode {mode!r}, which routes out directly", agent)
    joined = [str(n).split(":", 1)[0] for n in agent.props.get("networks") or []]
    if not joined and not mode:
        yield Violation("the agent declares no network, so podman would put it on its "
                        "default network, which routes out", agent)
    for name in joined:
        net = networks.get(name)
        if net is None:
            yield Violation(f"the agent joins network {name}, which this session does not "
                            "declare (its isolation cannot be checked)", agent)
        elif not net.props.get("internal"):
            yield Violation(f"the agent joins network {name}, which is not internal: it has a "
                            "route out that bypasses the proxy", agent)
        elif net.props.get("dns"):
            yield Violation(f"the agent joins network {name}, which has DNS enabled: the "
                            "agent could resolve (and tunnel through) external names", agent)


def _k8s_agent_egress(agent: Resource, policies: Sequence[Resource]) -> Iterator[Violation]:
    spec, labels = pod_spec(agent), pod_labels(agent)
    if spec.get("hostNetwork"):
        yield Violation("the agent's pods use the node's network (hostNetwork)", agent)
    session = labels.get("paude.io/session")
    governing = [p for p in policies if _restricts_egress(p.props.get("spec") or {})
                 and selects((p.props.get("spec") or {}).get("podSelector") or {}, labels)]
    if not governing:
        yield Violation("no NetworkPolicy restricts the agent's egress, so its pods may "
                        "connect anywhere", agent)
    for policy in governing:
        for rule in (policy.props.get("spec") or {}).get("egress") or []:
            yield from _egress_rule(rule, policy, session)


def _restricts_egress(spec: Mapping[str, Any]) -> bool:
    # Without policyTypes, Kubernetes infers Egress from the presence of an egress section.
    types = spec.get("policyTypes")
    return "Egress" in types if types else "egress" in spec


# What the agent may reach on a cluster, by the peer's role: its proxy, and its model
# gateway (which holds the credentials and forwards only model calls).
_AGENT_PEERS = {"proxy": PROXY_PORT, "gateway": GATEWAY_PORT}


def _egress_rule(rule: Mapping[str, Any], policy: Resource, session: str | None
                 ) -> Iterator[Violation]:
    peers = rule.get("to") or []
    if not peers:
        yield Violation("an egress rule selects the agent and allows every destination", policy)
    roles = set()
    for peer in peers:
        pod = (peer.get("podSelector") or {}).get("matchLabels") or {}
        role = pod.get("paude.io/role")
        if "ipBlock" in peer or "namespaceSelector" in peer or role not in _AGENT_PEERS \
                or pod.get("paude.io/session") != session:
            yield Violation("an egress rule lets the agent reach something other than its own "
                            "proxy and model gateway", policy)
        else:
            roles.add(role)
    port = _AGENT_PEERS[roles.pop()] if len(roles) == 1 else PROXY_PORT
    ports = rule.get("ports") or []
    if not ports or any(p.get("port") != port or p.get("protocol", "TCP") != "TCP"
                        or p.get("endPort") not in (None, port) for p in ports):
        yield Violation(f"an egress rule lets the agent use ports other than TCP {port}",
                        policy)


def check_yolo_unrestricted(resources: Sequence[Resource], _: Mapping[str, Any]
                            ) -> Iterator[Violation]:
    """An agent that skips permission prompts must not also have unrestricted egress."""
    if not any(egress_of(conf).unrestricted for _, conf in proxy_configs(resources)):
        return
    for agent in _agents(resources):
        env = _env(agent)
        commands = (env.get("PAUDE_AGENT_CMD", ""), env.get("PAUDE_AGENT_ONCE_CMD", ""))
        if not any(YOLO_FLAG in c.split() for c in commands):
            continue
        if waiver(agent, YOLO_UNRESTRICTED):
            continue
        yield Violation("the agent runs with --yolo (no permission prompts) and its proxy "
                        "allows every destination (allowed_domains: all)", agent)


def waiver(agent: Resource, rule_id: str) -> str:
    """The written reason a session gave for waiving `rule_id`, or ''."""
    if agent.kind == "podman:Container":
        waivers = agent.props.get("waivers") or {}
        return str(waivers.get(rule_id) or "").strip()
    return (agent.annotation(f"paude.io/waiver-{rule_id}") or "").strip()


def check_privileges(resources: Sequence[Resource], _params: Mapping[str, Any]
                     ) -> Iterator[Violation]:
    """No privileged containers, no added capabilities, no writable host paths."""
    for res in of_kind(resources, "podman:Container"):
        props = res.props
        if props.get("privileged"):
            yield Violation("the container is privileged", res)
        if props.get("cap_add"):
            yield Violation(f"the container adds capabilities: {', '.join(props['cap_add'])}",
                            res)
        for mount in props.get("volumes") or []:
            source, sep, rest = str(mount).partition(":")
            options = rest.split(":")[1].split(",") if rest.count(":") else []
            # SOURCE:TARGET[:OPTIONS]; a lone path is an anonymous volume, and a source that
            # is a path (not a volume name) is bind-mounted from the host.
            if sep and source.startswith(("/", ".", "~")) and "ro" not in options:
                yield Violation(f"the container mounts the host path {source} writable", res)
    for res in resources:
        if res.kind in POD_OWNERS:
            yield from _pod_privileges(res)


def _pod_privileges(res: Resource) -> Iterator[Violation]:
    spec = pod_spec(res)
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            yield Violation(f"the pods share the node's namespaces ({key})", res)
    host_paths = {v.get("name") for v in spec.get("volumes") or [] if "hostPath" in v}
    for container in _containers(spec):
        name = container.get("name", "?")
        security = container.get("securityContext") or {}
        if security.get("privileged"):
            yield Violation(f"container {name} is privileged", res)
        added = (security.get("capabilities") or {}).get("add") or []
        if added:
            yield Violation(f"container {name} adds capabilities: {', '.join(added)}", res)
        if security.get("allowPrivilegeEscalation"):
            yield Violation(f"container {name} allows privilege escalation", res)
        for mount in container.get("volumeMounts") or []:
            if mount.get("name") in host_paths and not mount.get("readOnly"):
                yield Violation(f"container {name} mounts a host path writable "
                                f"({mount.get('mountPath')})", res)


def check_workspace_protected(resources: Sequence[Resource], _: Mapping[str, Any]
                              ) -> Iterator[Violation]:
    """The workspace (the agent's commits) cannot be deleted or replaced by an apply."""
    for res in [*of_kind(resources, "podman:Volume"), *of_kind(resources, CLAIM)]:
        if not res.protected:
            yield Violation("the workspace is not protected: a plan could delete or replace "
                            "it, and the agent's unfetched commits with it", res)


# -- advisory -------------------------------------------------------------------------------

def pinned(reference: str) -> bool:
    """Whether an image reference names a digest or a tag other than latest."""
    if "@sha256:" in reference:
        return True
    last = reference.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] != "latest"


def check_base_pinned(resources: Sequence[Resource], _: Mapping[str, Any]) -> Iterator[Violation]:
    """Base images should not float: a rebuild could silently take a different image."""
    for res in resources:
        for base in res.props.get("base_images") or []:
            if not pinned(str(base)):
                yield Violation(f"base image {base} has no pinned tag or digest", res)


_UNITS = {"": 1, "k": 1000, "M": 1000**2, "G": 1000**3, "T": 1000**4, "P": 1000**5,
          "E": 1000**6, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4,
          "Pi": 1024**5, "Ei": 1024**6}
_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")


def quantity_bytes(text: str) -> float:
    """A Kubernetes storage quantity (10Gi, 500M, 1.5Ti) in bytes."""
    match = _QUANTITY.match(str(text).strip())
    if match is None:
        raise ValueError(f"{text!r} is not a storage quantity such as 10Gi")
    return float(match.group(1)) * _UNITS[match.group(2) or ""]


def check_claim_size(resources: Sequence[Resource], params: Mapping[str, Any]
                     ) -> Iterator[Violation]:
    """Claims above the organisation's limit (max_size) cost money and are rarely needed."""
    limit = str(params.get("max_size", "100Gi"))
    for res in of_kind(resources, CLAIM):
        size = (((res.props.get("spec") or {}).get("resources") or {}).get("requests")
                or {}).get("storage")
        if size is None:
            continue
        try:
            too_big = quantity_bytes(size) > quantity_bytes(limit)
        except ValueError:
            # A size the rule cannot read must not pass as small.
            yield Violation(f"the workspace claim's size {size!r} cannot be checked against "
                            f"the limit {limit}", res)
            continue
        if too_big:
            yield Violation(f"the workspace claim asks for {size}, more than the limit {limit}",
                            res)


def check_allowlist(resources: Sequence[Resource], _: Mapping[str, Any]) -> Iterator[Violation]:
    """Every name beyond the default allowlist is somewhere the agent can send code."""
    default = domains.expand(["default"])
    for res, conf in proxy_configs(resources):
        egress = egress_of(conf)
        if egress.unrestricted:
            yield Violation("the proxy allows every destination (allowed_domains: all)", res)
            continue
        extra = sorted(egress.names - set(default.domains)) + sorted(
            f"~{p}" for p in egress.patterns - set(default.regexes))
        if extra:
            yield Violation(f"the allowlist is wider than the default; additions: "
                            f"{', '.join(extra)}", res)


_IMAGE_KINDS = ("podman:Image", "cluster:PushedImage")


def _images(resources: Sequence[Resource]) -> Iterator[Resource]:
    return (r for r in resources if r.kind in _IMAGE_KINDS)


def _is_proxy_image(res: Resource) -> bool:
    # paude's own proxy image: built from paude's Containerfile on the machine's base.
    return str(res.props.get("tag", "")).startswith(
        f"localhost/{naming.image_repository('proxy')}:")


def _built_already(res: Resource) -> bool:
    # The stack's record of an image it already has and keeps (an unchanged tag): nothing
    # is built. A stack applied before builds were sandboxed records no build proxy for it,
    # and must still plan after an upgrade; a new or changed tag is checked as declared.
    return res.props.get("built") is True and bool(res.props.get("image_id"))


def check_builds_sandboxed(resources: Sequence[Resource], _: Mapping[str, Any]
                           ) -> Iterator[Violation]:
    """Every build that takes anything from the repository runs behind the build proxy."""
    for res in _images(resources):
        if _is_proxy_image(res) or _built_already(res):
            continue
        if not res.props.get("build_proxy_image") or not res.props.get("build_squid_conf"):
            yield Violation(f"image {res.props.get('tag', res.name)} would build with the "
                            "host's network instead of behind the build proxy", res)


def check_build_allowlist(resources: Sequence[Resource], _: Mapping[str, Any]
                          ) -> Iterator[Violation]:
    """Build steps run the repository's commands: every host they may reach beyond PyPI and
    the installers' is somewhere a build could send the code it sees."""
    default = set(domains.expand(["pypi", "deb.debian.org", "security.debian.org",
                                  "registry.npmjs.org", "claude.ai",
                                  "downloads.claude.ai"]).describe())
    for res in _images(resources):
        entries = res.props.get("build_allowlist")
        if not isinstance(entries, list):
            continue
        extra = sorted(str(e) for e in entries if str(e) not in default)
        if extra:
            yield Violation(f"image builds may reach more than the default: {', '.join(extra)}",
                            res)


def check_resource_limits(resources: Sequence[Resource], _: Mapping[str, Any]
                          ) -> Iterator[Violation]:
    """Every container runs with a memory, CPU and process limit (podman), or a memory and
    CPU limit (Kubernetes, where processes are limited per node)."""
    for res in of_kind(resources, "podman:Container"):
        limits = res.props.get("limits")
        missing = ["memory", "cpus", "pids"] if not isinstance(limits, Mapping) else [
            k for k in ("memory", "cpus", "pids") if limits.get(k) is None]
        if missing:
            yield Violation(f"container {res.props.get('name', res.name)} has no "
                            f"{' or '.join(missing)} limit", res)
    for res in resources:
        if res.kind not in POD_OWNERS:
            continue
        for container in _containers(pod_spec(res)):
            given = (container.get("resources") or {}).get("limits") or {}
            missing = [k for k in ("memory", "cpu") if not given.get(k)]
            if missing:
                yield Violation(f"container {container.get('name', '?')} has no "
                                f"{' or '.join(missing)} limit", res)


def check_on_host(_resources: Sequence[Resource], _params: Mapping[str, Any]
                  ) -> Iterator[Violation]:
    """A rule about where the definition came from (git history), not about resources: paude
    evaluates it on the host (paude/provenance.py) with the level resolved here. It stays in
    the pack's list so the organisation's level reaches paude and `paude policies`, and
    reports nothing there."""
    yield from ()


YOLO_UNRESTRICTED = "yolo-unrestricted-egress"
DEFINITION_CHANGED = "definition-changed-by-session"

BUILTIN: tuple[Rule, ...] = (
    Rule("agent-no-direct-egress", "mandatory",
         "The agent reaches the network only through its proxy.",
         "keep the agent on the session's internal network (podman) or under the session's "
         "agent-egress NetworkPolicy (Kubernetes); never give it another network",
         check_agent_egress),
    Rule(YOLO_UNRESTRICTED, "mandatory",
         "No --yolo together with unrestricted egress.",
         "drop `all` from allowed_domains and list the domains the agent needs, or turn yolo "
         "off; if this session really needs both, add `waivers: {yolo-unrestricted-egress: "
         "\"<reason>\"}` to it in paude.yaml, for review",
         check_yolo_unrestricted, waivable=True),
    Rule("no-privileged-or-host-write", "mandatory",
         "No privileged mode, added capabilities or writable host paths.",
         "remove privileged, capability additions and writable host-path mounts; credentials "
         "are mounted read-only by paude",
         check_privileges),
    Rule("workspace-protected", "mandatory",
         "The workspace volume or claim is protected from deletion and replacement.",
         "mark the workspace protected (paude's stacks always do); remove data only with "
         "`paude destroy NAME --delete-data`",
         check_workspace_protected),
    Rule("base-image-pinned", "advisory",
         "Base images are pinned to a tag or digest.",
         "name the base image with an explicit tag (not latest) or an @sha256: digest",
         check_base_pinned),
    Rule("pvc-size-limit", "advisory",
         "Workspace claims stay within the size limit.",
         "lower openshift.pvc_size, or raise max_size for this rule in the policy file",
         check_claim_size, params={"max_size": "100Gi"}),
    Rule("allowlist-wider-than-default", "advisory",
         "The egress allowlist is no wider than the default.",
         "remove the additions from allowed_domains unless the agent needs them",
         check_allowlist),
    Rule("builds-sandboxed", "mandatory",
         "Image builds never use the host's network: they run behind the build proxy.",
         "paude's stacks always sandbox builds; a custom stack must set build_proxy_image and "
         "build_squid_conf on every image but paude's own proxy image",
         check_builds_sandboxed),
    Rule("build-allowlist-wider-than-default", "advisory",
         "Image builds reach no more than PyPI, the Debian archive and the agent installer.",
         "remove the additions from image.build_domains unless the build needs them",
         check_build_allowlist),
    Rule("resource-limits", "advisory",
         "Every container has memory, CPU and process limits, so a runaway agent cannot "
         "exhaust the machine or the node.",
         "remove `unlimited` from the session's resources in paude.yaml (the defaults are "
         "4Gi, 2 CPUs and 4096 processes), or set a larger value",
         check_resource_limits),
    Rule(DEFINITION_CHANGED, "advisory",
         "The session's definition (paude.yaml, paude-policy.yaml, the image source, the "
         "Dockerfile and its build context, setup files) did not change in commits that came "
         "from a session.",
         "review each listed commit (`git show SHA`) before applying: the agent wrote it; "
         "where this rule is mandatory, bring the change in through commits of your own (a "
         "reviewed pull request) rather than the session's",
         check_on_host, host=True),
)

BY_ID: dict[str, Rule] = {rule.id: rule for rule in BUILTIN}
