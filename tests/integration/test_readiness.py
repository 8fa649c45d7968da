"""A new container is ready when its probe answers, read from /proc on the host; one that
exits first (a proxy whose entrypoint rejects its configuration) fails the apply."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest

from stacks.podman.resources import ContainerProvider
from tests.integration.helpers import BASE_IMAGE, podman

pytestmark = [pytest.mark.requires_podman]

PORT = 3128


@pytest.fixture
def name() -> Iterator[str]:
    session = f"it-ready-{secrets.token_hex(3)}"
    try:
        yield session
    finally:
        podman("rm", "--force", "--time", "0", f"paude-{session}-proxy", check=False)


def _props(name: str, command: list[str], ready: dict[str, object]) -> dict[str, object]:
    return {"name": f"paude-{name}-proxy", "hostname": "proxy", "image": BASE_IMAGE,
            "networks": [], "command": command, "ready": ready,
            "labels": {"paude.session": name}, "cap_drop": ["ALL"]}


def test_ready_when_the_port_listens(name: str) -> None:
    # The listener comes up after 2 s, like squid after its configuration check; waiting a
    # fixed second after the container runs would return before it listens.
    serve = ["sh", "-c", f"sleep 2; exec python3 -m http.server {PORT}"]
    started = time.monotonic()
    result = ContainerProvider().create(_props(name, serve, {"port": PORT}))
    waited = time.monotonic() - started
    assert result.outs["container_id"]
    # It waited for the port, not for a fixed settle period after the container ran.
    out = podman("exec", f"paude-{name}-proxy", "python3", "-c",
                 f"import socket; socket.create_connection(('127.0.0.1', {PORT}), 2)",
                 check=False)
    assert out.returncode == 0, out.stderr
    assert waited >= 2.0


def test_a_container_that_exits_before_its_port_opens_fails(name: str) -> None:
    # What the proxy's entrypoint does with a configuration squid rejects: exit 65.
    reject = ["sh", "-c", "sleep 0.3; echo 'paude-proxy: squid rejected the rendered "
              "configuration' >&2; exit 65"]
    with pytest.raises(RuntimeError) as exc:
        ContainerProvider().create(_props(name, reject, {"port": PORT}))
    assert f"paude-{name}-proxy did not stay running" in str(exc.value)
    assert "squid rejected the rendered configuration" in str(exc.value)


def test_a_child_probe_waits_for_the_entrypoint(name: str) -> None:
    # The agent's entrypoint starts `sleep infinity` once set up (after its tmux session).
    entry = ["sh", "-c", "python3 -c 'import time; time.sleep(1)' && touch /tmp/set-up; "
             "sleep infinity & wait $!"]
    started = time.monotonic()
    ContainerProvider().create(_props(name, entry, {"child": "sleep"}))
    assert time.monotonic() - started >= 1.0
    check = podman("exec", f"paude-{name}-proxy", "test", "-e", "/tmp/set-up", check=False)
    assert check.returncode == 0
