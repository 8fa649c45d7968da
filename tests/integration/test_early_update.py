"""A new session's update starts beside its preview and waits at a gate (engine_early.py):
nothing exists until the user says yes, and a no leaves nothing behind, engine included.
Real paude on a terminal, the real engine and podman."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.integration.helpers import Paude, podman
from tests.integration.terminal import HostTerminal

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]


def session_objects(session: str) -> list[str]:
    """Every container, network and volume labelled with the session."""
    label = f"label=paude.session={session}"
    found = podman("ps", "-a", "--filter", label, "--format", "{{.Names}}").stdout.split()
    for kind in ("network", "volume"):
        found += podman(kind, "ls", "--filter", label, "--format", "{{.Name}}").stdout.split()
    return sorted(found)


def engine_updates(session: str) -> list[int]:
    """Engine processes running `pulumi up` on the session's stack."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # not a process, or gone
            continue
        words = [a.decode(errors="replace") for a in argv if a]
        if words and os.path.basename(words[0]) == "pulumi" and "up" in words \
                and any(w == session or w.endswith(f"/{session}") for w in words):
            pids.append(int(entry.name))
    return pids


def wait_until(condition: object, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.2)
    return False


def test_nothing_is_made_before_yes_and_no_leaves_nothing(paude: Paude,
                                                          terminal: HostTerminal) -> None:
    name = paude.session
    state = paude.home / "state" / ".pulumi" / "stacks" / "paude" / f"{name}.json"
    window = terminal.run("apply", name)
    terminal.wait_for(window, "Apply these changes", timeout=180)
    # The update's engine runs while the question waits (the control that the wait is a
    # real one: without the gate it would be making the session now).
    assert wait_until(lambda: engine_updates(name)), "no engine update started early"
    time.sleep(2)
    assert session_objects(name) == []
    terminal.type(window, "n", "Enter")
    screen = terminal.wait_for(window, "PAUDE-EXITED=", timeout=60)
    assert "nothing was changed" in screen, screen
    assert "PAUDE-EXITED=0" not in screen
    assert wait_until(lambda: not engine_updates(name)), "the refused update's engine lingers"
    assert session_objects(name) == []
    assert not state.exists(), "a refused new session left its stack"

    # Control: the same apply, answered yes, makes the session with the early update.
    window = terminal.run("apply", name)
    terminal.wait_for(window, "Apply these changes", timeout=180)
    terminal.type(window, "y", "Enter")
    screen = terminal.wait_for(window, "PAUDE-EXITED=", timeout=300)
    assert "PAUDE-EXITED=0" in screen, screen
    made = session_objects(name)
    assert {f"paude-{name}-agent", f"paude-{name}-proxy", f"paude-{name}-gateway",
            f"paude-{name}-internal", f"paude-{name}-workspace"} <= set(made), made
    assert state.exists()
    # The early update applied the whole plan: nothing is left to do (asked in the same
    # environment: the gateway's credentials are read from it).
    window = terminal.run("plan", name, "--detailed-exitcode")
    screen = terminal.wait_for(window, "PAUDE-EXITED=", timeout=120)
    assert "PAUDE-EXITED=0" in screen, screen
