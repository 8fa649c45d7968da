"""Upgrades: a session applied by the previous release plans only this release's additions
and destroys under this code (stack state, provider classes stored by reference, the
session index, the remote).

The previous release is a pinned revision of this repository, PAUDE_UPGRADE_FROM
(default e5c3518, the last commit of main before the machine settings file took over
the proxy's base image), installed from `git archive` into its own virtualenv. It needs
the repository's history: a shallow clone fails here in CI and skips elsewhere."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
import venv
from pathlib import Path

import pytest

from paude import tarsafe
from tests.conftest import IN_CI
from tests.integration.helpers import BASE_IMAGE, Paude, podman

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
UPGRADE_FROM = os.environ.get("PAUDE_UPGRADE_FROM", "e5c3518")
# What the first apply of this release changes in a session the previous release made, and
# why: containers gain resource limits, the model gateway is added (new proxy image, which
# also runs the gateway; the agent reaches the model through it: new environment, secret
# environment and host entries; the proxy joins the gateway's network), the session's TLS
# inspection CA is made (squid-openssl in the proxy image; the agent trusts the CA), and the
# containers are replaced on the new images. Images are built before the old ones are given
# up, so the engine reports every input that changed, not only the image. The workspace
# volume stays.
UPGRADE_CHANGES = {"agent": {"image", "image_id", "env", "secret_env", "add_hosts", "limits"},
                   "agent-image": {"tag"},
                   "proxy": {"image", "image_id", "env", "secret_env", "networks", "limits"},
                   "proxy-image": {"tag"},
                   "gateway": {"create"}, "session-ca": {"create"}}


def previous_release(dest: Path) -> Path:
    """The previous release's source tree, extracted from the repository's history."""
    found = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", "--quiet",
                            f"{UPGRADE_FROM}^{{commit}}"], capture_output=True, text=True)
    if found.returncode != 0:
        message = (f"revision {UPGRADE_FROM} (PAUDE_UPGRADE_FROM) is not in {REPO}: the "
                   "upgrade test installs the previous release from the repository's history; "
                   "clone with full history (`git fetch --unshallow`)")
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar",
                              found.stdout.strip()], capture_output=True, check=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        for member in tar:  # under the data filter's rules on every Python 3.11
            tarsafe.extract(tar, member, dest)
    return dest


@pytest.fixture(scope="module")
def old_paude_exe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`paude` of the previous release, pip-installed into its own virtualenv."""
    src = previous_release(tmp_path_factory.mktemp("old-src"))
    env_dir = tmp_path_factory.mktemp("old-venv")
    venv.EnvBuilder(with_pip=True).create(env_dir)
    subprocess.run([env_dir / "bin" / "python", "-m", "pip", "install", "--quiet", str(src)],
                   check=True)
    return env_dir / "bin" / "paude"


def labelled(name: str) -> list[str]:
    label = f"label=paude.session={name}"
    found = []
    for kind in (["ps", "-a"], ["network", "ls"], ["volume", "ls"]):
        found += podman(*kind, "-q", "--filter", label).stdout.split()
    return found


def test_a_session_of_the_previous_release_plans_clean_and_destroys(
        paude: Paude, old_paude_exe: Path) -> None:
    name = paude.session
    # paude.yaml in the old style: image.base names the test base, which the old release
    # also builds the proxy on. This release takes the proxy's base from the machine's
    # config.yaml, here the same image, so the proxy's tag is unchanged.
    assert f"base: {BASE_IMAGE}" in (paude.repo / "paude.yaml").read_text()
    (paude.home / "config.yaml").write_text(
        f"version: 1\nimage: {{base: {BASE_IMAGE}}}\nproxy: {{base: {BASE_IMAGE}}}\n")
    (paude.repo / "README.md").write_text("# project\n")
    for args in (["checkout", "-q", "-b", "main"], ["add", "."],
                 ["-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-qm",
                  "init"]):
        subprocess.run(["git", "-C", str(paude.repo), *args], check=True)
    # The previous release's policy pack needs PYTHONUNBUFFERED to announce its port (this
    # release starts it with -u): without it, its plans hang.
    old = Paude(old_paude_exe, paude.home, paude.repo, name,
                extra_env={"PYTHONUNBUFFERED": "1"})
    old.ok("apply", name, "--yes")
    assert old.run("plan", name, "--detailed-exitcode").returncode == 0
    old.ok("remote", "add", "--push", name)
    commit = podman("exec", f"paude-{name}-agent", "sh", "-c",
                    "cd /workspace && echo work > agent.txt && git add agent.txt && "
                    "git commit -qm 'agent work' && git rev-parse HEAD").stdout.strip()

    # This release: the old stack plans with exactly what this release adds to a session
    # (UPGRADE_CHANGES) and nothing else; the workspace is never touched.
    planned = paude.run("plan", name, "--json")
    assert planned.returncode == 0, f"plan after the upgrade:\n{planned.stdout}{planned.stderr}"
    changed = {r["resource"]: set(r["replace_because"] or r["changed"]) or {r["action"]}
               for r in json.loads(planned.stdout)["resources"] if r["action"] != "same"}
    # An image the old release adopted from an earlier run may predate this machine's
    # current base (a base rebuilt since): this release says so too. That is the machine's
    # doing, not the upgrade's, and the tag changes either way.
    for image in ("agent-image", "proxy-image"):
        changed.get(image, set()).discard("base_changed")
    assert changed == UPGRADE_CHANGES, planned.stdout
    listed = json.loads(paude.ok("list", "--json").stdout)
    assert [(r["name"], r["status"]) for r in listed] == [(name, "running")]
    status = json.loads(paude.ok("status", name, "--json").stdout)
    assert status["unfetched_commits"] == 1

    # The upgrade's apply keeps the agent's commit, and then the plan is clean.
    paude.ok("apply", name, "--yes")
    assert paude.run("plan", name, "--detailed-exitcode").returncode == 0
    head = podman("exec", f"paude-{name}-agent", "git", "-C", "/workspace", "rev-parse", "HEAD")
    assert head.stdout.strip() == commit

    # The unfetched commit holds the workspace: without --force, it stays.
    refused = paude.run("destroy", name, "--yes", "--delete-data")
    assert refused.returncode == 1 and "1 commit" in refused.stderr, refused.stderr
    paude.ok("destroy", name, "--yes")
    assert labelled(name) == [f"paude-{name}-workspace"]
    assert f"paude-{name}" not in subprocess.run(
        ["git", "-C", str(paude.repo), "remote"], capture_output=True, text=True).stdout.split()

    # Re-applied by this release, the kept workspace still has the agent's commit.
    paude.ok("apply", name, "--yes")
    head = podman("exec", f"paude-{name}-agent", "git", "-C", "/workspace", "rev-parse", "HEAD")
    assert head.stdout.strip() == commit
    paude.ok("destroy", name, "--yes", "--delete-data", "--force")
    assert labelled(name) == []
