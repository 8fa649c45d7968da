"""A base image rebuilt under the same name reaches the session's images.

Image tags hash the build inputs, and a base enters them by name: `make base-image` or
`make proxy-base --refresh` (security updates, a new squid) keep every tag. The plan must
still say the images are rebuilt, and apply must run the session on the new bases, with
the workspace kept. Real podman, real engine."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.helpers import BASE_IMAGE, PROXY_BASE_IMAGE, Paude, podman

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]


def build_base(tag: str, parent: str, content: str, tmp_path: Path) -> str:
    """A base image `tag` on `parent` with /etc/paude-test-base holding `content`; its id."""
    context = tmp_path / f"ctx-{content}"
    context.mkdir(exist_ok=True)
    (context / "Containerfile").write_text(
        f"FROM {parent}\nLABEL paude.test-base={tag}\n"
        f"RUN echo {content} > /etc/paude-test-base\n", encoding="utf-8")
    subprocess.run(["podman", "build", "--quiet", "--network", "none", "--pull=never",
                    "--tag", tag, str(context)], check=True, capture_output=True, text=True)
    return podman("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()


def actions(plan: dict[str, object]) -> dict[str, str]:
    resources = plan["resources"]
    assert isinstance(resources, list)
    return {r["resource"]: r["action"] for r in resources}


@pytest.fixture
def bases(paude: Paude, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Test-owned agent and proxy bases, named in the session's paude.yaml and the
    machine's settings; removed afterwards with the images built on them."""
    agent_base = f"localhost/paude-test-base-{paude.session}:1"
    proxy_base = f"localhost/paude-test-proxy-base-{paude.session}:1"
    build_base(agent_base, BASE_IMAGE, "one", tmp_path)
    build_base(proxy_base, PROXY_BASE_IMAGE, "one", tmp_path)
    (paude.home / "config.yaml").write_text(
        f"version: 1\nimage: {{base: {BASE_IMAGE}}}\nproxy: {{base: {proxy_base}}}\n",
        encoding="utf-8")
    (paude.repo / "paude.yaml").write_text(
        f"version: 1\ndefaults:\n  agent: {{install: none, command: [bash]}}\n"
        f"  image:\n    base: {agent_base}\nsessions:\n  {paude.session}: {{}}\n",
        encoding="utf-8")
    try:
        yield agent_base, proxy_base
    finally:
        paude.run("destroy", paude.session, "--yes", "--delete-data", "--force")
        # Images inherit their base's labels: this finds the bases and everything built on
        # them (also what a rebuild left untagged), and nothing of anybody else's.
        for _ in range(3):  # a parent goes only after its children
            ids = {i for base in (agent_base, proxy_base) for i in podman(
                "images", "--all", "--quiet", "--filter", f"label=paude.test-base={base}",
                check=False).stdout.split()}
            if not ids:
                break
            for ident in ids:
                podman("rmi", "--force", ident, check=False)


def in_agent(name: str, *argv: str) -> str:
    return podman("exec", f"paude-{name}-agent", *argv).stdout.strip()


def in_proxy(name: str) -> str:
    return podman("exec", f"paude-{name}-proxy", "cat", "/etc/paude-test-base").stdout.strip()


def test_a_rebuilt_base_rebuilds_the_images_on_it_and_keeps_the_workspace(
        paude: Paude, bases: tuple[str, str], tmp_path: Path) -> None:
    name = paude.session
    agent_base, proxy_base = bases
    paude.ok("apply", name, "--yes")
    assert in_agent(name, "cat", "/etc/paude-test-base") == "one"
    assert in_proxy(name) == "one"
    podman("exec", f"paude-{name}-agent", "sh", "-c", "echo keep-me > /workspace/marker")

    # Control: nothing changed, nothing to do (so what follows is the bases' doing).
    same = paude.run("plan", name, "--detailed-exitcode")
    assert same.returncode == 0, same.stdout + same.stderr

    # The agent's base is rebuilt under the same name: only the agent image and container.
    build_base(agent_base, BASE_IMAGE, "two", tmp_path)
    changed = paude.run("plan", name, "--detailed-exitcode")
    assert changed.returncode == 2, changed.stdout + changed.stderr
    assert "agent image rebuilt" in changed.stdout
    assert f"base image {agent_base} changed since this image was built" in changed.stdout
    plan = json.loads(paude.ok("plan", name, "--json").stdout)
    moved = {k: v for k, v in actions(plan).items() if v != "same"}
    assert moved == {"agent-image": "replace", "agent": "replace"}, moved

    paude.ok("apply", name, "--yes")
    assert in_agent(name, "cat", "/etc/paude-test-base") == "two"
    assert in_agent(name, "cat", "/workspace/marker") == "keep-me"
    assert in_proxy(name) == "one"
    settled = paude.run("plan", name, "--detailed-exitcode")
    assert settled.returncode == 0, "a rebuilt image must settle: " + settled.stdout

    # The proxy's base (a squid security update): the proxy image and the two containers
    # that run it, the proxy and the credential gateway.
    build_base(proxy_base, PROXY_BASE_IMAGE, "two", tmp_path)
    plan = json.loads(paude.ok("plan", name, "--json").stdout)
    moved = {k: v for k, v in actions(plan).items() if v != "same"}
    assert moved == {"proxy-image": "replace", "proxy": "replace", "gateway": "replace"}, moved
    paude.ok("apply", name, "--yes")
    assert in_proxy(name) == "two"
    assert in_agent(name, "cat", "/workspace/marker") == "keep-me"
    assert paude.run("plan", name, "--detailed-exitcode").returncode == 0
