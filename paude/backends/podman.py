"""Podman operations outside the stack."""

from __future__ import annotations

from paude import proc
from paude.backends.base import Backend

PODMAN = "podman"


class PodmanBackend(Backend):
    """Local sessions on podman."""

    name = "podman"

    def delete_data(self, *, session: str) -> list[str]:
        """Remove the workspace volume a destroy kept."""
        volume = f"paude-{session}-workspace"
        if not proc.run([PODMAN, "volume", "exists", volume], check=False).ok:
            return []
        proc.run([PODMAN, "volume", "rm", "--force", volume])
        return [volume]

    def proxy_log(self, *, session: str) -> str:
        """Read squid's access log from inside the proxy container."""
        result = proc.run([PODMAN, "exec", f"paude-{session}-proxy",
                           "cat", "/var/log/squid/access.log"])
        return result.stdout

    def leftover_objects(self, *, session: str) -> list[str]:
        """Containers, networks and volumes labelled with this session."""
        found: list[str] = []
        label = f"label=paude.session={session}"
        for kind, fmt in (("ps", "{{.Names}}"), ("network", "{{.Name}}"),
                          ("volume", "{{.Name}}")):
            argv = [PODMAN, kind, "ls", "--filter", label, "--format", fmt]
            if kind == "ps":
                argv = [PODMAN, "ps", "--all", "--filter", label, "--format", fmt]
            result = proc.run(argv, check=False)
            found += [line for line in result.stdout.split() if line]
        return found
