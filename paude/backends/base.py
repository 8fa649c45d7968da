"""The small interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from paude.errors import PaudeError

# Where the agent's repository lives inside the sandbox, on every backend.
WORKSPACE = "/workspace"
# The backend of a session that names none (paude.fields types it for the schema).
DEFAULT_BACKEND: Final = "podman"


# Where the proxy's entrypoint writes the configuration squid runs with (both backends).
SQUID_CONF = "/etc/squid/paude/squid.conf"


@dataclass(frozen=True)
class RuntimeStatus:
    """What is running for a session, observed without the engine."""

    exists: bool
    agent_running: bool
    proxy_running: bool
    agent_alive: bool  # the agent's tmux session is up
    memory_kills: int | None = None  # processes killed at the agent's memory limit
    oom_killed: bool = False  # the agent's container itself ended at its memory limit
    # A cluster's: the agent is scaled to zero (`paude stop`; its proxy may run on), or
    # wanted but its pod is not ready yet (scheduling, pulling, crashing).
    scaled_down: bool = False
    starting: bool = False
    # The agent container's paude.repository label, when the same read could see it: the
    # ownership check then needs no read of its own.
    owner: str | None = None

    @property
    def state(self) -> str:
        """running | stopped | pending | partial | absent."""
        if not self.exists:
            return "absent"
        if self.scaled_down:
            return "stopped"
        if self.agent_running and self.proxy_running:
            return "running"
        if self.starting:
            return "pending"
        if not self.agent_running and not self.proxy_running:
            return "stopped"
        return "partial"


class Backend(ABC):
    """Operations on a session's runtime objects that are not stack changes."""

    name: str

    @abstractmethod
    def exec_argv(self, *, session: str, argv: Sequence[str], stdin: bool = False,
                  tty: bool = False, env: dict[str, str] | None = None) -> list[str]:
        """The command line that runs argv inside the session's agent (for proc)."""

    @abstractmethod
    def start(self, *, session: str) -> None:
        """Start the proxy, then the agent (both exist; nothing is created)."""

    @abstractmethod
    def stop(self, *, session: str) -> None:
        """Stop the agent and the proxy, keeping everything."""

    @abstractmethod
    def status(self, *, session: str) -> RuntimeStatus:
        """Observe the session's containers."""

    def observe(self, *, sessions: Sequence[str]) -> dict[str, RuntimeStatus] | None:
        """The state of several sessions for `paude list`, as cheaply as the backend can
        (no exec into the agent: agent_alive is not observed); None when it cannot tell."""
        return {name: self.status(session=name) for name in sessions}

    @abstractmethod
    def attach_argv(self, *, session: str) -> list[str]:
        """The interactive command line that attaches to the agent's tmux session."""

    @abstractmethod
    def data_exists(self, *, session: str) -> bool:
        """True when the session's workspace (volume or claim) exists, or when that cannot
        be told: callers use it to decide what they may remove, so doubt means "exists"."""

    @abstractmethod
    def delete_data(self, *, session: str) -> list[str]:
        """Remove the session's kept workspace; return what was removed."""

    def remove_leftovers(self, *, session: str, owner: str) -> list[str]:
        """After the stack is destroyed: remove what a killed apply made before the stack
        could record it (never the workspace); return what was removed."""
        return []

    def owner(self, *, session: str) -> str | None:
        """The repository recorded on the session's live objects, when they carry it (None:
        absent, or the backend's labels cannot hold a path)."""
        return None

    def gateway_file(self, *, session: str, path: str, content: str | None) -> None:
        """Write (None: remove) a file that only the session's gateway reads: a credential
        given at start, which must not reach the agent or the stack."""
        raise PaudeError(f"the {self.name} backend cannot hand a credential to the gateway yet",
                         hint="use a podman session for --github-token")

    @abstractmethod
    def proxy_log(self, *, session: str) -> str:
        """The proxy's access log (raises SessionNotFoundError when the proxy is gone)."""

    @abstractmethod
    def proxy_config(self, *, session: str) -> str:
        """The squid configuration the running proxy was started with."""
