"""Per-backend operations that live outside the stack (data removal, exec, attach)."""

from __future__ import annotations

from paude.backends.base import Backend
from paude.backends.kubernetes import KubernetesBackend
from paude.backends.podman import PodmanBackend
from paude.errors import PaudeError

_REGISTRY: dict[str, type[Backend]] = {"podman": PodmanBackend, "openshift": KubernetesBackend}


def get_backend(name: str, session: str | None = None) -> Backend:
    """The backend implementation for a session's `backend:` value; with `session`, set up
    for where that session was applied (kubeconfig context and namespace)."""
    if name == "openshift" and session is not None:
        return KubernetesBackend.for_session(session)
    try:
        return _REGISTRY[name]()
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise PaudeError(f"backend {name!r} is not available in this version of paude",
                         hint=f"use one of: {known}") from None
