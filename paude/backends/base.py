"""The small interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod


class Backend(ABC):
    """Operations on a session's runtime objects that are not stack changes."""

    name: str

    @abstractmethod
    def delete_data(self, *, session: str) -> list[str]:
        """Remove the session's kept workspace; return what was removed."""

    @abstractmethod
    def proxy_log(self, *, session: str) -> str:
        """The proxy's access log (raises SessionNotFoundError when the proxy is gone)."""

    @abstractmethod
    def leftover_objects(self, *, session: str) -> list[str]:
        """Objects of the session still present (used after destroy to verify cleanup)."""
