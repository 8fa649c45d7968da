"""Is a new container ready? Read from the host's /proc, so a poll costs no podman exec.

A container declares what ready means (its `ready` input): a port its processes listen on
(the proxy, the gateway), or a child its entrypoint starts once setup is done (the agent's
`sleep`, started after its tmux session). Each answer is True, False (not yet: poll again)
or None (this host does not let paude read it: wait the old way, for the container to stay
up a while)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from paude.procfs import PROC, has_child, listening


def ready(pid: int, spec: Mapping[str, Any], proc: Path = PROC) -> bool | None:
    """Whether the container whose main process is `pid` is ready by its `ready` spec
    ({"port": N} or {"child": COMMAND}); None when it cannot be told from here."""
    if "port" in spec:
        return listening(pid, int(spec["port"]), proc)
    if "child" in spec:
        return has_child(pid, str(spec["child"]), proc)
    return None
