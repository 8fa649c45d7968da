"""Per-backend operations that live outside the stack (data removal, exec, attach)."""

from __future__ import annotations

from paude.backends.base import Backend
from paude.backends.podman import PodmanBackend
from paude.errors import PaudeError

_REGISTRY: dict[str, type[Backend]] = {"podman": PodmanBackend}


def get_backend(name: str) -> Backend:
    """The backend implementation for a session's `backend:` value."""
    try:
        return _REGISTRY[name]()
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise PaudeError(f"backend {name!r} is not available in this version of paude",
                         hint=f"use one of: {known}") from None
