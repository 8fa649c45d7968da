"""`paude status NAME --verify` on real podman: it passes on a good session and fails, naming
the check, on a sabotaged one. The allowed host is a canary on the session's egress network."""

from __future__ import annotations

import json

import pytest

from tests.integration.canary import start_canary
from tests.integration.helpers import Paude, podman, write_paude_yaml

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

ALLOWED = "verify-allowed.test"


def checks(paude: Paude) -> tuple[int, dict[str, bool]]:
    result = paude.run("status", paude.session, "--verify", "--json")
    assert "Traceback" not in result.stderr, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is (result.returncode == 0)
    return result.returncode, {c["check"]: c["ok"] for c in data["checks"]}


def test_verify_passes_on_a_good_session_and_names_what_sabotage_broke(paude: Paude) -> None:
    write_paude_yaml(paude.repo, paude.session, defaults=f"  allowed_domains: [{ALLOWED}]\n")
    paude.ok("apply", paude.session, "--yes")
    agent, proxy = f"paude-{paude.session}-agent", f"paude-{paude.session}-proxy"
    start_canary(f"paude-{paude.session}-allowed", f"paude-{paude.session}-egress",
                 session=paude.session, aliases=[ALLOWED])

    text = paude.run("status", paude.session, "--verify")
    assert text.returncode == 0, text.stdout + text.stderr
    lines = text.stdout.splitlines()
    assert len([ln for ln in lines if ln.startswith("ok  ")]) == 7, text.stdout
    assert f"CONNECT {ALLOWED}:443" in text.stdout and "verified" in lines[-1]
    code, found = checks(paude)
    assert code == 0 and all(found.values()) and len(found) == 7

    # A second network with a route out: the check that says so fails, the rest pass.
    podman("network", "connect", "podman", agent)
    try:
        code, found = checks(paude)
        assert code == 1
        assert [k for k, ok in found.items() if not ok] == ["no route out"]
    finally:
        podman("network", "disconnect", "podman", agent)
    assert checks(paude) == (0, dict.fromkeys(found, True))  # control: repaired

    # The proxy gone: the agent has no way out at all, and verify says which check broke.
    podman("stop", "--time", "1", proxy)
    code, found = checks(paude)
    assert code == 1 and found["proxy answers"] is False
    assert found["non-root"] and found["no capabilities"]
    podman("start", proxy)
