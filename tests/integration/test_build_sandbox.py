"""Image builds are sandboxed like the agent: RUN steps reach only the build allowlist,
through a build proxy; a repository's Dockerfile cannot reach past the repository."""

from __future__ import annotations

import json
import secrets
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
    set_image(paude, f"curl -fsS http://{ALLOWED}/{allowed}")
    paude.ok("apply", paude.session, "--yes")
    canary.wait_for(allowed)  # the build step went out, through the build proxy

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

    # Control: the same files as a real folder of the repository build, and the file is
    # in the image, so the refusal above is what kept it out.
    (paude.repo / "ctx").unlink()
    (paude.repo / "real").mkdir()
    (paude.repo / "real" / "secret.txt").write_text(token + "\n")
    (paude.repo / "paude.yaml").write_text(definition.replace("CONTEXT", "real"))
    paude.ok("apply", paude.session, "--yes")
    shown = podman("exec", f"paude-{paude.session}-agent", "cat", "/ctx/secret.txt").stdout
    assert shown.strip() == token
