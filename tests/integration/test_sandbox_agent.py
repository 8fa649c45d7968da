"""The agent container's identity, secrets, command line and egress changes, on real podman."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.helpers import BASE_IMAGE, Paude, podman, write_paude_yaml

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

API_KEY = "sk-ant-paude-test-7f3a9c1e5b"  # a marker, not a real key
ADC = '{"type": "authorized_user", "refresh_token": "paude-test-refresh"}'
STAND_IN = ("import sys, json, time; open('/tmp/argv.json', 'w').write(json.dumps(sys.argv[1:]));"
            " time.sleep(1e6)")


def user_home(paude: Paude) -> Path:
    home = Path(paude.env()["HOME"])
    (home / ".config" / "gcloud").mkdir(parents=True, exist_ok=True)
    (home / ".config/gcloud/application_default_credentials.json").write_text(ADC)
    (home / ".gitconfig").write_text(
        "[user]\n\tname = Test User\n\temail = test@example.com\n"
        "[credential]\n\thelper = store\n[core]\n\texcludesFile = ~/.gitignore_global\n")
    (home / ".gitignore_global").write_text("*.swp\n")
    (home / ".claude").mkdir(exist_ok=True)
    (home / ".claude" / "settings.json").write_text('{"theme": "dark"}')
    (home / ".claude.json").write_text('{"numStartups": 1}')
    (home / ".ssh").mkdir(exist_ok=True)
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY MATERIAL")
    return home


def exec_agent(paude: Paude, *argv: str) -> subprocess.CompletedProcess[str]:
    return podman("exec", f"paude-{paude.session}-agent", *argv, check=False)


def test_identity_enters_read_only_or_as_copies_and_secrets_stay_secret(paude: Paude) -> None:
    home = user_home(paude)
    paude.extra_env.update({"ANTHROPIC_API_KEY": API_KEY, "GOOGLE_CLOUD_PROJECT": "proj-1",
                            "CLOUD_ML_REGION": "us-east5", "GH_TOKEN": "gho_never"})
    write_paude_yaml(paude.repo, paude.session)
    plan = paude.ok("plan", paude.session, "--json")
    applied = paude.ok("apply", paude.session, "--yes")

    # Model credentials are the gateway's: no Google credential file in the agent.
    adc = "/home/paude/.config/gcloud/application_default_credentials.json"
    assert exec_agent(paude, "test", "-e", adc).returncode != 0
    mountinfo = exec_agent(paude, "cat", "/proc/self/mountinfo").stdout.splitlines()
    for path in ("/home/paude/.gitconfig", "/home/paude/.config/git/ignore"):
        denied = exec_agent(paude, "sh", "-c", f"echo x >> {path}")
        assert denied.returncode != 0, path
        # Read-only at the mount, whatever the file's permissions say.
        options = [line.split()[5] for line in mountinfo if line.split()[4] == path]
        assert options and "ro" in options[0].split(","), (path, options)
    gitconfig = exec_agent(paude, "cat", "/home/paude/.gitconfig").stdout
    assert "Test User" in gitconfig and "helper" not in gitconfig
    assert exec_agent(paude, "git", "config", "--global", "credential.helper").stdout == ""
    assert exec_agent(paude, "cat", "/home/paude/.config/git/ignore").stdout == "*.swp\n"
    assert exec_agent(paude, "test", "-e", "/home/paude/.ssh").returncode != 0

    # ~/.claude is a copy: the agent may change it, the host's copy never changes.
    settings = "/home/paude/.claude/settings.json"
    assert exec_agent(paude, "cat", settings).stdout == '{"theme": "dark"}'
    assert exec_agent(paude, "sh", "-c", f"echo changed > {settings}").returncode == 0
    assert exec_agent(paude, "sh", "-c", "echo changed > /home/paude/.claude.json").returncode == 0
    assert (home / ".claude" / "settings.json").read_text() == '{"theme": "dark"}'
    assert (home / ".claude.json").read_text() == '{"numStartups": 1}'

    env = exec_agent(paude, "env").stdout.splitlines()
    assert "GOOGLE_CLOUD_PROJECT=proj-1" in env and "CLOUD_ML_REGION=us-east5" in env
    assert not any(API_KEY in line for line in env)
    assert "ANTHROPIC_BASE_URL=http://paude-" + paude.session + "-gateway:8080" in env
    assert not any(line.startswith("GH_TOKEN=") for line in env)

    # The key never appears in plaintext in state, plans or paude's output.
    state = "".join(p.read_text(errors="replace")
                    for p in (paude.home / "state").rglob("*") if p.is_file())
    assert state and API_KEY not in state
    for text in (plan.stdout, plan.stderr, applied.stdout, applied.stderr):
        assert API_KEY not in text
    debug = paude.run("plan", paude.session)
    assert API_KEY not in debug.stdout + debug.stderr


def test_agent_command_line_is_exact_and_lives_in_tmux(paude: Paude) -> None:
    definition = {
        "version": 1,
        "defaults": {"image": {"base": BASE_IMAGE}},
        "sessions": {paude.session: {
            "yolo": True,
            "agent": {"install": "none", "command": ["python3", "-c", STAND_IN],
                      "args": "--append-system-prompt \"refactor the auth module\" "
                              "--model 'x y'"},
        }},
    }
    (paude.repo / "paude.yaml").write_text(yaml.safe_dump(definition))
    paude.ok("apply", paude.session, "--yes")
    assert exec_agent(paude, "tmux", "has-session", "-t", "paude").returncode == 0
    argv = _poll_file(paude, "/tmp/argv.json")
    assert json.loads(argv) == ["--dangerously-skip-permissions", "--append-system-prompt",
                                "refactor the auth module", "--model", "x y"]


def test_allowlist_change_touches_only_the_proxy(paude: Paude) -> None:
    write_paude_yaml(paude.repo, paude.session, defaults="  allowed_domains: [default]\n")
    paude.ok("apply", paude.session, "--yes")
    agent = f"paude-{paude.session}-agent"
    before = json.loads(podman("inspect", agent).stdout)[0]["Id"]

    write_paude_yaml(paude.repo, paude.session,
                     defaults="  allowed_domains: [default, github, .example.com]\n")
    plan = json.loads(paude.ok("plan", paude.session, "--json").stdout)
    actions = {r["resource"]: r["action"] for r in plan["resources"]}
    assert {k for k, v in actions.items() if v != "same"} == {"proxy"}
    widened = [s for s in plan["summary"] if s["kind"] == "egress-widened"]
    assert widened and widened[0]["security_relevant"] is True
    assert {"+ github.com GET,HEAD any-path", "+ .example.com"} <= set(widened[0]["details"])
    text = paude.run("plan", paude.session).stdout
    assert "egress widened" in text

    paude.ok("apply", paude.session, "--yes")
    assert json.loads(podman("inspect", agent).stdout)[0]["Id"] == before
    assert paude.run("plan", paude.session, "--detailed-exitcode").returncode == 0

    write_paude_yaml(paude.repo, paude.session, defaults="  allowed_domains: [default]\n")
    narrowed = json.loads(paude.ok("plan", paude.session, "--json").stdout)
    assert [s["kind"] for s in narrowed["summary"] if s["kind"].startswith("egress-")] == [
        "egress-narrowed"]


def test_blocked_requests_are_listed(paude: Paude) -> None:
    paude.ok("apply", paude.session, "--yes")
    marker = "paude-blocked-marker.invalid"  # reserved TLD: can never resolve anywhere
    result = exec_agent(paude, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                        f"http://{marker}/x")
    assert result.stdout == "403"
    records = json.loads(paude.ok("blocked", paude.session, "--json").stdout)
    assert any(marker in r["url"] and r["status"] == 403 for r in records)
    assert marker in paude.ok("blocked", paude.session).stdout


def _poll_file(paude: Paude, path: str, timeout: float = 20) -> str:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = exec_agent(paude, "cat", path)
        if result.returncode == 0 and result.stdout:
            return result.stdout
        time.sleep(0.2)
    raise AssertionError(f"{path} never appeared in the agent container")


def test_turning_yolo_on_is_a_security_item_of_the_plan(paude: Paude) -> None:
    paude.ok("apply", paude.session, "--yes")
    write_paude_yaml(paude.repo, paude.session, defaults="  yolo: true\n")
    plan = json.loads(paude.ok("plan", paude.session, "--json").stdout)
    yolo = [s for s in plan["summary"] if s["kind"] == "yolo-toggled"]
    assert yolo and yolo[0]["security_relevant"] is True and "ON" in yolo[0]["text"]
    actions = {r["resource"]: r["action"] for r in plan["resources"]}
    assert {k for k, v in actions.items() if v != "same"} == {"agent"}
