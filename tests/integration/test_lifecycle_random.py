"""Random lifecycles: seeded sequences of paude commands, agent work, git and killed applies
on two sessions of one repository, on real podman, engine and git, with the invariants
checked after every step:

- no work is lost without --force: a workspace volume only goes when every commit the
  agent made in it is reachable from a ref of the user's repository, unless forced;
- a plan right after a successful apply is clean;
- `paude list --json` agrees with podman, and a destroyed session leaves no containers
  or networks behind;
- a refused command (invalid in the current state) changes nothing.

PAUDE_LIFECYCLE_OPS (operations, default 50: 5 to 8 minutes on a busy 2-core machine) and
PAUDE_LIFECYCLE_SEED replay a run (`random` draws a new seed); PAUDE_LIFECYCLE_KILLS=0
leaves out the killed applies. A failure prints the seed and the operation log (kills
land at moments that vary from run to run, so a replay follows the same choices, not
always the same states). `make test-lifecycle` runs 150 operations.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.helpers import BASE_IMAGE, Paude, podman, remove_session_objects
from tests.integration.lifecycle_ops import Lifecycle
from tests.integration.lifecycle_world import Observer, end_leftovers
from tests.integration.stand_in_agent import SOURCE
from tests.integration.test_quickstart import agent_exec, project

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

OPS = int(os.environ.get("PAUDE_LIFECYCLE_OPS", "50"))
_SEED = os.environ.get("PAUDE_LIFECYCLE_SEED", "20261202")
SEED = random.SystemRandom().randrange(1 << 32) if _SEED == "random" else int(_SEED)
KILLS = os.environ.get("PAUDE_LIFECYCLE_KILLS", "1") != "0"
GITCONFIG = "[user]\n\tname = Host User\n\temail = host@example.invalid\n"


@pytest.fixture
def lifecycle_repo(paude: Paude) -> Iterator[Paude]:
    """A repository with one session defined (the second one comes from `paude create`),
    the user's git identity, and cleanup of both sessions."""
    definition = {"version": 1, "defaults": {
        "agent": {"install": "none", "command": ["python3", "-c", SOURCE]},
        "image": {"base": BASE_IMAGE}}, "sessions": {paude.session: {}}}
    (paude.repo / "paude.yaml").write_text(yaml.safe_dump(definition), encoding="utf-8")
    (paude.repo / "README.md").write_text("# project\n", encoding="utf-8")
    (paude.home.parent / "user-home" / ".gitconfig").write_text(GITCONFIG, encoding="utf-8")
    observer = Observer(paude)
    for args in (["checkout", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "init"]):
        assert observer.git(*args).returncode == 0
    try:
        yield paude
    finally:
        end_leftovers(paude.home)
        remove_session_objects(f"{paude.session}-b")


def test_random_lifecycle(lifecycle_repo: Paude) -> None:
    log: list[str] = []
    world = Lifecycle(lifecycle_repo, random.Random(SEED), log, kills=KILLS)
    started = time.monotonic()
    done = 0
    try:
        for number in range(1, OPS + 1):
            world.step(number)
            done = number
    except BaseException as exc:
        report = "\n".join(log)
        raise AssertionError(
            f"{type(exc).__name__}: {exc}\n\nreplay: PAUDE_LIFECYCLE_SEED={SEED} "
            f"PAUDE_LIFECYCLE_OPS={OPS} (failed at operation {done + 1})\n"
            f"operations:\n{report}") from exc
    finally:
        Path(lifecycle_repo.home.parent / "lifecycle.log").write_text("\n".join(log) + "\n")
    mix = ", ".join(f"{op} {n}" for op, n in sorted(world.mix.items()))
    print(f"\nlifecycle seed {SEED}: {done} operations in {time.monotonic() - started:.0f}s: {mix}")


def test_delete_refused_for_unfetched_work_leaves_the_session_as_it_was(paude: Paude) -> None:
    # Found by the random lifecycle: a refused delete started a stopped session (and its
    # agent), and a workspace kept by destroy was deleted unchecked, commits and all.
    name = project(paude)
    paude.ok("create", "--yolo", name)
    paude.ok("remote", "add", "--push", name)
    agent_exec(name, "sh", "-c", "cd /workspace && echo work > agent.txt && git add agent.txt "
               "&& git commit -qm 'agent work'")
    paude.ok("stop", name)
    refused = paude.run("delete", name, "--confirm")
    assert refused.returncode == 1 and "1 commit" in refused.stderr, refused.stderr
    states = podman("ps", "-a", "--filter", f"label=paude.session={name}", "--format", "json")
    assert {c["State"] for c in json.loads(states.stdout)} == {"exited"}

    paude.ok("destroy", name, "--yes")  # keeps the workspace, with the unfetched commit
    for args in (["destroy", name, "--yes", "--delete-data"], ["delete", name, "--confirm"]):
        refused = paude.run(*args)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"cannot check session {name}" in refused.stderr
        assert f"paude apply {name}" in refused.stderr
        assert podman("volume", "exists", f"paude-{name}-workspace", check=False).returncode == 0

    # The way out the message gives: apply re-attaches the workspace, fetch, then delete.
    paude.ok("apply", name, "--yes")
    assert Observer(paude).git("fetch", "-q", f"paude-{name}").returncode == 0
    paude.ok("delete", name, "--confirm")
    assert podman("volume", "exists", f"paude-{name}-workspace", check=False).returncode == 1


def test_destroy_removes_objects_a_killed_apply_never_recorded(paude: Paude) -> None:
    # Found by the random lifecycle: a create killed while the engine made a network left
    # the network outside the stack's state, and destroy (then delete) left it behind.
    name = project(paude)
    paude.ok("create", "--yolo", name)
    mine = ["--label=paude.managed=true", f"--label=paude.session={name}",
            f"--label=paude.repository={paude.repo.resolve()}"]
    podman("network", "create", *mine, f"paude-{name}-unrecorded")
    podman("create", "--name", f"paude-{name}-unrecorded", *mine, BASE_IMAGE, "true")
    # The control: the same session name from another repository is not this session's.
    podman("network", "create", "--label=paude.managed=true", f"--label=paude.session={name}",
           "--label=paude.repository=/elsewhere", f"paude-{name}-elsewhere")

    paude.ok("destroy", name, "--yes")
    label = f"label=paude.session={name}"
    assert podman("ps", "-a", "-q", "--filter", label).stdout == ""
    assert podman("network", "ls", "--filter", label, "--format", "{{.Name}}").stdout.split() == [
        f"paude-{name}-elsewhere"]
    assert podman("volume", "exists", f"paude-{name}-workspace", check=False).returncode == 0
