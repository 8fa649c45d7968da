"""Image builds are sandboxed like the agent: RUN steps reach only the build allowlist,
through a build proxy; a repository's Dockerfile cannot reach past the repository."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.canary import Canary, curl, marker, start_canary, start_control
from tests.integration.helpers import BASE_IMAGE, Paude, podman

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

BUILD_EGRESS = "paude-build-egress"
ALLOWED, BLOCKED = "allowed.build.test", "blocked.build.test"


@pytest.fixture
def canary(paude: Paude) -> Iterator[Canary]:
    """A canary on the build proxies' network, under an allowed and a blocked name."""
    if podman("network", "exists", BUILD_EGRESS, check=False).returncode != 0:
        podman("network", "create", "--label", "paude.managed=true", BUILD_EGRESS)
    name = f"{paude.session}-build-canary"
    yield start_canary(name, BUILD_EGRESS, session=paude.session, aliases=[ALLOWED, BLOCKED])


def set_image(paude: Paude, setup: str, extra: str = "") -> None:
    (paude.repo / "paude.yaml").write_text(
        "version: 1\ndefaults:\n  agent: {install: none, command: [bash]}\n"
        f"  image:\n    base: {BASE_IMAGE}\n    build_domains: [{ALLOWED}]\n"
        f"    setup: {json.dumps(setup)}\n{extra}"
        f"sessions:\n  {paude.session}: {{}}\n", encoding="utf-8")


def test_build_steps_reach_only_the_build_allowlist(paude: Paude, canary: Canary) -> None:
    # Control: the canary answers a container with a direct path, under both names.
    control = start_control(f"{paude.session}-control", [BUILD_EGRESS], session=paude.session)
    seen = marker("control")
    assert curl(control, f"http://{BLOCKED}/{seen}").status == 200
    canary.wait_for(seen)

    allowed = marker("allowed")
    # The host's secrets (paude's own passphrase, a model key, anything exported) stay out
    # of the build: the step records the environment it got, into the image.
    host_secret = f"host-secret-{secrets.token_hex(6)}"
    paude.extra_env["AWS_SECRET_ACCESS_KEY"] = host_secret
    set_image(paude, f"env > /var/tmp/build-env; curl -fsS http://{ALLOWED}/{allowed}")
    paude.ok("apply", paude.session, "--yes")
    canary.wait_for(allowed)  # the build step went out, through the build proxy
    seen_env = podman("exec", f"paude-{paude.session}-agent", "cat", "/var/tmp/build-env").stdout
    assert "http_proxy=" in seen_env.lower()  # control: the step's environment was recorded
    for value in (host_secret, paude.env()["PULUMI_CONFIG_PASSPHRASE"],
                  paude.env()["ANTHROPIC_API_KEY"]):
        assert value not in seen_env

    blocked, direct = marker("blocked"), marker("direct")
    set_image(paude, f"curl -fsS -m 5 --noproxy '*' http://{canary.ip}/{direct} || true; "
                     f"curl -fsS http://{BLOCKED}/{blocked}")
    failed = paude.run("apply", paude.session, "--yes")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert BLOCKED in failed.stderr and "image.build_domains" in failed.stderr
    assert "Traceback" not in failed.stderr
    canary.assert_never([blocked, direct])
    # The sandbox goes with the build: no build proxy, holder or network is left.
    leftovers = podman("ps", "-a", "--filter", "label=paude.role=build-proxy", "-q").stdout
    assert leftovers.strip() == ""


def test_symlinked_build_context_is_refused_and_never_built(paude: Paude,
                                                            tmp_path: Path) -> None:
    token = f"canary-{secrets.token_hex(6)}"
    host = tmp_path / "host-folder"
    host.mkdir()
    (host / "secret.txt").write_text(token + "\n")
    (paude.repo / "docker").mkdir()
    (paude.repo / "docker" / "Dockerfile").write_text(
        f"FROM {BASE_IMAGE}\nCOPY . /ctx/\n")
    (paude.repo / "ctx").symlink_to(host)
    definition = ("version: 1\ndefaults:\n  agent: {install: none, command: [bash]}\n"
                  "  image:\n    dockerfile: docker/Dockerfile\n    context: CONTEXT\n"
                  f"sessions:\n  {paude.session}: {{}}\n")
    (paude.repo / "paude.yaml").write_text(definition.replace("CONTEXT", "ctx"))
    before = set(podman("images", "-q", "--no-trunc").stdout.split())
    refused = paude.run("apply", paude.session, "--yes")
    assert refused.returncode == 1
    assert "image.context" in refused.stderr and "outside the repository" in refused.stderr
    assert set(podman("images", "-q", "--no-trunc").stdout.split()) <= before

    # A Dockerfile reached through a folder linked to the host folder: refused too.
    (host / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nCOPY secret.txt /ctx/\n")
    (paude.repo / "hostdocker").symlink_to(host)
    (paude.repo / "paude.yaml").write_text(definition.replace(
        "docker/Dockerfile", "hostdocker/Dockerfile").replace("CONTEXT", "docker"))
    refused = paude.run("apply", paude.session, "--yes")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "image.dockerfile" in refused.stderr and "outside the repository" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert set(podman("images", "-q", "--no-trunc").stdout.split()) <= before
    (paude.repo / "hostdocker").unlink()

    # Control: the same files as a real folder of the repository build, and the file is
    # in the image, so the refusal above is what kept it out.
    (paude.repo / "ctx").unlink()
    (paude.repo / "real").mkdir()
    (paude.repo / "real" / "secret.txt").write_text(token + "\n")
    (paude.repo / "paude.yaml").write_text(definition.replace("CONTEXT", "real"))
    paude.ok("apply", paude.session, "--yes")
    shown = podman("exec", f"paude-{paude.session}-agent", "cat", "/ctx/secret.txt").stdout
    assert shown.strip() == token


def _sandbox_objects(session: str) -> list[str]:
    filters = ["--filter", "label=paude.build-sandbox=true", "--filter",
               f"label=paude.session={session}"]
    found = podman("ps", "-a", *filters, "--format", "{{.Names}}").stdout.split()
    return found + podman("network", "ls", *filters, "--format", "{{.Name}}").stdout.split()


def _kill_during_build(paude: Paude) -> set[str]:
    """Start an apply whose build sleeps, SIGKILL paude with its engine and providers (one
    process group, as a closed terminal would) once the build sandbox is up; what is left."""
    child = subprocess.Popen([str(paude.exe), "apply", paude.session, "--yes"], cwd=paude.repo,
                             env=paude.env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while len(_sandbox_objects(paude.session)) < 3 and time.monotonic() < deadline:
            assert child.poll() is None, child.communicate()
            time.sleep(0.5)
    finally:
        os.killpg(child.pid, signal.SIGKILL)
        child.communicate()
    return set(_sandbox_objects(paude.session))


def test_a_build_killed_with_paude_leaves_a_sandbox_its_destroy_removes(paude: Paude) -> None:
    # The setup step sleeps, so the kill lands while the build runs in its sandbox.
    set_image(paude, f"sleep 300 # {secrets.token_hex(4)}")
    left = _kill_during_build(paude)
    assert len(left) == 3, left  # control: holder, build proxy and their network stayed
    destroyed = paude.run("destroy", paude.session, "--yes")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
    assert _sandbox_objects(paude.session) == []


def test_the_next_build_of_the_session_removes_a_killed_build_s_sandbox(paude: Paude) -> None:
    set_image(paude, f"sleep 300 # {secrets.token_hex(4)}")
    stale = _kill_during_build(paude)
    assert len(stale) == 3, stale
    set_image(paude, f"true # {secrets.token_hex(4)}")
    paude.ok("apply", paude.session, "--yes")
    assert _sandbox_objects(paude.session) == []
    paude.ok("destroy", paude.session, "--yes")


def test_a_failed_rebuild_leaves_the_running_agent_alone(paude: Paude) -> None:
    name = paude.session
    set_image(paude, "true")
    paude.ok("apply", name, "--yes")
    agent = f"paude-{name}-agent"
    before = podman("inspect", "--format", "{{.Id}}", agent).stdout.strip()
    # The image is built before the old one is given up: a build that fails changes nothing.
    # The failing step also prints a clipboard write (OSC 52) meant for the user's terminal.
    set_image(paude, "printf '\\033]52;c;cHduZWQ=\\007' >&2; exit 3")
    failed = paude.run("apply", name, "--yes")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "exit code 3" in failed.stderr
    assert "\x1b" not in failed.stdout + failed.stderr and "\x07" not in failed.stderr
    assert "\\x1b]52;c;cHduZWQ=" in failed.stderr  # control: it arrived, shown escaped
    state = podman("inspect", "--format", "{{.Id}} {{.State.Running}}", agent).stdout.split()
    assert state == [before, "true"], state
    # The control: a rebuild that succeeds replaces the agent's container.
    set_image(paude, "echo rebuilt")
    paude.ok("apply", name, "--yes")
    assert podman("inspect", "--format", "{{.Id}}", agent).stdout.strip() != before


def test_the_ignore_file_podman_reads_decides_what_the_plan_sees(paude: Paude) -> None:
    # Both ignore files: podman reads .containerignore and builds setup.sh in, although
    # .dockerignore names it. An edit to setup.sh must then reach the plan.
    ctx = paude.repo / "docker"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {BASE_IMAGE}\nCOPY . /ctx/\n")
    (ctx / ".dockerignore").write_text("setup.sh\n")
    (ctx / ".containerignore").write_text("*.log\n")
    (ctx / "setup.sh").write_text("echo one\n")
    (ctx / "build.log").write_text("one\n")
    (paude.repo / "paude.yaml").write_text(
        "version: 1\ndefaults:\n  agent: {install: none, command: [bash]}\n"
        "  image: {dockerfile: docker/Dockerfile, context: docker}\n"
        f"sessions:\n  {paude.session}: {{}}\n", encoding="utf-8")
    paude.ok("apply", paude.session, "--yes")
    agent = f"paude-{paude.session}-agent"
    assert podman("exec", agent, "cat", "/ctx/setup.sh").stdout == "echo one\n"
    assert podman("exec", agent, "test", "-e", "/ctx/build.log", check=False).returncode == 1

    # Control: a file the build leaves out changes nothing.
    (ctx / "build.log").write_text("two\n")
    data = paude.plan_json()
    assert data["has_changes"] is False and data["definition_changes"] == [], data

    (ctx / "setup.sh").write_text("echo two\n")
    data = paude.plan_json()
    assert "image-rebuilt" in {s["kind"] for s in data["summary"]}, data["summary"]
    assert "docker/setup.sh" in {c["file"] for c in data["definition_changes"]}
    paude.ok("apply", paude.session, "--yes")
    assert podman("exec", agent, "cat", "/ctx/setup.sh").stdout == "echo two\n"
