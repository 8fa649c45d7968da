"""Several paude processes at once: different sessions of one repository apply side by side;
two changes of one session never interleave (the second waits, or fails saying who holds
the session), and the state stays consistent."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
import yaml

from tests.integration.helpers import BASE_IMAGE, Paude, podman, remove_session_objects
from tests.integration.test_git_sync import git as host_git

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

COUNT = 5


@pytest.fixture
def five(paude: Paude) -> Iterator[list[str]]:
    """Five sessions defined in the repository's paude.yaml, removed afterwards."""
    names = [f"{paude.session}-{i}" for i in range(1, COUNT + 1)]
    definition = {"version": 1,
                  "defaults": {"agent": {"install": "none", "command": ["bash"]},
                               "image": {"base": BASE_IMAGE}},
                  "sessions": {name: {} for name in names}}
    (paude.repo / "paude.yaml").write_text(yaml.safe_dump(definition))
    try:
        yield names
    finally:
        for name in names:
            remove_session_objects(name)


def running(name: str) -> set[str]:
    found = json.loads(podman("ps", "-a", "--format", "json", "--filter",
                              f"label=paude.session={name}").stdout or "[]")
    return {c["Names"][0] for c in found if str(c["State"]).lower() == "running"}


def start(paude: Paude, *args: str, env: dict[str, str] | None = None
          ) -> tuple[subprocess.Popen[str], list[str]]:
    """Start paude; its stderr lines are collected as they come."""
    proc = subprocess.Popen([str(paude.exe), *args], cwd=paude.repo,
                            env={**paude.env(), **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return proc, lines


def wait_for(lines: list[str], text: str, proc: subprocess.Popen[str], timeout: float = 300
             ) -> None:
    deadline = time.monotonic() + timeout
    while not any(text in line for line in lines):
        assert proc.poll() is None, f"exited {proc.returncode} before {text!r}:\n{''.join(lines)}"
        assert time.monotonic() < deadline, f"{text!r} never came:\n{''.join(lines)}"
        time.sleep(0.05)


def finish(proc: subprocess.Popen[str], lines: list[str]) -> tuple[int, str, str]:
    out, _ = proc.communicate(timeout=900)
    time.sleep(0.2)  # the reader thread drains the last lines
    return proc.returncode, out, "".join(lines)


def slow_change(paude: Paude, name: str) -> None:
    """Give the session a change that takes a while: its image is rebuilt with a setup step
    that sleeps (a unique token, so no earlier build is reused), and its agent replaced."""
    path = paude.repo / "paude.yaml"
    data = yaml.safe_load(path.read_text())
    data["sessions"][name] = {"image": {"base": BASE_IMAGE,
                                        "setup": f"sleep 15 # {time.time_ns()}"}}
    path.write_text(yaml.safe_dump(data))


def test_five_sessions_apply_in_parallel_and_one_session_takes_one_change_at_a_time(
        paude: Paude, five: list[str]) -> None:
    # Five applies of different sessions at once, in one repository and one PAUDE_HOME.
    runs = [start(paude, "apply", name, "--yes") for name in five]
    for name, (proc, lines) in zip(five, runs, strict=True):
        code, out, err = finish(proc, lines)
        assert code == 0, f"apply {name} exited {code}\n{out}\n{err}"
        assert f"Session {name} applied" in out
    for name in five:
        assert running(name) == {f"paude-{name}-{r}" for r in ("agent", "proxy", "gateway")}, name
    remotes = host_git(paude, "remote").split()
    assert sorted(r for r in remotes if r.startswith("paude-")) == sorted(
        f"paude-{n}" for n in five)
    listed = json.loads(paude.ok("list", "--json").stdout)
    assert {row["name"]: row["status"] for row in listed} == dict.fromkeys(five, "running")

    # Two changes of one session: while the first holds it, a second that will not wait
    # fails at once, naming the holder, and changes nothing.
    name = five[0]
    slow_change(paude, name)
    first, first_err = start(paude, "apply", name, "--yes")
    wait_for(first_err, "replacing agent-image...", first)
    refused = subprocess.run([str(paude.exe), "apply", name, "--yes"], cwd=paude.repo,
                             env={**paude.env(), "PAUDE_LOCK_WAIT": "0"}, capture_output=True,
                             text=True, timeout=300)
    assert first.poll() is None, "the first apply ended before the second was refused"
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert (f"error: session {name} is being changed by another paude process "
            f"(pid {first.pid})") in refused.stderr
    assert "Traceback" not in refused.stderr

    # ... and one that waits (the default) goes ahead once the first is done: nothing left.
    second, second_err = start(paude, "apply", name, "--yes")
    code, out, err = finish(first, first_err)
    assert code == 0, out + err
    assert "2 replaced" in out
    code, out, err = finish(second, second_err)
    assert code == 0, out + err
    assert (f"session {name} is being changed by another paude process (pid {first.pid}); "
            "waiting") in err
    assert "no changes" in out

    # The state is consistent: a plan is clean, no lock or unfinished operation remains.
    assert paude.run("plan", name, "--detailed-exitcode").returncode == 0
    state = paude.home / "state" / ".pulumi"
    assert list((state / "locks").rglob("*.json")) == []
    latest = json.loads((state / "stacks" / "paude" / f"{name}.json").read_text())
    assert not latest["checkpoint"]["latest"].get("pending_operations")
    assert running(name) == {f"paude-{name}-{r}" for r in ("agent", "proxy", "gateway")}

