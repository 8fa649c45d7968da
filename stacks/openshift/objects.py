"""Kubernetes object bodies for a session, as plain dicts: pure, golden-testable, and
shared by the Pulumi program and the render path."""

from __future__ import annotations

from typing import Any

import pulumi

from paude import sizing
from paude.naming import ClusterNames
from paude.resources_model import ResourcesConfig

PROXY_PORT = 3128
# squid's second port, for the model gateway only (NetworkPolicies admit nothing else to
# it); a cluster gives pods no fixed address to admit the gateway by.
GATEWAY_PROXY_PORT = 3129
GATEWAY_PORT = 8080
VOLUME_MOUNT = "/paude"
AGENT_UID = 1000
PROXY_UID = 13  # Debian's `proxy` user, as in the proxy image

# Every container: non-root, unprivileged, nothing to escalate to, no capabilities, the
# runtime's default seccomp profile. `privileged: false` is the default, but stating it
# makes the field paude's under server-side apply: a hand-set `privileged: true` is then
# drift that apply takes back, where an unstated field would be left as the editor's.
# (A `false` that the API omits, like hostNetwork, cannot be owned that way: paude reads
# those itself, paude/cluster_drift.py.)
CONTAINER_SECURITY: dict[str, Any] = {
    "privileged": False,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "readOnlyRootFilesystem": False,
    "seccompProfile": {"type": "RuntimeDefault"},
}


# The Pod Security Standard a namespace paude creates enforces (and warns about): every
# session pod meets `restricted`.
POD_SECURITY_LABELS = {"pod-security.kubernetes.io/enforce": "restricted",
                       "pod-security.kubernetes.io/warn": "restricted"}


def labels(session: str, role: str) -> dict[str, str]:
    """Labels for discovery and for the NetworkPolicies' selectors."""
    return {"app.kubernetes.io/name": "paude", "app.kubernetes.io/managed-by": "paude",
            "paude.io/session": session, "paude.io/role": role}


def selector(session: str, role: str) -> dict[str, Any]:
    """A label selector for one role of one session."""
    return {"matchLabels": {"paude.io/session": session, "paude.io/role": role}}


def network_policies(session: str) -> dict[str, dict[str, Any]]:
    """Specs of the session's NetworkPolicies, by name suffix.

    Default deny for every pod of the session; the agent may talk only to its proxy on
    3128 and its model gateway on 8080 (no DNS: names are resolved by the proxy); the
    gateway accepts only the agent and reaches only the proxy's gateway port 3129; the
    proxy accepts only those two and may reach only 80, 443 and DNS."""
    everything = {"matchLabels": {"paude.io/session": session}}
    agent, proxy = selector(session, "agent"), selector(session, "proxy")
    gateway = selector(session, "gateway")
    dns_ports = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]

    def tcp(port: int) -> list[dict[str, Any]]:
        return [{"protocol": "TCP", "port": port}]

    return {
        "default-deny": {"podSelector": everything, "policyTypes": ["Ingress", "Egress"]},
        "agent-egress": {
            "podSelector": agent, "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": proxy}], "ports": tcp(PROXY_PORT)},
                       {"to": [{"podSelector": gateway}], "ports": tcp(GATEWAY_PORT)}]},
        "proxy-ingress": {
            "podSelector": proxy, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": agent}], "ports": tcp(PROXY_PORT)},
                        {"from": [{"podSelector": gateway}], "ports": tcp(GATEWAY_PROXY_PORT)}]},
        "proxy-egress": {
            "podSelector": proxy, "policyTypes": ["Egress"],
            "egress": [{"ports": [{"protocol": "TCP", "port": 80},
                                  {"protocol": "TCP", "port": 443}, *dns_ports]}]},
        "gateway-ingress": {
            "podSelector": gateway, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": agent}], "ports": tcp(GATEWAY_PORT)}]},
        "gateway-egress": {
            "podSelector": gateway, "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": proxy}], "ports": tcp(GATEWAY_PROXY_PORT)}]},
    }


def pod_security(uid: int) -> dict[str, Any]:
    """The pod-level security context."""
    return {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
            "seccompProfile": {"type": "RuntimeDefault"}}


def proxy_deployment(session: str, image: str, config_hash: str,
                     ca_cert: Any = "") -> dict[str, Any]:
    """The proxy Deployment spec: squid reads squid.conf from its ConfigMap, and the
    inspection CA's key from a Secret only this pod mounts."""
    names = ClusterNames(session)
    return {
        "replicas": 1,
        "selector": selector(session, "proxy"),
        "template": {
            # The hash restarts the proxy when the allowlist changes, and only the proxy.
            "metadata": {"labels": labels(session, "proxy"),
                         "annotations": {"paude.io/config-hash": config_hash}},
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": pod_security(PROXY_UID),
                "containers": [{
                    "name": "squid",
                    "image": image,
                    "ports": [{"containerPort": PROXY_PORT, "name": "proxy"},
                              {"containerPort": GATEWAY_PROXY_PORT, "name": "gateway"}],
                    "env": [{"name": "PAUDE_SQUID_CONF_FILE",
                             "value": "/etc/squid/paude-config/squid.conf"},
                            {"name": "PAUDE_CA_CERT", "value": ca_cert},
                            {"name": "PAUDE_CA_KEY", "valueFrom": {"secretKeyRef": {
                                "name": names.proxy_ca, "key": "PAUDE_CA_KEY"}}}],
                    "volumeMounts": [{"name": "config", "mountPath": "/etc/squid/paude-config",
                                      "readOnly": True}],
                    "resources": sizing.kubernetes(sizing.PROXY),
                    "securityContext": CONTAINER_SECURITY,
                }],
                "volumes": [{"name": "config", "configMap": {"name": names.proxy_config}}],
            },
        },
    }


def proxy_service(session: str) -> dict[str, Any]:
    """The proxy's Service: the agent's only destination."""
    return {"selector": {"paude.io/session": session, "paude.io/role": "proxy"},
            "ports": [{"name": "proxy", "port": PROXY_PORT, "targetPort": PROXY_PORT,
                       "protocol": "TCP"},
                      {"name": "gateway", "port": GATEWAY_PROXY_PORT,
                       "targetPort": GATEWAY_PROXY_PORT, "protocol": "TCP"}]}


def gateway_service(session: str) -> dict[str, Any]:
    """The model gateway's Service: reached by the agent only."""
    return {"selector": {"paude.io/session": session, "paude.io/role": "gateway"},
            "ports": [{"name": "gateway", "port": GATEWAY_PORT, "targetPort": GATEWAY_PORT,
                       "protocol": "TCP"}]}


def gateway_deployment(session: str, image: str, config: str, secret_keys: list[str],
                       proxy_ip: Any) -> dict[str, Any]:
    """The model gateway Deployment: the proxy image's gateway, holding the credentials."""
    names = ClusterNames(session)
    env: list[dict[str, Any]] = [{"name": "PAUDE_GATEWAY_CONFIG", "value": config}]
    env += [{"name": key, "valueFrom": {"secretKeyRef": {"name": names.gateway_credentials,
                                                         "key": key}}}
            for key in sorted(secret_keys)]
    return {
        "replicas": 1,
        "selector": selector(session, "gateway"),
        "template": {
            "metadata": {"labels": labels(session, "gateway")},
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                # No DNS: the proxy resolves the model hosts; the gateway finds the proxy
                # through a hosts entry.
                "dnsPolicy": "None",
                "dnsConfig": {"nameservers": ["127.0.0.1"]},
                "hostAliases": [{"ip": proxy_ip, "hostnames": [names.proxy]}],
                "securityContext": pod_security(PROXY_UID),
                "containers": [{
                    "name": "gateway",
                    "image": image,
                    "args": ["gateway"],
                    "ports": [{"containerPort": GATEWAY_PORT, "name": "gateway"}],
                    "env": env,
                    "resources": sizing.kubernetes(sizing.PROXY),
                    "securityContext": CONTAINER_SECURITY,
                }],
            },
        },
    }


def host_aliases(pairs: list[tuple[Any, str]]) -> Any:
    """hostAliases from (address, name) pairs, one entry per address: the API server keys
    the list by ip. Service addresses are unknown until apply; then the list is one Pulumi
    output, so a preview never sends two entries whose (unknown) addresses look alike."""
    def merged(ips: list[Any]) -> list[dict[str, Any]]:
        by_ip: dict[str, list[str]] = {}
        for ip, (_, name) in zip(ips, pairs, strict=True):
            by_ip.setdefault(str(ip), []).append(name)
        return [{"ip": ip, "hostnames": names} for ip, names in by_ip.items()]

    ips = [ip for ip, _ in pairs]
    if any(isinstance(ip, pulumi.Output) for ip in ips):
        return pulumi.Output.all(*ips).apply(merged)
    return merged(ips)


def agent_statefulset(session: str, image: str, env: dict[str, str],
                      secret_keys: list[str], files: list[tuple[str, str]],
                      proxy_ip: Any, limits: sizing.Limits | None = None,
                      gateway_ip: Any = None) -> dict[str, Any]:
    """The agent StatefulSet spec (one replica; `paude stop` scales it to zero).

    `proxy_ip` may be a Pulumi output (the Service's address, known after apply): only
    that one field is then unknown in a plan, and the policy pack still sees the rest."""
    names = ClusterNames(session)
    resources = sizing.kubernetes(limits or sizing.agent_limits(ResourcesConfig()))
    proxy_url = f"http://{names.proxy}:{PROXY_PORT}"
    no_proxy = f"localhost,127.0.0.1,::1,{names.proxy},{names.gateway}"
    plain = {**env, "HTTP_PROXY": proxy_url, "HTTPS_PROXY": proxy_url, "http_proxy": proxy_url,
             "https_proxy": proxy_url, "NO_PROXY": no_proxy, "no_proxy": no_proxy}
    env_list: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in sorted(plain.items())]
    env_list += [{"name": key, "valueFrom": {"secretKeyRef": {"name": names.credentials,
                                                              "key": key}}}
                 for key in sorted(secret_keys)]
    mounts: list[dict[str, Any]] = [{"name": "workspace", "mountPath": VOLUME_MOUNT}]
    mounts += [{"name": "credentials", "mountPath": target, "subPath": key, "readOnly": True}
               for key, target in files]
    volumes: list[dict[str, Any]] = [{"name": "workspace", "persistentVolumeClaim": {
        "claimName": names.workspace}}]
    if files:
        volumes.append({"name": "credentials", "secret": {
            "secretName": names.credentials, "defaultMode": 0o444,
            "items": [{"key": key, "path": key} for key, _ in files]}})
    return {
        "replicas": 1,
        "serviceName": names.agent,
        "selector": selector(session, "agent"),
        "template": {
            "metadata": {"labels": labels(session, "agent")},
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                # No DNS for the agent: it finds its proxy through a fixed hosts entry.
                "dnsPolicy": "None",
                "dnsConfig": {"nameservers": ["127.0.0.1"]},
                "hostAliases": host_aliases([(proxy_ip, names.proxy)] + (
                    [(gateway_ip, names.gateway)] if gateway_ip is not None else [])),
                "securityContext": pod_security(AGENT_UID),
                "containers": [{
                    "name": "agent",
                    "image": image,
                    # The image's WORKDIR, /workspace, links into the claim, which starts
                    # empty: the runtime cannot enter it before the entrypoint makes it.
                    "workingDir": VOLUME_MOUNT,
                    "env": env_list,
                    "volumeMounts": mounts,
                    **({"resources": resources} if resources else {}),
                    "securityContext": CONTAINER_SECURITY,
                }],
                "volumes": volumes,
            },
        },
    }
