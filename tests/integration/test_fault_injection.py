"""Fault injection: paude killed with SIGKILL at many points of create, apply, destroy and
delete. Running the same command again must converge with no manual step: exit 0, exactly
the session's objects and no others, no backend lock or unfinished operation left in the
state, no engine process left running, and no agent commit lost.

The kill points are seeded (PAUDE_FAULT_SEED) and spread over each command's run: half at
a progress line the command prints (an engine step starting or finishing), half after a
delay drawn across the command's measured duration (covering the work before and after
the engine: stack selection, plan, index, git remote). Half kill paude alone (its engine
and plugins are orphaned), half its whole process group. PAUDE_FAULT_POINTS sets how many
kills (default 20; `make test-faults` runs 60).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.integration.helpers import Paude, podman
from tests.integration.test_git_sync import git as host_git
from tests.integration.test_quickstart import agent_exec, project

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

POINTS = int(os.environ.get("PAUDE_FAULT_POINTS", "20"))
SEED = int(os.environ.get("PAUDE_FAULT_SEED", "11"))
# Full runs also check that a plan after every converged apply or create is clean.
FULL = POINTS > 20

# The command cycle, from a running session: every command is killed equally often.
CYCLE = ("apply", "destroy", "create", "delete", "create")
AFTER = {"apply": "up", "create": "up", "destroy": "down", "delete": "gone"}
# Progress lines each command prints (stderr), where a kill lands inside the engine's work.
MARKERS = {
    "apply": ("replacing proxy...", "replaced proxy"),
    "create": ("creating internal-network...", "creating workspace...",
               "creating proxy-image...", "creating agent-image...", "created egress-network",
               "creating proxy...", "creating agent...", "created proxy", "created agent"),
    "destroy": ("deleting agent...", "deleting proxy...", "deleted agent", "deleted proxy",
                "deleting internal-network...", "deleting egress-network...",
                "releasing (kept on disk) agent-image...", "kept proxy-image"),
}
MARKERS["delete"] = MARKERS["destroy"]
# The line a command prints last: a kill after it interrupted nothing.
FINISHED = {"apply": "applied in", "create": "Next: `paude start",
            "destroy": "destroyed in", "delete": "deleted in"}


@dataclass(frozen=True)
class KillPoint:
    """Where one run is killed."""

    command: str
    marker: str | None  # kill when this progress line appears, after `delay` more seconds
    delay: float  # or, without a marker, this many seconds after the start
    group: bool  # the whole process group, or paude alone

    def describe(self) -> str:
        where = f"at {self.marker!r}+{self.delay:.2f}s" if self.marker else f"at {self.delay:.2f}s"
        return f"{self.command} {where} ({'group' if self.group else 'paude alone'})"


@dataclass
class Outcome:
    """What a killed run got through."""

    killed: bool
    finished: bool
    stderr: list[str] = field(default_factory=list)
    stdout: list[str] = field(default_factory=list)


def argv(command: str, name: str) -> list[str]:
    return {"apply": ["apply", name, "--yes"], "create": ["create", name],
            "destroy": ["destroy", name, "--yes"],
            "delete": ["delete", name, "--confirm"]}[command]


def run_and_kill(paude: Paude, point: KillPoint) -> Outcome:
    """Start the command and SIGKILL it at the point."""
    proc = subprocess.Popen([str(paude.exe), *argv(point.command, paude.session)],
                            cwd=paude.repo, env=paude.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    outcome = Outcome(killed=False, finished=False)
    seen = threading.Event()

    def read(stream: object, lines: list[str], watch: bool) -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.append(line)
            if watch and point.marker and point.marker in line:
                seen.set()

    readers = [threading.Thread(target=read, args=(proc.stderr, outcome.stderr, True),
                                daemon=True),
               threading.Thread(target=read, args=(proc.stdout, outcome.stdout, False),
                                daemon=True)]
    for reader in readers:
        reader.start()
    started = time.monotonic()
    if point.marker:
        while not seen.wait(0.05) and proc.poll() is None:
            pass
        deadline = time.monotonic() + point.delay
    else:
        deadline = started + point.delay
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if proc.poll() is None:
        if point.group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    for reader in readers:
        reader.join(timeout=5)
    outcome.killed = proc.returncode == -signal.SIGKILL
    outcome.finished = FINISHED[point.command] in "".join(outcome.stdout)
    return outcome


def labelled(kind: str, name: str) -> set[str]:
    """The session's objects of one kind; containers as "NAME STATE"."""
    label = f"label=paude.session={name}"
    if kind == "container":
        found = json.loads(podman("ps", "-a", "--format", "json", "--filter", label).stdout
                           or "[]")
        return {f"{c['Names'][0]} {str(c['State']).lower()}" for c in found}
    out = podman(kind, "ls", "--format", "{{.Name}}", "--filter", label).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


def expected_objects(state: str, name: str, networks: set[str]) -> dict[str, set[str]]:
    if state == "up":
        return {"container": {f"paude-{name}-agent running", f"paude-{name}-proxy running",
                              f"paude-{name}-gateway running"},
                "network": networks, "volume": {f"paude-{name}-workspace"}}
    if state == "down":
        return {"container": set(), "network": set(), "volume": {f"paude-{name}-workspace"}}
    return {"container": set(), "network": set(), "volume": set()}


def state_problems(paude: Paude) -> list[str]:
    """Backend locks and unfinished operations left in the session's state."""
    problems = [f"lock left: {p}" for p in
                (paude.home / "state" / ".pulumi" / "locks").rglob("*.json")]
    stack = paude.home / "state" / ".pulumi" / "stacks" / "paude" / f"{paude.session}.json"
    if stack.exists():
        latest = json.loads(stack.read_text())["checkpoint"].get("latest") or {}
        problems += [f"pending operation: {op['type']} {op['resource']['urn']}"
                     for op in latest.get("pending_operations") or []]
    return problems


def engine_processes(home: Path) -> list[int]:
    """Processes started for this test's PAUDE_HOME: paude, its engine and plugins (not
    podman's own daemons, which inherit the environment of whoever started them)."""
    marker = f"PAUDE_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")[:6]
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        # paude, its engine, plugins and their shims, and its fork server (a fork of paude).
        ours = (any("pulumi" in arg or arg.startswith("paude.") for arg in argv)
                or any(Path(arg).name == "paude" for arg in argv[:2])
                or any(Path(arg).name == "plugin_shim.py" for arg in argv))
        if ours and state != "Z":
            found.append(int(entry.name))
    return found


def _describe(pid: int) -> str:
    try:
        ppid = (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return f"{pid} (gone)"
    return f"{pid} (parent {ppid}): {cmdline}"


def toggle_domains(paude: Paude) -> None:
    """Change the session's allowlist so that an apply has work (the proxy is replaced)."""
    path = paude.repo / "paude.yaml"
    data = yaml.safe_load(path.read_text())
    spec = data.setdefault("sessions", {}).setdefault(paude.session, {}) or {}
    spec["allowed_domains"] = (["default"] if spec.get("allowed_domains") == ["default", "github"]
                               else ["default", "github"])
    data["sessions"][paude.session] = spec
    path.write_text(yaml.safe_dump(data))


def agent_commit(paude: Paude, text: str) -> str:
    name = paude.session
    agent_exec(name, "sh", "-c", f"cd /workspace && echo {text} >> agent.txt && git add agent.txt "
               "&& git -c user.name=Agent -c user.email=agent@example.com commit -qm agent")
    return agent_exec(name, "git", "-C", "/workspace", "rev-parse", "HEAD").strip()


def plan_points(rng: random.Random) -> Iterator[KillPoint]:
    """An endless, seeded stream of kill points following the command cycle."""
    step = 0
    while True:
        command = CYCLE[step % len(CYCLE)]
        step += 1
        group = rng.random() < 0.5
        if rng.random() < 0.5:
            yield KillPoint(command, rng.choice(MARKERS[command]), rng.uniform(0.0, 0.4), group)
        else:
            yield KillPoint(command, None, rng.uniform(0.03, 0.97), group)  # x duration


@pytest.fixture
def session(paude: Paude) -> Iterator[Paude]:
    try:
        yield paude
    finally:
        for pid in engine_processes(paude.home):
            # Stragglers of this test's own runs (the test fails on them first).
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_sigkill_at_any_point_then_the_same_command_converges(session: Paude) -> None:
    paude = session
    name = project(paude)
    paude.extra_env["PAUDE_LOCK_WAIT"] = "120"  # an orphaned engine may finish its step first
    # Warm-up: the running session, its objects, an unfetched agent commit.
    began = time.monotonic()
    paude.ok("create", name)
    durations = {"create": time.monotonic() - began}
    networks = labelled("network", name)
    assert len(networks) == 2, networks
    paude.ok("remote", "add", "--push", name)
    commit = agent_commit(paude, "first")

    rng = random.Random(SEED)
    points = plan_points(rng)
    state, survived, attempts = "up", 0, 0
    log: list[str] = []
    while survived < POINTS:
        attempts += 1
        assert attempts <= POINTS * 3, f"too few kills landed: {survived} of {attempts}\n" + \
            "\n".join(log)
        point = next(points)
        if point.command == "apply":
            toggle_domains(paude)
        if point.command == "delete":
            host_git(paude, "fetch", "-q", f"paude-{name}")  # a delete refuses unfetched work
        if point.marker is None:
            estimate = durations.get(point.command, durations["create"])
            point = KillPoint(point.command, None, point.delay * estimate, point.group)
        began = time.monotonic()
        outcome = run_and_kill(paude, point)
        killed_after = time.monotonic() - began

        # The same command again; a destroy that had finished has nothing left to do.
        began = time.monotonic()
        again = paude.run(*argv(point.command, name))
        took = time.monotonic() - began
        log.append(f"{point.describe()}: {'killed' if outcome.killed else 'not killed'}"
                   f"{' after it finished' if outcome.finished else ''} ({killed_after:.1f}s), "
                   f"again in {took:.1f}s")
        finished_destroy = point.command == "destroy" and outcome.finished
        assert again.returncode == 0 or finished_destroy, (
            f"{point.describe()}: the second run exited {again.returncode}\n"
            f"killed run stderr:\n{''.join(outcome.stderr)}\n"
            f"second run stdout:\n{again.stdout}\nstderr:\n{again.stderr}")
        durations[point.command] = took
        if outcome.killed and not outcome.finished:
            survived += 1
        previous, state = state, AFTER[point.command]

        # Exactly the session's objects, nothing half-made or left over.
        want = expected_objects(state, name, networks)
        for kind, names in want.items():
            assert labelled(kind, name) == names, (
                f"{point.describe()}: {kind}s {labelled(kind, name)} != {names}\n{again.stderr}")
        assert state_problems(paude) == [], point.describe()
        indexed = (paude.home / "sessions" / f"{name}.json").exists()
        assert indexed == (state == "up"), f"{point.describe()}: index entry {indexed}"
        remotes = host_git(paude, "remote").split()
        assert (f"paude-{name}" in remotes) == (state == "up"), f"{point.describe()}: {remotes}"

        # No commit lost: the agent's commit is in the workspace, or on the host once deleted.
        if state == "up" and previous == "gone":
            paude.ok("remote", "add", "--push", name)
            commit = agent_commit(paude, f"point-{survived}")
        elif state == "up":
            assert podman("exec", f"paude-{name}-agent", "git", "-C", "/workspace", "cat-file",
                          "-e", commit, check=False).returncode == 0, point.describe()
        elif state == "gone":
            host_git(paude, "cat-file", "-e", commit)
        if FULL and state == "up":
            plan = paude.run("plan", name, "--detailed-exitcode")
            assert plan.returncode == 0, f"{point.describe()}: plan not clean\n{plan.stdout}"

    # Nothing of the killed runs is still running: orphaned engines and plugins ended.
    deadline = time.monotonic() + 15
    while engine_processes(paude.home) and time.monotonic() < deadline:
        time.sleep(0.5)
    stray = engine_processes(paude.home)
    assert not stray, "\n".join(_describe(pid) for pid in stray)
    print(f"\nfault injection (seed {SEED}): {survived} kills survived in {attempts} runs")
    print("\n".join(log))


def test_a_destroy_after_a_killed_create_removes_what_the_create_was_making(
        session: Paude) -> None:
    # Not the same command again: the create is killed once its agent container exists but
    # before the engine recorded it, and the user destroys the session instead.
    paude = session
    name = project(paude)
    proc = subprocess.Popen([str(paude.exe), "create", name], cwd=paude.repo,
                            env=paude.env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while podman("container", "exists", f"paude-{name}-agent", check=False).returncode != 0:
        assert proc.poll() is None and time.monotonic() < deadline, "no agent container came"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert labelled("container", name)  # the killed apply left objects behind

    destroyed = paude.ok("destroy", name, "--yes")
    assert "resolved what a killed paude left unfinished" in destroyed.stderr
    assert expected_objects("down", name, set()) == {
        kind: labelled(kind, name) for kind in ("container", "network", "volume")}
    assert state_problems(paude) == []
    # The control: the session comes back as a whole.
    paude.ok("apply", name, "--yes")
    assert labelled("container", name) == {f"paude-{name}-agent running",
                                           f"paude-{name}-proxy running",
                                           f"paude-{name}-gateway running"}
