"""`paude start --github-token`: the agent's git clones a private repository on a stand-in
github.com through the credential gateway, which alone holds the token; pushes are refused;
the token is nowhere the agent, paude.yaml or the stack state could show it."""

from __future__ import annotations

import base64
import secrets
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration import egress_standin
from tests.integration.canary import in_container
from tests.integration.helpers import BASE_IMAGE, Paude, podman
from tests.integration.model_standin import standin_ca
from tests.integration.test_gateway import agent_exec, scan_agent

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

PRIVATE = "https://github.com/org/private.git"


def agent_sh(paude: Paude, script: str) -> subprocess.CompletedProcess[str]:
    return agent_exec(paude, "sh", "-c", script)


def github_session(paude: Paude, **extra: object) -> tuple[str, str]:
    """paude.yaml for a session with the github group (and `extra` fields); a fresh token
    and its Basic authorization header."""
    token = f"ghp_{secrets.token_hex(16)}"
    basic = "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()
    (paude.repo / "paude.yaml").write_text(yaml.safe_dump({
        "version": 1,
        "defaults": {"agent": {"install": "none", "command": ["bash"]},
                     # The gateway (on the proxy image) trusts the stand-in's test CA.
                     "image": {"base": BASE_IMAGE, "ca_certificates": [str(standin_ca())]}},
        "sessions": {paude.session: {"allowed_domains": ["default", "github"], **extra}}}))
    return token, basic


def test_token_reaches_github_only_through_the_gateway(paude: Paude, tmp_path: Path) -> None:
    name = paude.session
    token, basic = github_session(paude)
    paude.ok("apply", name, "--yes")
    forge = egress_standin.start(f"{name}-forge", f"paude-{name}-egress", session=name,
                                 folder=tmp_path / "certs")

    # The control first: without a token the private repository is out of reach (the
    # agent's git goes through the proxy, which lets the read through, unauthenticated).
    refused = agent_sh(paude, f"GIT_TERMINAL_PROMPT=0 git clone -q {PRIVATE} /tmp/nope")
    assert refused.returncode != 0
    assert any(r["path"].startswith("/org/private.git/") and not r["auth"]
               for r in forge.requests())

    paude.extra_env.update({"PAUDE_GITHUB_TOKEN": token, "PAUDE_DEBUG": "1"})
    started = paude.ok("start", name, "--no-attach")
    assert f"GitHub: session {name}'s gateway holds your token" in started.stderr
    assert token not in started.stdout + started.stderr  # not even in the debug log

    before = len(forge.requests())
    cloned = agent_sh(paude, f"GIT_TERMINAL_PROMPT=0 git clone -q {PRIVATE} /tmp/private && "
                      "cat /tmp/private/README")
    assert cloned.returncode == 0, cloned.stderr
    assert cloned.stdout == "upstream\n"
    seen = forge.requests()[before:]
    assert seen and all(r["auth"] == basic for r in seen), seen

    # Push: refused by the gateway, never reaching the forge.
    refs = forge.refs(egress_standin.PRIVATE_REPO)
    pushed = agent_sh(paude, "cd /tmp/private && git -c user.name=a -c user.email=a@b "
                      "commit -q --allow-empty -m x && GIT_TERMINAL_PROMPT=0 git push -q "
                      "origin HEAD:refs/heads/from-agent")
    assert pushed.returncode != 0
    assert forge.refs(egress_standin.PRIVATE_REPO) == refs
    assert not any("receive-pack" in r["path"] for r in forge.requests())
    blocked = paude.ok("blocked", name).stdout
    assert "receive-pack" in blocked
    # The control: the forge takes that push from someone holding the token.
    control = in_container(forge.name, "sh", "-c", "cd /tmp && rm -rf c && git clone -q "
                           f"{egress_standin.PRIVATE_REPO} c && cd c && git -c user.name=a "
                           "-c user.email=a@b commit -q --allow-empty -m x && git -c "
                           f"http.sslVerify=false -c 'http.extraHeader=Authorization: {basic}' "
                           "push -q https://localhost/org/private.git HEAD:refs/heads/control")
    assert control.returncode == 0, control.stderr
    assert "refs/heads/control" in forge.refs(egress_standin.PRIVATE_REPO)

    # The token is nowhere in the agent; the control: a value that is there is found.
    marker = agent_sh(paude, "printenv PAUDE_SESSION").stdout.strip()
    assert scan_agent(paude, [token, marker]) == {marker}
    gitconfig = agent_sh(paude, "cat ~/.gitconfig").stdout
    assert f"paude-{name}-gateway:8080/github/" in gitconfig and token not in gitconfig
    # Nor in paude.yaml, the gateway's own settings, or anything paude keeps (the stack
    # state included); the controls: the session's name is in the state, the token in the
    # gateway's file.
    assert token not in (paude.repo / "paude.yaml").read_text(encoding="utf-8")
    planned = paude.run("plan", name, "--json")  # the variable is still set
    assert planned.returncode == 0 and token not in planned.stdout + planned.stderr
    assert token not in podman("inspect", f"paude-{name}-gateway").stdout
    kept = subprocess.run(["grep", "-rlF", token, str(paude.home)], capture_output=True,
                          text=True, check=False)
    assert kept.returncode == 1, kept.stdout
    assert subprocess.run(["grep", "-rlqF", f"paude-{name}-agent", str(paude.home / "state")],
                          check=False).returncode == 0
    assert in_container(f"paude-{name}-gateway", "cat", "/tmp/paude-github-token"
                        ).stdout.strip() == token

    # A start without the token takes it back: the gateway's file goes, git goes back to
    # the proxy.
    del paude.extra_env["PAUDE_GITHUB_TOKEN"]
    again = paude.ok("start", name, "--no-attach")
    assert "was removed" in again.stderr
    assert in_container(f"paude-{name}-gateway", "test", "-e", "/tmp/paude-github-token"
                        ).returncode == 1
    assert "gateway" not in agent_sh(paude, "cat ~/.gitconfig 2>/dev/null").stdout


def test_github_writes_lets_a_push_through_to_the_named_repository_only(
        paude: Paude, tmp_path: Path) -> None:
    name = paude.session
    token, basic = github_session(paude, github_writes=["org/private"])
    plan = paude.plan_json()
    widened = [s for s in plan["summary"]  # type: ignore[union-attr]
               if s["kind"] == "github-writes-widened"]
    assert widened and widened[0]["security_relevant"] is True
    assert "org/private" in widened[0]["text"]
    paude.ok("apply", name, "--yes")
    forge = egress_standin.start(f"{name}-forge", f"paude-{name}-egress", session=name,
                                 folder=tmp_path / "certs")
    paude.extra_env["PAUDE_GITHUB_TOKEN"] = token
    paude.ok("start", name, "--no-attach")
    cloned = agent_sh(paude, f"GIT_TERMINAL_PROMPT=0 git clone -q {PRIVATE} /tmp/private")
    assert cloned.returncode == 0, cloned.stderr

    # The named repository takes the agent's push, with the token the gateway added.
    pushed = agent_sh(paude, "cd /tmp/private && git -c user.name=a -c user.email=a@b "
                      "commit -q --allow-empty -m x && GIT_TERMINAL_PROMPT=0 git push -q "
                      "origin HEAD:refs/heads/from-agent")
    assert pushed.returncode == 0, pushed.stderr
    assert "refs/heads/from-agent" in forge.refs(egress_standin.PRIVATE_REPO)
    uploads = [r for r in forge.requests() if r["path"].endswith("/git-receive-pack")]
    assert uploads and all(r["auth"] == basic for r in uploads)

    # Another repository on the same forge: refused by the gateway, never reaching it.
    before = forge.refs()
    other = agent_sh(paude, "cd /tmp/private && GIT_TERMINAL_PROMPT=0 git push -q "
                     "https://github.com/org/project.git HEAD:refs/heads/from-agent")
    assert other.returncode != 0
    assert forge.refs() == before
    assert not any(r["path"].startswith("/org/project.git/") and "receive-pack" in r["path"]
                   for r in forge.requests())
    assert "receive-pack" in paude.ok("blocked", name).stdout
