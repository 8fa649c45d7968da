"""The OpenShift / Kubernetes stack program: one session's objects in a namespace.

It serves OpenShift and plain Kubernetes alike. `render_dir` switches pulumi-kubernetes
to render mode: manifests are written to a folder for review or GitOps, and no cluster
is contacted."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from paude import domains, naming, sizing
from paude import gateway as model_gateway
from paude.credentials import AgentIdentity
from paude.models import Session

from ..podman.program import agent_commands, agent_trust_env, squid_conf
from ..session_ca import SessionCA
from .images import cluster_images
from .objects import (
    GATEWAY_PROXY_PORT,
    POD_SECURITY_LABELS,
    agent_statefulset,
    gateway_deployment,
    gateway_service,
    labels,
    network_policies,
    proxy_deployment,
    proxy_service,
)

# Rendered manifests cannot know the Service's address; the hosts entry says so.
REDACTED = "<redacted: filled in by paude apply>"
RENDER_PLACEHOLDER_IP = "0.0.0.0"  # a placeholder, never bound or dialled
SKIP_AWAIT = "pulumi.com/skipAwait"  # pulumi-kubernetes: no readiness wait


def unawaited(metadata: dict[str, Any]) -> dict[str, Any]:
    """METADATA with the provider's readiness wait off. A Service is ready when its pods
    are, which the Deployment's own wait already covers; waiting on the Service as well
    held a failed apply for ten minutes (its pods never came) before saying why."""
    return {**metadata, "annotations": {**metadata.get("annotations", {}),
                                        SKIP_AWAIT: "true"}}


def workload(metadata: dict[str, Any]) -> dict[str, Any]:
    """METADATA for a Deployment or StatefulSet. Their names are fixed, so a replacement
    deletes the old object first. The provider deletes in the foreground (the object
    stays, marked, until its pods are gone) and, with skipAwait, does not wait for that
    (for these kinds): the new object was applied onto the old one while it terminated,
    and went with it. Where waits are skipped, the old object is deleted in the
    background instead: gone at once, its pods removed after it."""
    annotations = dict(metadata.get("annotations", {}))
    if annotations.get(SKIP_AWAIT) == "true":
        annotations["pulumi.com/deletionPropagationPolicy"] = "background"
    return {**metadata, "annotations": annotations}


def make_program(session: Session, owner: str, identity: AgentIdentity | None = None, *,
                 render_dir: str | None = None, rebuild: str = "",
                 source: Path | None = None) -> Callable[[], None]:
    """Return the inline Pulumi program for one session on OpenShift / Kubernetes;
    `source` as `files` for the podman program."""
    identity = identity or AgentIdentity((), (), {}, {})
    cfg = session.openshift
    names = naming.ClusterNames(session.name)

    def program() -> None:
        provider = _provider(session, render_dir)
        namespace = cfg.namespace or "default"
        opts = pulumi.ResourceOptions(provider=provider)
        if cfg.create_namespace:
            # Protected and kept on destroy: deleting a namespace deletes the workspace
            # claim in it.
            # The session's pods meet the `restricted` Pod Security Standard, so the
            # namespace enforces it: a pod someone adds there by hand must meet it too.
            ns = k8s.core.v1.Namespace(
                "namespace", metadata={"name": namespace, "labels": {
                    **labels(session.name, "namespace"), **POD_SECURITY_LABELS}},
                opts=pulumi.ResourceOptions(provider=provider, retain_on_delete=True,
                                            protect=True))
            opts = pulumi.ResourceOptions(provider=provider, depends_on=[ns])

        def meta(name: str, role: str) -> dict[str, Any]:
            # paude owns these objects: a field someone changed by hand (kubectl patch,
            # kubectl edit) is drift that apply takes back, not a conflict that stops it.
            annotations = {"pulumi.com/patchForce": "true"}
            if not cfg.wait_for_ready:
                # pulumi-kubernetes otherwise waits for pods to become ready.
                annotations[SKIP_AWAIT] = "true"
            return {"name": name, "namespace": namespace,
                    "labels": labels(session.name, role), "annotations": annotations}

        def _pull(spec: dict[str, Any]) -> dict[str, Any]:
            if cfg.image_pull_secret:
                spec["template"]["spec"]["imagePullSecrets"] = [{"name": cfg.image_pull_secret}]
            return spec

        images = cluster_images(session, owner, namespace, meta, opts, render=bool(render_dir),
                                rebuild=rebuild, files=source)
        conf = squid_conf(session, gateway_port=GATEWAY_PROXY_PORT)
        config = k8s.core.v1.ConfigMap("proxy-config", metadata=meta(names.proxy_config, "proxy"),
                                       data={"squid.conf": conf}, opts=opts)
        config_hash = hashlib.sha256(conf.encode()).hexdigest()[:16]
        ca = SessionCA("session-ca", {"session": session.name})
        ca_key = pulumi.Output.secret(REDACTED) if render_dir else ca.key_pem
        ca_secret = k8s.core.v1.Secret(
            "proxy-ca", metadata=meta(names.proxy_ca, "proxy"),
            string_data={"PAUDE_CA_KEY": ca_key}, opts=opts)
        proxy = k8s.apps.v1.Deployment(
            "proxy", metadata=workload(meta(names.proxy, "proxy")),
            spec=_pull(proxy_deployment(session.name, images.proxy, config_hash,
                                        ca.cert_pem)),
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
                depends_on=[config, ca_secret, *images.ready], delete_before_replace=True)))
        service = k8s.core.v1.Service(
            "proxy-service", metadata=unawaited(meta(names.proxy, "proxy")),
            spec=proxy_service(session.name), opts=opts)
        for suffix, spec in network_policies(session.name).items():
            k8s.networking.v1.NetworkPolicy(
                f"policy-{suffix}", metadata=meta(names.network_policy(suffix), "policy"),
                spec=spec, opts=opts)
        # Kept on destroy (like the podman volume): `paude destroy --delete-data` removes it.
        claim: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                                 "resources": {"requests": {"storage": cfg.pvc_size}}}
        if cfg.storage_class:
            claim["storageClassName"] = cfg.storage_class
        # Protected too: the engine refuses a plan that would delete or replace it (a new
        # storage_class would); destroy leaves it out.
        k8s.core.v1.PersistentVolumeClaim(
            "workspace", metadata=meta(names.workspace, "workspace"), spec=claim,
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
                retain_on_delete=True, protect=True)))
        files = [(f"file-{i}", item.target) for i, item in enumerate(identity.files)]
        secret_data = {key: item.content for (key, _), item in zip(files, identity.files,
                                                                   strict=True)}
        secret_data.update(identity.secret_env)
        if render_dir:
            # Rendered manifests are for review and GitOps: never the credentials themselves.
            secret_data = dict.fromkeys(secret_data, REDACTED)
        if secret_data:
            k8s.core.v1.Secret(
                "credentials", metadata=meta(names.credentials, "agent"),
                string_data=pulumi.Output.secret(secret_data), opts=opts)
        proxy_ip = RENDER_PLACEHOLDER_IP if render_dir else service.spec.cluster_ip
        gateway_ip = _model_gateway(session, identity, images.proxy, proxy_ip, meta, opts,
                                    _pull, redact=bool(render_dir), ready=[*images.ready])
        gateway_url = f"http://{names.gateway}:{model_gateway.GATEWAY_PORT}"
        env = {**identity.env, **model_gateway.agent_env(identity.gateway, gateway_url),
               "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
               "PAUDE_GATEWAY": f"{names.gateway}:{model_gateway.GATEWAY_PORT}",
               "PAUDE_SESSION": session.name, **agent_trust_env(ca.cert_pem),
               **agent_commands(session)}
        agent_spec = _pull(agent_statefulset(session.name, images.agent, env,
                                             list(identity.secret_env), files, proxy_ip,
                                             sizing.agent_limits(session.resources),
                                             gateway_ip))
        agent_meta = meta(names.agent, "agent")
        for rule, reason in sorted(session.waivers.items()):
            # Reviewed in paude.yaml; read by the policy pack.
            agent_meta.setdefault("annotations", {})[f"paude.io/waiver-{rule}"] = reason
        k8s.apps.v1.StatefulSet(
            "agent", metadata=workload(agent_meta), spec=agent_spec,
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
                depends_on=[proxy, *images.ready],
                # `paude stop` scales to zero and `start` back to one: not drift.
                ignore_changes=["spec.replicas"],
                # Replaced when changed by hand (paude/cluster_drift.py): the name is
                # fixed, so the old one goes first. The workspace is its own claim.
                delete_before_replace=True)))
        pulumi.export("session", session.name)
        pulumi.export("backend", "openshift")
        pulumi.export("owner", owner)
        pulumi.export("namespace", namespace)
        pulumi.export("context", cfg.context)
        pulumi.export("agent_statefulset", names.agent)
        pulumi.export("proxy_deployment", names.proxy)
        pulumi.export("gateway_deployment", names.gateway)
        pulumi.export("workspace_claim", names.workspace)
        pulumi.export("agent_image", images.agent)
        pulumi.export("proxy_image", images.proxy)
        pulumi.export("git_remote_name", naming.git_remote(session.name))
        pulumi.export("git_remote_url", naming.git_remote_url(session.name))

    return program


def _model_gateway(session: Session, identity: AgentIdentity, image: Any, proxy_ip: Any,
                   meta: Callable[[str, str], dict[str, Any]], opts: pulumi.ResourceOptions,
                   pull: Callable[[dict[str, Any]], dict[str, Any]], *, redact: bool,
                   ready: list[Any]) -> Any:
    """The model gateway: its Secret (the model credentials), Deployment and Service.
    Returns the Service's address for the agent's hosts entry."""
    names = naming.ClusterNames(session.name)
    allow = domains.expand(session.allowed_domains, session.denied_requests)
    creds = identity.gateway
    secret = creds.secret_env()
    if redact:
        # Rendered manifests are for review and GitOps: never the credentials themselves.
        secret = dict.fromkeys(secret, REDACTED)
    depends: list[Any] = list(ready)
    if secret:
        depends.append(k8s.core.v1.Secret(
            "gateway-credentials", metadata=meta(names.gateway_credentials, "gateway"),
            string_data=pulumi.Output.secret(secret), opts=opts))
    config = json.dumps(model_gateway.config(
        creds, allow, proxy_url=f"http://{names.proxy}:{GATEWAY_PROXY_PORT}", log_file=None,
        github_writes=session.github_writes),
        sort_keys=True)
    k8s.apps.v1.Deployment(
        "gateway", metadata=workload(meta(names.gateway, "gateway")),
        spec=pull(gateway_deployment(session.name, image, config, list(secret), proxy_ip)),
        opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
            depends_on=depends, delete_before_replace=True)))
    service = k8s.core.v1.Service(
        "gateway-service", metadata=unawaited(meta(names.gateway, "gateway")),
        spec=gateway_service(session.name), opts=opts)
    return RENDER_PLACEHOLDER_IP if redact else service.spec.cluster_ip


def _provider(session: Session, render_dir: str | None) -> k8s.Provider:
    cfg = session.openshift
    if not render_dir:
        # A mutable ConfigMap is updated in place on an allowlist change (its hash on the
        # proxy's pod template restarts the proxy) instead of deleted and re-created.
        return k8s.Provider("cluster", context=cfg.context, namespace=cfg.namespace,
                            enable_server_side_apply=True, enable_config_map_mutable=True)
    # Render mode must not see a kubeconfig; the SDK would read one from KUBECONFIG.
    saved = os.environ.pop("KUBECONFIG", None)
    try:
        return k8s.Provider("cluster", namespace=cfg.namespace,
                            render_yaml_to_directory=render_dir)
    finally:
        if saved is not None:
            os.environ["KUBECONFIG"] = saved
