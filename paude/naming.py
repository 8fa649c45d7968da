"""Every name a session's objects carry, on podman and on a cluster, from one place.

Stacks declare objects under these names, backends find them by these names, and the
CLI shows them: a name computed anywhere else could drift from the one an object really
has (a session would then look missing). Names derive from the validated session name
only (validated here), so none can inject an argument or break a manifest."""

from __future__ import annotations

import re
from dataclasses import dataclass

from paude.errors import ConfigError, ConfigProblem

# Names end up inside `paude-NAME-workspace`, volume, network, Kubernetes and git
# remote names, so they follow DNS-label rules and stay short enough for prefixes.
SESSION_NAME_MAX = 40
SESSION_NAME_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,38}[a-z0-9])?$")
_NAME_RULE = (
    f"use 1-{SESSION_NAME_MAX} characters: lowercase letters, digits and '-', "
    "starting with a letter and not ending with '-'"
)


def _suggest_name(name: str) -> str | None:
    """A valid session name close to `name`, or None when nothing sensible is left."""
    candidate = re.sub(r"[^a-z0-9]+", "-", name.lower())
    candidate = re.sub(r"^[^a-z]+", "", candidate)[:SESSION_NAME_MAX].rstrip("-")
    return candidate if SESSION_NAME_RE.fullmatch(candidate) else None


def validate_session_name(name: str) -> str:
    """Return `name` if it is a valid session name, else raise ValueError saying the rule."""
    # fullmatch: `$` also matches before a final newline, and "demo\n" is not a name.
    if SESSION_NAME_RE.fullmatch(name):
        return name
    message = f"invalid session name {name!r}: {_NAME_RULE}"
    suggestion = _suggest_name(name)
    if suggestion and suggestion != name:
        message += f" (for example {suggestion!r})"
    raise ValueError(message)


def check_session_name(name: str) -> str:
    """Validate a session name given on the command line."""
    try:
        return validate_session_name(name)
    except ValueError as exc:
        raise ConfigError("command line", [ConfigProblem("NAME", str(exc))],
                          hint="session names are lowercase letters, digits and '-'") from None


PREFIX = "paude"
# The scheme of the git remote helper (git-remote-paude) serving the session's repository.
REMOTE_SCHEME = "paude::"


def image_repository(role: str) -> str:
    """The repository of one of paude's images ("agent", "proxy"), shared by all sessions:
    tags are content hashes, so sessions with the same definition share an image."""
    return f"{PREFIX}-{role}"


def prefix(session: str) -> str:
    """The common prefix of every object name of a session."""
    return f"{PREFIX}-{session}"


def git_remote(session: str) -> str:
    """The session's git remote in the user's repository."""
    return prefix(session)


def git_remote_url(session: str) -> str:
    """The git remote's URL."""
    return f"{REMOTE_SCHEME}{session}"


@dataclass(frozen=True)
class PodmanNames:
    """The podman objects of a session."""

    session: str

    @property
    def prefix(self) -> str:
        """Common prefix of all object names."""
        return prefix(self.session)

    @property
    def internal_network(self) -> str:
        """The agent's only network."""
        return f"{self.prefix}-internal"

    @property
    def egress_network(self) -> str:
        """The proxy's way out."""
        return f"{self.prefix}-egress"

    @property
    def workspace(self) -> str:
        """The workspace volume."""
        return f"{self.prefix}-workspace"

    @property
    def agent(self) -> str:
        """The agent container."""
        return f"{self.prefix}-agent"

    @property
    def proxy(self) -> str:
        """The proxy container."""
        return f"{self.prefix}-proxy"

    @property
    def gateway(self) -> str:
        """The model gateway container."""
        return f"{self.prefix}-gateway"


@dataclass(frozen=True)
class ClusterNames:
    """The Kubernetes objects of a session, in its namespace."""

    session: str

    @property
    def prefix(self) -> str:
        """Common prefix of all object names."""
        return prefix(self.session)

    @property
    def agent(self) -> str:
        """StatefulSet (and Service name) of the agent."""
        return f"{self.prefix}-agent"

    @property
    def agent_pod(self) -> str:
        """The agent's pod: the StatefulSet's only replica."""
        return f"{self.agent}-0"

    @property
    def proxy(self) -> str:
        """Deployment and Service of the proxy."""
        return f"{self.prefix}-proxy"

    @property
    def proxy_config(self) -> str:
        """ConfigMap with squid.conf."""
        return f"{self.prefix}-proxy-config"

    @property
    def workspace(self) -> str:
        """The PVC."""
        return f"{self.prefix}-workspace"

    @property
    def credentials(self) -> str:
        """Secret with the agent's credential files and secret variables."""
        return f"{self.prefix}-credentials"

    @property
    def gateway(self) -> str:
        """Deployment and Service of the model gateway."""
        return f"{self.prefix}-gateway"

    @property
    def gateway_credentials(self) -> str:
        """Secret with the model credentials, read by the gateway alone."""
        return f"{self.prefix}-gateway-credentials"

    @property
    def proxy_ca(self) -> str:
        """The Secret holding the inspection CA's key, read by the proxy alone."""
        return f"{self.prefix}-proxy-ca"

    def network_policy(self, suffix: str) -> str:
        """One of the session's NetworkPolicies ("default-deny", "agent-egress", ...)."""
        return f"{self.prefix}-{suffix}"

    def image_stream(self, role: str) -> str:
        """ImageStream and BuildConfig of an in-cluster build ("agent", "proxy")."""
        return f"{self.prefix}-{role}"
