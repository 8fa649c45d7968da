"""The model behind the randomized lifecycle test: what each session should look like, the
agent's work in it, and how both are observed (podman, git, `paude list`)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.helpers import Paude, podman

WORKSPACE = "/workspace"


@dataclass(frozen=True)
class Work:
    """One piece of the agent's work in a session's workspace."""

    kind: str  # a key of KINDS
    key: str  # a commit's sha, or a file's path in the workspace
    branch: str = ""


@dataclass(frozen=True)
class Kind:
    """How one kind of work is told apart: still in the session, saved on the host, and
    whether the no-lost-work guard must refuse to delete it while it is not saved."""

    guarded: bool
    probe: Callable[[Work], str]  # a shell test, run in the agent, true while it is there
    saved: Callable[[HostView, Work], bool]


@dataclass(frozen=True)
class HostView:
    """What the user's repository holds."""

    reachable: frozenset[str]  # every commit reachable from a ref


def _commit_probe(work: Work) -> str:
    return f"git -C {WORKSPACE} cat-file -e {work.key}^{{commit}} 2>/dev/null"


def _file_probe(work: Work) -> str:
    return f"test -e {shlex.quote(f'{WORKSPACE}/{work.key}')}"


def _fetched(host: HostView, work: Work) -> bool:
    return work.key in host.reachable


# The guard counts every kind: commits on any ref (branch, tag, stash) until a ref of the
# host reaches them, and changed or untracked files until a commit takes them in (op_commit's
# `git add -A`, op_stash): a file kind is never saved on the host as a file.
KINDS: dict[str, Kind] = {
    "commit": Kind(True, _commit_probe, _fetched),  # on a branch
    "tag": Kind(True, _commit_probe, _fetched),  # reachable from a tag only
    "stash": Kind(True, _commit_probe, _fetched),
    "uncommitted": Kind(True, _file_probe, lambda host, w: False),
    "untracked": Kind(True, _file_probe, lambda host, w: False),
}


@dataclass
class SessionModel:
    """What paude and the agent should have left of one session."""

    name: str
    defined: bool  # in paude.yaml
    yolo: bool = False
    domains: tuple[str, ...] | None = None
    applied: tuple[object, ...] | None = None  # (yolo, domains) of the last apply
    stack: bool = False  # applied (and indexed)
    containers: bool = False  # agent and proxy exist
    agent_up: bool = False
    proxy_up: bool = False
    volume: bool = False
    remote: bool = False  # paude-NAME in the user's repository
    initialized: bool = False  # the workspace is a repository with main
    dirty: bool = False  # tracked files changed in the workspace, not committed
    drift: bool = False  # a container removed by hand
    crashed: bool = False  # a paude command was killed: unknown until the next apply
    work: list[Work] = field(default_factory=list)

    @property
    def pending(self) -> bool:
        """paude.yaml differs from what the last apply applied."""
        return self.stack and self.applied != (self.yolo, self.domains)

    @property
    def agent(self) -> str:
        """The agent container."""
        return f"paude-{self.name}-agent"

    def status(self) -> str:
        """What `paude list` should say."""
        if self.agent_up and self.proxy_up:
            return "running"
        return "stopped" if not (self.agent_up or self.proxy_up) else "degraded"

    def add_work(self, work: Work) -> None:
        """Record work once."""
        if work not in self.work:
            self.work.append(work)

    def forget_workspace(self) -> None:
        """The workspace volume is gone, and the work in it."""
        self.volume = self.initialized = self.dirty = False
        self.work.clear()


@dataclass(frozen=True)
class Observed:
    """One session as podman, git and `paude list` show it."""

    containers: dict[str, str]  # container name -> state
    networks: tuple[str, ...]
    volume: bool
    remote: bool
    listed: str | None  # `paude list` status; None when not listed

    def state_of(self, container: str) -> str | None:
        """A container's state, None when it does not exist."""
        return self.containers.get(container)


def list_status(agent: str | None, proxy: str | None) -> str:
    """The status `paude list` derives from the two containers' states."""
    if agent is None and proxy is None:
        return "missing"
    if agent == proxy == "running":
        return "running"
    if agent != "running" and proxy != "running":
        return "stopped"
    return "degraded"


class Observer:
    """Reads the real state: podman directly, git in the user's repository, `paude list`."""

    def __init__(self, paude: Paude) -> None:
        self.paude = paude

    def git(self, *args: str) -> subprocess.CompletedProcess[str]:
        """git in the user's repository as the user runs it (git-remote-paude on PATH)."""
        env = self.paude.env()
        env["PATH"] = f"{self.paude.exe.parent}{os.pathsep}{env.get('PATH', '')}"
        return subprocess.run(["git", *args], cwd=self.paude.repo, env=env, capture_output=True,
                              text=True, check=False, timeout=180)

    def host(self) -> HostView:
        """Commits reachable from any ref of the user's repository."""
        listed = self.git("rev-list", "--all")
        assert listed.returncode == 0, listed.stderr
        return HostView(frozenset(listed.stdout.split()))

    def remotes(self) -> set[str]:
        """The user's repository's remotes."""
        return set(self.git("remote").stdout.split())

    def listed(self) -> dict[str, str]:
        """`paude list --json`: name -> status."""
        result = self.paude.run("list", "--json")
        assert result.returncode == 0, f"paude list --json failed:\n{result.stderr}"
        return {row["name"]: row["status"] for row in json.loads(result.stdout)}

    def session(self, name: str, listed: dict[str, str], remotes: set[str]) -> Observed:
        """One session's containers, networks, volume, remote and list row."""
        label = f"label=paude.session={name}"
        ps = podman("ps", "-a", "--filter", label, "--format", "json")
        # The JSON State is the plain state (running, exited, created), as `paude list` reads it.
        containers = {name: str(item.get("State", "")) for item in json.loads(ps.stdout or "[]")
                      for name in item.get("Names") or []}
        networks = podman("network", "ls", "-q", "--filter", label).stdout.split()
        volume = podman("volume", "exists", f"paude-{name}-workspace", check=False)
        return Observed({k: v.strip().lower() for k, v in containers.items()},
                        tuple(sorted(networks)), volume.returncode == 0,
                        f"paude-{name}" in remotes, listed.get(name))

    def missing_work(self, model: SessionModel) -> list[Work]:
        """The model's work items the session's workspace no longer has."""
        if not model.work:
            return []
        script = "\n".join(f"{KINDS[w.kind].probe(w)} || echo {i}"
                           for i, w in enumerate(model.work))
        result = podman("exec", model.agent, "sh", "-c", script, check=False)
        assert result.returncode == 0, f"probing the workspace failed: {result.stderr}"
        return [model.work[int(i)] for i in result.stdout.split()]

    def agent_sh(self, model: SessionModel, script: str) -> str:
        """The agent's own doing: a shell command in its container, as its user."""
        result = podman("exec", model.agent, "sh", "-c", script, check=False)
        assert result.returncode == 0, f"in the agent of {model.name}: {script}\n{result.stderr}"
        return result.stdout.strip()

    def snapshot(self, names: list[str]) -> tuple[object, ...]:
        """Everything a refused command must leave exactly as it was."""
        remotes = self.remotes()
        refs = self.git("for-each-ref", "--format=%(refname) %(objectname)").stdout
        definition = (self.paude.repo / "paude.yaml").read_text(encoding="utf-8")
        index = sorted(p.name for p in (self.paude.home / "sessions").glob("*.json"))
        sessions = tuple(self.session(n, {}, remotes) for n in names)
        return sessions, refs, definition, tuple(index)


def group_alive(pgid: int) -> bool:
    """True while a process of the group is still running (zombies do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


def end_leftovers(home: Path) -> list[int]:
    """Kill what killed paude runs left behind under this PAUDE_HOME (the engine's plugins
    run in process groups of their own); returns their pids."""
    ended = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if str(home).encode() not in cmdline.read_bytes():
                continue
            pid = int(cmdline.parent.name)
            group = os.getpgid(pid)
            if group == os.getpgrp():
                os.kill(pid, signal.SIGKILL)
            else:
                os.killpg(group, signal.SIGKILL)
            ended.append(pid)
        except (OSError, ValueError):
            continue
    return ended
