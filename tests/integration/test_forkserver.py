"""The plugins of a real plan and apply (real engine, policy pack and providers) start as
forks of paude's fork server, and nothing of it outlives the command."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.integration.helpers import Paude
from tests.integration.test_fault_injection import engine_processes

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi]


def served(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def no_strays(paude: Paude) -> list[int]:
    deadline = time.monotonic() + 10
    while engine_processes(paude.home) and time.monotonic() < deadline:
        time.sleep(0.2)
    return engine_processes(paude.home)


def test_a_plan_and_an_apply_fork_their_plugins_and_leave_nothing_running(
        paude: Paude, tmp_path: Path) -> None:
    log = tmp_path / "forkserver.log"
    paude.extra_env["PAUDE_FORKSERVER_LOG"] = str(log)
    paude.ok("plan", paude.session)
    assert sorted(served(log)) == ["served paude.enginewatch", "served paude.policies"]
    paude.ok("apply", paude.session, "--yes")
    lines = served(log)
    # The apply's preview (pack and provider) and its update (provider) were forks too.
    assert lines[2:].count("served paude.policies") == 1, lines
    assert lines[2:].count("served paude.enginewatch") == 2, lines
    assert not [line for line in lines if line.startswith("declined")], lines
    assert paude.run("plan", paude.session, "--detailed-exitcode").returncode == 0
    assert not no_strays(paude)


def test_without_the_server_the_plugins_start_as_before(paude: Paude, tmp_path: Path) -> None:
    # Control for the above: the log stays empty when there is no server, and the plan
    # still works (the shim is never run; the scripts call Python directly).
    log = tmp_path / "forkserver.log"
    paude.extra_env.update({"PAUDE_FORKSERVER_LOG": str(log), "PAUDE_NO_FORKSERVER": "1"})
    plan = paude.ok("plan", paude.session)
    assert "Plan:" in plan.stdout
    assert served(log) == []
    assert not no_strays(paude)
