"""OpenShift / Kubernetes operations outside the stack, through `oc` or `kubectl`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from paude import index, proc
from paude.backends.base import SQUID_CONF, Backend, RuntimeStatus
from paude.errors import SessionNotFoundError
from paude.naming import ClusterNames

# Attach to the agent's tmux session, starting it again if the agent has exited.
_ATTACH = 'exec tmux new-session -A -s paude "${PAUDE_AGENT_CMD:-bash}"'


# The label every object of a session carries (stacks/openshift/objects.py).
MANAGED_BY = "app.kubernetes.io/managed-by"


def _items(stdout: str) -> list[dict[str, Any]]:
    # `kubectl get --ignore-not-found` prints nothing when no object is found.
    data = json.loads(stdout) if stdout.strip() else {}
    return list(data.get("items", [data] if data.get("kind") else []))


def runtime_status(items: Sequence[dict[str, Any]], session: str) -> RuntimeStatus:
    """A session's state from the StatefulSets and Deployments the API server returned
    (no exec: agent_alive is False)."""
    names = ClusterNames(session)
    by_kind = {(i.get("kind"), (i.get("metadata") or {}).get("name")): i for i in items}
    agent = by_kind.get(("StatefulSet", names.agent))
    proxy = by_kind.get(("Deployment", names.proxy))

    def ready(item: dict[str, Any] | None) -> bool:
        return item is not None and int((item.get("status") or {}).get("readyReplicas") or 0) > 0

    wanted = agent is not None and int((agent.get("spec") or {}).get("replicas", 1) or 0) > 0
    return RuntimeStatus(agent is not None or proxy is not None, ready(agent), ready(proxy),
                         False, scaled_down=agent is not None and not wanted,
                         starting=wanted and not ready(agent))


@dataclass(frozen=True)
class NamespaceRules:
    """What an administrator set on a namespace, and what of a session is already there."""

    quotas: list[dict[str, Any]]
    limit_ranges: list[dict[str, Any]]
    workloads: list[dict[str, Any]]  # the session's StatefulSet and Deployments
    claim_exists: bool


class KubernetesBackend(Backend):
    """Sessions in a cluster: the agent is the single pod of a StatefulSet."""

    name = "openshift"

    def __init__(self, *, context: str | None = None, namespace: str | None = None,
                 tool: str | None = None) -> None:
        self.context = context
        self.namespace = namespace
        # oc on OpenShift, kubectl elsewhere; both take the same arguments used here.
        self.tool = tool or ("oc" if proc.which("oc") else "kubectl")

    @classmethod
    def for_session(cls, session: str) -> KubernetesBackend:
        """The backend with the context and namespace the session was applied with."""
        entry = index.read(session)
        return cls(context=entry.context if entry else None,
                   namespace=entry.namespace if entry else None)

    def base(self) -> list[str]:
        """The tool with --context and --namespace."""
        argv = [self.tool]
        if self.context:
            argv += ["--context", self.context]
        if self.namespace:
            argv += ["--namespace", self.namespace]
        return argv

    def exec_argv(self, *, session: str, argv: Sequence[str], stdin: bool = False,
                  tty: bool = False, env: dict[str, str] | None = None) -> list[str]:
        """`oc exec` into the agent pod (pod 0 of the StatefulSet)."""
        flags = (["--stdin"] if stdin else []) + (["--tty"] if tty else [])
        inner = list(argv)
        if env:
            inner = ["env", *(f"{k}={v}" for k, v in sorted(env.items())), *inner]
        return [*self.base(), "exec", *flags, ClusterNames(session).agent_pod, "-c", "agent",
                "--", *inner]

    def start(self, *, session: str) -> None:
        """Scale the agent back to one replica (the proxy Deployment always runs)."""
        self._scale(session, 1)
        proc.run([*self.base(), "rollout", "status", f"statefulset/{ClusterNames(session).agent}",
                  "--timeout=300s"])

    def stop(self, *, session: str) -> None:
        """Scale the agent to zero and wait until its pod is gone (the agent has ended and
        the claim is free, as after `podman stop`); the PVC keeps the workspace."""
        self._scale(session, 0)
        result = proc.run([*self.base(), "wait", "--for=delete",
                           f"pod/{ClusterNames(session).agent_pod}", "--timeout=120s"],
                          check=False)
        # A pod already gone (or never started) is what was asked for.
        if not result.ok and "not found" not in result.stderr.lower():
            raise proc.classify_failure(result)

    def _scale(self, session: str, replicas: int) -> None:
        result = proc.run([*self.base(), "scale", f"statefulset/{ClusterNames(session).agent}",
                           f"--replicas={replicas}"], check=False)
        if not result.ok and "not found" in result.stderr.lower():
            raise SessionNotFoundError(f"session {session} has no agent StatefulSet",
                                       hint=f"run `paude apply {session}` first")
        if not result.ok:
            raise proc.classify_failure(result)

    def status(self, *, session: str) -> RuntimeStatus:
        """Replicas of the agent StatefulSet and the proxy Deployment, then (when the agent
        is ready) whether its tmux session is up."""
        names = ClusterNames(session)
        result = proc.run([*self.base(), "get", f"statefulset/{names.agent}",
                           f"deployment/{names.proxy}", "--ignore-not-found", "-o", "json"],
                          check=False, log_output=False)
        if not result.ok:
            raise proc.classify_failure(result)
        observed = runtime_status(_items(result.stdout), session)
        alive = observed.agent_running and proc.run(
            self.exec_argv(session=session, argv=["tmux", "has-session", "-t", "paude"]),
            check=False).ok
        return dataclasses.replace(observed, agent_alive=alive)

    def observe(self, *, sessions: Sequence[str]) -> dict[str, RuntimeStatus] | None:
        """One read of paude's StatefulSets and Deployments in the namespace."""
        result = proc.run([*self.base(), "get", "statefulsets,deployments", "-l",
                           f"{MANAGED_BY}=paude", "-o", "json"], check=False,
                          log_output=False)
        if not result.ok:
            return None
        found = _items(result.stdout)
        return {name: runtime_status(found, name) for name in sessions}

    def namespace_rules(self, *, session: str) -> NamespaceRules | None:
        """The namespace's ResourceQuotas and LimitRanges, the session's workloads and
        whether its claim exists; None when they cannot be read (no right to, no cluster)."""
        rules = proc.run([*self.base(), "get", "resourcequotas,limitranges", "-o", "json"],
                         check=False, log_output=False)
        existing = self.session_objects(session=session)
        if not rules.ok or existing is None:
            return None
        found = _items(rules.stdout)
        return NamespaceRules(
            [i for i in found if i.get("kind") == "ResourceQuota"],
            [i for i in found if i.get("kind") == "LimitRange"],
            [i for i in existing if i.get("kind") in ("StatefulSet", "Deployment")],
            any(i.get("kind") == "PersistentVolumeClaim" for i in existing))

    def session_objects(self, *, session: str) -> list[dict[str, Any]] | None:
        """The session's StatefulSet, Deployments and claim as the API server has them; None
        when they cannot be read."""
        names = ClusterNames(session)
        ours = proc.run([*self.base(), "get", f"statefulset/{names.agent}",
                         f"deployment/{names.proxy}", f"deployment/{names.gateway}",
                         f"persistentvolumeclaim/{names.workspace}", "--ignore-not-found",
                         "-o", "json"], check=False, log_output=False)
        return _items(ours.stdout) if ours.ok else None

    def attach_argv(self, *, session: str) -> list[str]:
        """Interactive tmux attach through `oc exec -it`."""
        return self.exec_argv(session=session, argv=["sh", "-c", _ATTACH], stdin=True, tty=True)

    def data_exists(self, *, session: str) -> bool:
        """Ask the cluster for the claim; an unreachable cluster counts as "exists"."""
        result = proc.run([*self.base(), "get", "pvc", ClusterNames(session).workspace,
                           "--ignore-not-found", "-o", "name"], check=False)
        return not result.ok or bool(result.stdout.strip())

    def delete_data(self, *, session: str) -> list[str]:
        """Delete the kept PVC."""
        claim = ClusterNames(session).workspace
        result = proc.run([*self.base(), "delete", "pvc", claim, "--ignore-not-found",
                           "--wait=false"])
        return [claim] if "deleted" in result.stdout else []

    def proxy_config(self, *, session: str) -> str:
        """The proxy pod's squid.conf (its entrypoint copies the ConfigMap's there)."""
        return proc.run([*self.base(), "exec", f"deployment/{ClusterNames(session).proxy}", "--",
                         "cat", SQUID_CONF]).stdout

    def proxy_log(self, *, session: str) -> str:
        """squid's access log from the proxy pod."""
        return proc.run([*self.base(), "exec", f"deployment/{ClusterNames(session).proxy}", "--",
                         "cat", "/var/log/squid/access.log"]).stdout
