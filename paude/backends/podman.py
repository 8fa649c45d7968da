"""Podman operations outside the stack: exec, attach, start, stop, status, data."""

from __future__ import annotations

import json
from collections.abc import Sequence

from paude import cgroups, proc, procfs
from paude.backends.base import SQUID_CONF, Backend, RuntimeStatus
from paude.errors import SessionNotFoundError
from paude.naming import PodmanNames

PODMAN = "podman"
# Attach to the agent's tmux session, starting it again if the agent has exited.
_ATTACH = 'exec tmux new-session -A -s paude "${PAUDE_AGENT_CMD:-bash}"'


def agent(session: str) -> str:
    """The agent container's name."""
    return PodmanNames(session).agent


def proxy(session: str) -> str:
    """The proxy container's name."""
    return PodmanNames(session).proxy


def gateway(session: str) -> str:
    """The session's model gateway container."""
    return PodmanNames(session).gateway


def workspace(session: str) -> str:
    """The workspace volume's name."""
    return PodmanNames(session).workspace


class PodmanBackend(Backend):
    """Local sessions on podman."""

    name = "podman"

    def exec_argv(self, *, session: str, argv: Sequence[str], stdin: bool = False,
                  tty: bool = False, env: dict[str, str] | None = None) -> list[str]:
        """`podman exec` into the agent, as the agent's user, in the workspace."""
        flags = (["--interactive"] if stdin else []) + (["--tty"] if tty else [])
        for key, value in sorted((env or {}).items()):
            flags += ["--env", f"{key}={value}"]
        return [PODMAN, "exec", *flags, agent(session), *argv]

    def start(self, *, session: str) -> None:
        """Start the proxy and the model gateway first: the agent's first request must
        find them. A session applied before the gateway existed has none until its next
        apply."""
        # One podman call for the three, in this order (each call costs about 0.1 s); only
        # when it fails is each container started alone, to say which is missing. A start
        # sets the fixed addresses up: it finishes even if paude is killed meanwhile
        # (proc.run's finish_alone says why).
        if proc.run([PODMAN, "start", proxy(session), gateway(session), agent(session)],
                    check=False, log_output=False, finish_alone=True).ok:
            return
        self._require(session)
        proc.run([PODMAN, "start", proxy(session)], finish_alone=True)
        proc.run([PODMAN, "start", gateway(session)], check=False, finish_alone=True)
        proc.run([PODMAN, "start", agent(session)], finish_alone=True)

    def gateway_file(self, *, session: str, path: str, content: str | None) -> None:
        """Through stdin (never argv, which logs and `ps` show), replaced in one rename so
        the gateway never reads half a file; owner-only."""
        script = ('umask 077 && cat > "$1.new" && mv -f "$1.new" "$1"' if content is not None
                  else 'rm -f "$1"')
        proc.run([PODMAN, "exec", "--interactive", gateway(session), "sh", "-c", script, "sh",
                  path], input=content or "", log_output=False)

    def stop(self, *, session: str) -> None:
        """Stop the agent first, then its gateway and proxy."""
        self._require(session)
        proc.run([PODMAN, "stop", "--time", "5", agent(session)], finish_alone=True)
        proc.run([PODMAN, "stop", "--time", "2", gateway(session)], check=False,
                 finish_alone=True)
        proc.run([PODMAN, "stop", "--time", "2", proxy(session)], finish_alone=True)

    def status(self, *, session: str) -> RuntimeStatus:
        """One `podman inspect` for both containers (with the agent's owner label, which
        the ownership check reads), the tmux check from /proc."""
        result = proc.run([PODMAN, "container", "inspect", "--format",
                           "{{.Name}} {{.State.Running}} {{.State.Pid}} {{.State.OOMKilled}} "
                           '{{index .Config.Labels "paude.repository"}}',
                           agent(session), proxy(session)], check=False, log_output=False)
        running, pids, oom, owners = {}, {}, {}, {}
        for line in result.stdout.splitlines():
            # The label is a path, which may hold spaces: it is the rest of the line.
            name, state, pid, killed, label = [*line.split(" ", 4), "", "", "", "", ""][:5]
            running[name] = state == "true"
            pids[name] = int(pid) if pid.isdigit() else 0
            oom[name] = killed == "true"
            owners[name] = label if label and label != "<no value>" else None
        if agent(session) not in running and proxy(session) not in running:
            return RuntimeStatus(False, False, False, False)
        agent_running = running.get(agent(session), False)
        alive = agent_running and self._tmux_alive(session, pids[agent(session)])
        kills = cgroups.memory_kills(pids[agent(session)]) if agent_running else None
        return RuntimeStatus(True, agent_running, running.get(proxy(session), False), alive,
                             kills, oom.get(agent(session), False),
                             owner=owners.get(agent(session)))

    def _tmux_alive(self, session: str, pid: int) -> bool:
        """The agent's tmux session exists: its server runs in the container (tmux ends
        it with the last session). Read from /proc; asked inside when that cannot be read."""
        seen = procfs.has_child(pid, "tmux: server") if pid > 0 else None
        if seen is not None:
            return seen
        return proc.run(self.exec_argv(session=session, argv=["tmux", "has-session", "-t",
                                                                "paude"]), check=False).ok

    def observe(self, *, sessions: Sequence[str]) -> dict[str, RuntimeStatus] | None:
        """One `podman ps` for every session's agent and proxy."""
        result = proc.run([PODMAN, "ps", "--all", "--filter", "label=paude.managed=true",
                           "--format", "json"], check=False, log_output=False)
        if not result.ok:
            return None
        states: dict[str, str] = {}
        for item in json.loads(result.stdout or "[]"):
            for container in item.get("Names") or []:
                states[container] = str(item.get("State", "")).lower()
        found = {}
        for name in sessions:
            agent_state, proxy_state = states.get(agent(name)), states.get(proxy(name))
            found[name] = RuntimeStatus(agent_state is not None or proxy_state is not None,
                                        agent_state == "running", proxy_state == "running",
                                        False)
        return found

    def attach_argv(self, *, session: str) -> list[str]:
        """Interactive tmux attach; Ctrl+b d detaches and the agent keeps running."""
        return self.exec_argv(session=session, argv=["sh", "-c", _ATTACH], stdin=True, tty=True)

    def data_exists(self, *, session: str) -> bool:
        """`podman volume exists` answers 1 for absent; anything else counts as present."""
        result = proc.run([PODMAN, "volume", "exists", workspace(session)], check=False)
        return result.returncode != 1

    def delete_data(self, *, session: str) -> list[str]:
        """Remove the workspace volume a destroy kept."""
        volume = workspace(session)
        if not proc.run([PODMAN, "volume", "exists", volume], check=False).ok:
            return []
        proc.run([PODMAN, "volume", "rm", "--force", volume])
        return [volume]

    def remove_leftovers(self, *, session: str, owner: str) -> list[str]:
        """Containers, then networks, carrying the session's labels (podman ANDs them)."""
        labels = [f"--filter=label={k}={v}" for k, v in (
            ("paude.managed", "true"), ("paude.session", session), ("paude.repository", owner))]
        removed = []
        for listing, field, removal in (
                (["ps", "--all"], ".Names", ["rm", "--force", "--time", "1"]),
                (["network", "ls"], ".Name", ["network", "rm"])):
            found = proc.run([PODMAN, *listing, *labels, "--format", f"{{{{{field}}}}}"],
                             check=False, log_output=False)
            names = found.stdout.split() if found.ok else []
            if names:
                proc.run([PODMAN, *removal, *names], check=False, finish_alone=True)
                removed += names
        return removed

    def owner(self, *, session: str) -> str | None:
        """The paude.repository label of the agent container, else of the workspace volume
        (a destroyed session keeps it, and the next apply of the name adopts it)."""
        # One `podman inspect` for both (a new session has neither, and each podman process
        # costs about 0.05 s); it answers 125 when one is missing and still lists the other.
        # An object of another kind that took one of the names (only the user can make one)
        # is told apart by its shape and counts as no label.
        result = proc.run([PODMAN, "inspect", agent(session), workspace(session)],
                          check=False, log_output=False)
        try:
            found = json.loads(result.stdout or "[]")
        except ValueError:
            found = []
        labels: dict[str, str] = {}
        for item in found if isinstance(found, list) else []:
            if not isinstance(item, dict):
                continue
            if item.get("Name") == agent(session) and "State" in item and "Config" in item:
                labels["agent"] = _label((item.get("Config") or {}).get("Labels"))
            elif item.get("Name") == workspace(session) and "Mountpoint" in item:
                labels["workspace"] = _label(item.get("Labels"))
        return labels.get("agent") or labels.get("workspace") or None

    def proxy_config(self, *, session: str) -> str:
        """The running proxy's squid.conf, as its entrypoint wrote it."""
        return proc.run([PODMAN, "exec", proxy(session), "cat", SQUID_CONF]).stdout

    def proxy_log(self, *, session: str) -> str:
        """Read squid's access log from inside the proxy container, then the model
        gateway's (same format; a session made before the gateway has none)."""
        result = proc.run([PODMAN, "exec", proxy(session), "cat", "/var/log/squid/access.log"])
        refused = proc.run([PODMAN, "exec", gateway(session), "cat",
                            "/var/log/paude/gateway-access.log"], check=False)
        return result.stdout + (refused.stdout if refused.ok else "")

    def _require(self, session: str) -> None:
        result = proc.run([PODMAN, "container", "exists", agent(session)], check=False)
        if not result.ok:
            raise SessionNotFoundError(
                f"session {session} has no agent container",
                hint=f"run `paude apply {session}` (or `paude create {session}`) first")


def _label(labels: object) -> str:
    """The paude.repository label of an inspected object's labels, or ""."""
    found = labels.get("paude.repository") if isinstance(labels, dict) else None
    return found if isinstance(found, str) else ""
