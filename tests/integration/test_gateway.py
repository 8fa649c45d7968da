"""The model gateway on real podman: the real Claude Code commits through it, the agent holds
no real credential, and only model calls pass."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.canary import wait_until
from tests.integration.helpers import BASE_IMAGE, Paude, podman
from tests.integration.model_standin import server_cert, standin_ca, start_standin

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

# The host's bundle holds the CA of the proxy that inspects HTTPS to the npm registry.
HOST_BUNDLE = os.environ.get("PAUDE_TEST_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
COMMIT = ("echo from-claude > claude.txt && git add claude.txt && git -c user.name=Claude "
          "-c user.email=claude@example.com commit -q -m 'commit by claude'")


def agent_exec(paude: Paude, *argv: str, user: str | None = None,
               stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    flags = ["-i"] if stdin is not None else []
    flags += ["-u", user] if user else []
    return subprocess.run(["podman", "exec", *flags, f"paude-{paude.session}-agent", *argv],
                          input=stdin, capture_output=True, text=True, timeout=300)


def scan_agent(paude: Paude, values: list[str]) -> set[str]:
    """Which of `values` occur anywhere in the agent container: every file (read as root),
    every process environment, `env`, and `podman inspect` of the agent."""
    found: set[str] = set()
    # Patterns travel on stdin, so they never sit in a process environment the scan reads.
    files = agent_exec(paude, "grep", "-rlsF", "-f", "/dev/stdin", "/", "--exclude-dir=proc",
                       "--exclude-dir=sys", "--exclude-dir=dev", user="root",
                       stdin="\n".join(values) + "\n")
    environs = agent_exec(paude, "sh", "-c", "for f in /proc/[0-9]*/environ; do "
                          "tr '\\0' '\\n' < \"$f\"; done 2>/dev/null; env", user="root").stdout
    inspect = podman("inspect", f"paude-{paude.session}-agent").stdout
    for value in values:
        hits = [p for p in files.stdout.splitlines()
                if value in agent_exec(paude, "cat", p, user="root").stdout]
        if hits or value in environs or value in inspect:
            found.add(value)
    return found


def gateway_url(paude: Paude, path: str) -> str:
    return f"http://paude-{paude.session}-gateway:8080{path}"


def curl(paude: Paude, *args: str) -> tuple[str, str]:
    """(status, body) of a request from inside the agent."""
    result = agent_exec(paude, "curl", "-s", "-o", "/tmp/curl-body", "-w", "%{http_code}",
                        *args)
    return result.stdout, agent_exec(paude, "cat", "/tmp/curl-body").stdout


def test_claude_code_commits_through_the_gateway_holding_the_only_key(
        paude: Paude, tmp_path: Path) -> None:
    key = f"sk-ant-api03-real-{secrets.token_hex(12)}"
    oauth_on_disk = f"sk-ant-oat01-on-disk-{secrets.token_hex(8)}"
    home = Path(paude.env()["HOME"])
    (home / ".claude").mkdir()
    (home / ".claude" / ".credentials.json").write_text(
        json.dumps({"claudeAiOauth": {"accessToken": oauth_on_disk}}))
    (home / ".claude" / "settings.json").write_text('{"theme": "paude-theme-marker"}')
    (home / ".claude.json").write_text(json.dumps({"primaryApiKey": oauth_on_disk,
                                                   "numStartups": 1}))
    name = paude.session
    definition = {
        "version": 1,
        "defaults": {"image": {"base": BASE_IMAGE,
                               "ca_certificates": [HOST_BUNDLE, str(standin_ca())]}},
        "sessions": {name: {
            "yolo": True, "allowed_domains": ["default", "allowed.paude-test.example"],
            "agent": {"install": "npm", "args": ["-p", "commit a file named claude.txt"]}}},
    }
    (paude.repo / "paude.yaml").write_text(yaml.safe_dump(definition))
    paude.extra_env["ANTHROPIC_API_KEY"] = key
    plan = paude.ok("plan", name)
    assert key not in plan.stdout + plan.stderr
    assert "copied into the agent: ~/.claude/settings.json" in plan.stdout
    paude.ok("apply", name, "--yes")
    standin = start_standin(f"paude-{name}-standin", f"paude-{name}-egress", session=name,
                            certs=server_cert(tmp_path / "certs"), key=key, command=COMMIT)

    # The user's code goes in; Claude Code's headless prompt then runs, and its Bash tool
    # call commits.
    git = ["git", "-C", str(paude.repo), "-c", "user.name=U", "-c", "user.email=u@example.com"]
    (paude.repo / "README.md").write_text("# project\n")
    subprocess.run([*git, "checkout", "-qb", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "start"], check=True)
    paude.ok("remote", "add", "--push", name)

    def committed() -> bool:
        log = agent_exec(paude, "git", "-C", "/workspace", "log", "--format=%s").stdout
        return "commit by claude" in log

    try:
        wait_until(committed, timeout=240, what="Claude Code's commit")
    finally:
        print(agent_exec(paude, "tmux", "capture-pane", "-p", "-t", "paude").stdout)
        print(podman("logs", f"paude-{name}-gateway", check=False).stderr[-3000:])
    path = f"{paude.exe.parent}:{paude.env()['PATH']}"
    pull = subprocess.run([*git, "pull", "-q", f"paude-{name}", "main"], capture_output=True,
                          text=True, env={**paude.env(), "PATH": path})
    assert pull.returncode == 0, pull.stderr
    assert (paude.repo / "claude.txt").read_text() == "from-claude\n"

    # Claude Code's calls reached the stand-in only through the gateway, with the real key.
    calls = [r for r in standin.requests() if r["path"].startswith("/v1/messages")]
    assert calls and all(r["headers"].get("x-api-key") == key for r in calls)
    assert not any("authorization" in {k.lower() for k in r["headers"]} for r in calls)

    # No real credential anywhere in the agent. Control: a planted marker is found.
    marker = f"paude-planted-marker-{secrets.token_hex(6)}"
    agent_exec(paude, "sh", "-c", f"echo {marker} > /tmp/planted")
    assert scan_agent(paude, [key, oauth_on_disk, marker, "paude-theme-marker"]) == {
        marker, "paude-theme-marker"}
    gateway = podman("inspect", f"paude-{name}-gateway").stdout
    assert key in gateway  # control: the gateway does hold it

    # Only model calls pass the gateway; the credential never comes back.
    status, _ = curl(paude, "-X", "POST", "-d", "{}", gateway_url(paude, "/v1/files"))
    assert status == "403"
    body = json.dumps({"model": "m", "max_tokens": 1,
                       "messages": [{"role": "user", "content": "hi"}]})
    assert curl(paude, "-X", "POST", "-d", body, gateway_url(paude, "/v1/messages"))[0] == "200"
    status, echoed = curl(paude, "-X", "POST", "-d", '{"please_echo": true}',
                          gateway_url(paude, "/v1/messages"))
    assert status == "401" and "[redacted by paude]" in echoed and key not in echoed
    blocked = json.loads(paude.ok("blocked", name, "--json").stdout)
    assert any(r["url"].endswith("/v1/files") and r["result"] == "GATEWAY_DENIED"
               for r in blocked)

    # The agent cannot reach a Google API name (storage and Drive uploads live there) or the
    # model host directly. Control: an allowed name passes the same way.
    # With hosts under inspection (pypi here), squid answers a refused CONNECT inside TLS:
    # the CONNECT gets 200 and the request in it 403, and nothing is forwarded.
    for host in ("www.googleapis.com", "api.anthropic.com"):
        denied = agent_exec(paude, "curl", "-s", "-o", "/dev/null", "-w",
                            "%{http_connect} %{http_code}", f"https://{host}/upload")
        assert "403" in denied.stdout.split(), (host, denied.stdout)
    allowed = agent_exec(paude, "curl", "-s", "https://allowed.paude-test.example/")
    assert allowed.stdout == "standin-ok", allowed.stderr
    assert not any(r["host"] == "www.googleapis.com" for r in standin.requests())

    # Rotating the key on the host changes only the gateway.
    agent_id = podman("inspect", "--format", "{{.Id}}", f"paude-{name}-agent").stdout
    paude.extra_env["ANTHROPIC_API_KEY"] = key + "-rotated"
    rotated = json.loads(paude.ok("plan", name, "--json").stdout)
    changed = {r["resource"] for r in rotated["resources"] if r["action"] != "same"}
    assert changed == {"gateway"}
    assert "credentials-rotated" in {s["kind"] for s in rotated["summary"]}
    paude.ok("apply", name, "--yes")
    assert podman("inspect", "--format", "{{.Id}}", f"paude-{name}-agent").stdout == agent_id


def test_vertex_tokens_are_minted_and_refreshed_outside_the_agent(
        paude: Paude, tmp_path: Path) -> None:
    refresh, client_secret = f"1//refresh-{secrets.token_hex(8)}", f"cs-{secrets.token_hex(8)}"
    home = Path(paude.env()["HOME"])
    adc = home / ".config" / "gcloud" / "application_default_credentials.json"
    adc.parent.mkdir(parents=True)
    name = paude.session
    definition = {
        "version": 1,
        "defaults": {"image": {"base": BASE_IMAGE, "ca_certificates": [str(standin_ca())]},
                     "agent": {"install": "none", "command": ["bash"]}},
        "sessions": {name: {}},
    }
    (paude.repo / "paude.yaml").write_text(yaml.safe_dump(definition))
    paude.extra_env.update({"CLAUDE_CODE_USE_VERTEX": "1", "CLOUD_ML_REGION": "us-east5",
                            "ANTHROPIC_VERTEX_PROJECT_ID": "proj-standin"})
    # Bad input: Vertex without credentials is a plan error naming what to set.
    missing = paude.run("plan", name)
    assert missing.returncode == 1
    assert "GOOGLE_APPLICATION_CREDENTIALS" in missing.stdout + missing.stderr

    adc.write_text(json.dumps({"type": "authorized_user", "client_id": "cid",
                               "client_secret": client_secret, "refresh_token": refresh}))
    paude.ok("apply", name, "--yes")
    standin = start_standin(f"paude-{name}-standin", f"paude-{name}-egress", session=name,
                            certs=server_cert(tmp_path / "certs"), key="unused",
                            token_lifetime=3)
    env = agent_exec(paude, "env").stdout.splitlines()
    base = next(v.split("=", 1)[1] for v in env if v.startswith("ANTHROPIC_VERTEX_BASE_URL="))
    assert "CLAUDE_CODE_SKIP_VERTEX_AUTH=1" in env
    url = (f"{base}/projects/proj-standin/locations/us-east5/publishers/anthropic/models/"
           "claude-standin:rawPredict")
    for _ in range(2):
        status, body = curl(paude, "-X", "POST", "-d", "{}", url)
        assert status == "200", body
        # Longer than the token's lifetime: the next call needs a fresh token.
        agent_exec(paude, "sleep", "3.5")
    minted = [r for r in standin.requests() if r["path"] == "/token"]
    assert len(minted) == 2 and refresh.replace("/", "%2F") in minted[0]["body"]
    # Another project is refused (control above: this project passes).
    other = url.replace("proj-standin", "proj-someone-else")
    assert curl(paude, "-X", "POST", "-d", "{}", other)[0] == "403"
    marker = f"paude-planted-marker-{secrets.token_hex(6)}"
    agent_exec(paude, "sh", "-c", f"echo {marker} > /tmp/planted")
    assert scan_agent(paude, [refresh, client_secret, marker]) == {marker}
