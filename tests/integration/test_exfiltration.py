"""The security matrix (DESIGN §6): every way out of the agent container except the proxy
to an allowed name is closed.

Each vector first shows its control succeed (a plain container with direct egress reaches
the canary), then shows the agent's attempt fail AND the canary never record the agent's
marker. Everything sent goes to containers this module starts, or to loopback.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.canary import (
    Canary,
    assert_direct_blocked,
    connect,
    container_ip,
    curl,
    dns_query,
    git_push,
    http_get,
    in_container,
    marker,
    py,
    resolve,
    start_canary,
    start_control,
    tcp_send,
)
from tests.integration.helpers import (
    BASE_IMAGE,
    Paude,
    make_home,
    make_repo,
    podman,
    remove_session_objects,
    write_paude_yaml,
)

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

ALLOWED = "allowed.canary.test"
OFF_LIST = "canary-offlist.test"
METADATA_SUBNET = "169.254.169.0/24"
METADATA_IP = "169.254.169.254"

CAP_SETS = ("CapEff", "CapPrm", "CapBnd", "CapAmb")
NET_PRIVILEGES = ("packet", "icmp", "netadmin")

# Capability state and what it permits; the ioctl sets lo's MTU to its current value (a
# no-op that still needs CAP_NET_ADMIN).
PRIVILEGES = """
import fcntl, json, os, socket, struct
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
out = {k: status[k].strip() for k in ("CapEff", "CapPrm", "CapBnd", "CapAmb", "NoNewPrivs")}
out["uid"] = os.getuid()
raw = {"packet": (socket.AF_PACKET, socket.SOCK_RAW, 0),
       "icmp": (socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)}
for label, args in raw.items():
    try:
        socket.socket(*args).close()
        out[label] = "ok"
    except OSError as e:
        out[label] = type(e).__name__
s = socket.socket()
mtu = struct.unpack("16si", fcntl.ioctl(s, 0x8921, struct.pack("16si20x", b"lo", 0))[:20])[1]
try:
    fcntl.ioctl(s, 0x8922, struct.pack("16si20x", b"lo", mtu))
    out["netadmin"] = "ok"
except OSError as e:
    out["netadmin"] = type(e).__name__
print(json.dumps(out))
"""

# sys.argv: hosts. Prints [address or null], parsed with AI_NUMERICHOST (no lookups).
NUMERIC = """
import json, socket, sys
found = []
for host in sys.argv[1:]:
    try:
        info = socket.getaddrinfo(host.strip("[]"), 443, flags=socket.AI_NUMERICHOST)
        found.append(info[0][4][0])
    except OSError:
        found.append(None)
print(json.dumps(found))
"""


@dataclass(frozen=True)
class Sandbox:
    """One applied session plus the canaries and control container around it."""

    session: str
    canary: Canary
    metadata: Canary
    control: str
    proxy_egress_ip: str

    @property
    def agent(self) -> str:
        return f"paude-{self.session}-agent"

    @property
    def proxy(self) -> str:
        return f"paude-{self.session}-proxy"

    @property
    def proxy_address(self) -> str:
        return f"{self.proxy}:3128"

    @property
    def proxy_url(self) -> str:
        return f"http://{self.proxy_address}"




def _make_paude(exe: Path, root: Path) -> Paude:
    home = make_home(root / "paude-home")
    session = f"it-{secrets.token_hex(3)}"
    repo = make_repo(root / "repo")
    write_paude_yaml(repo, session)
    conf = repo / "paude.yaml"
    text = conf.read_text(encoding="utf-8")
    assert "defaults:\n" in text, text
    conf.write_text(text.replace("defaults:\n", f"defaults:\n  allowed_domains: [{ALLOWED}]\n",
                                 1), encoding="utf-8")
    return Paude(exe, home, repo, session)


@pytest.fixture(scope="module")
def sandbox(paude_exe: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One session allowing only ALLOWED, a canary on its egress network (aliases ALLOWED
    and OFF_LIST), a metadata canary at METADATA_IP and a control container on both."""
    if podman("image", "exists", BASE_IMAGE, check=False).returncode != 0:
        pytest.fail(f"base image {BASE_IMAGE} is missing; run scripts/build-base-image.sh")
    paude = _make_paude(paude_exe, tmp_path_factory.mktemp("exfiltration"))
    name = paude.session
    egress, metadata_net = f"paude-{name}-egress", f"{name}-metadata"
    try:
        paude.ok("apply", name, "--yes")
        podman("network", "create", "--subnet", METADATA_SUBNET, "--label",
               f"paude.session={name}", metadata_net)
        canary = start_canary(f"{name}-canary", egress, session=name,
                              aliases=(ALLOWED, OFF_LIST), git=True)
        metadata = start_canary(f"{name}-metadata", metadata_net, session=name,
                                ip=METADATA_IP, body="metadata")
        control = start_control(f"{name}-control", [egress, metadata_net], session=name,
                                cap_add=("NET_RAW", "NET_ADMIN"))
        yield Sandbox(name, canary, metadata, control,
                      container_ip(f"paude-{name}-proxy", egress))
    finally:
        remove_session_objects(name)


def privileges(container: str) -> dict[str, Any]:
    """Capability sets, NoNewPrivs, uid, and whether raw sockets and NET_ADMIN work."""
    result = py(container, PRIVILEGES)
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


def numeric_hosts(container: str, *hosts: str) -> list[str | None]:
    """Each host as the container's libc reads it numerically (never a DNS query)."""
    result = py(container, NUMERIC, *hosts)
    assert result.returncode == 0, result.stderr
    found: list[str | None] = json.loads(result.stdout)
    return found


def test_direct_tcp_and_udp_are_blocked(sandbox: Sandbox) -> None:
    """Vectors 1 and 2: TCP and UDP straight to an address on the egress side."""
    assert_direct_blocked(sandbox.canary, control=sandbox.control, agent=sandbox.agent)


def test_external_names_do_not_resolve(sandbox: Sandbox) -> None:
    """Vector 3: the agent has no resolver; only its proxy's name is known (/etc/hosts)."""
    names = (ALLOWED, OFF_LIST, sandbox.canary.name, sandbox.control)
    seen = resolve(sandbox.control, *names)
    assert seen[ALLOWED] == seen[sandbox.canary.name] == sandbox.canary.ip
    assert resolve(sandbox.agent, *names) == dict.fromkeys(names)
    assert resolve(sandbox.agent, sandbox.proxy)[sandbox.proxy] is not None


@pytest.mark.parametrize("proto", ["udp", "tcp"])
def test_dns_straight_to_a_resolver_is_blocked(sandbox: Sandbox, proto: str) -> None:
    """Vector 4: a DNS query (the tunnelling carrier) sent to a resolver by address."""
    ctl, agent = f"{marker('dns-ctl')}.exfil.test", f"{marker('dns-agent')}.exfil.test"
    assert dns_query(sandbox.control, sandbox.canary.ip, proto, ctl) == "127.0.0.1"
    assert sandbox.canary.wait_for(ctl)["event"] == "dns"
    assert dns_query(sandbox.agent, sandbox.canary.ip, proto, agent) == ""
    sandbox.canary.assert_never([agent])


def test_proxy_denies_names_off_the_list(sandbox: Sandbox) -> None:
    """Vector 5: plain HTTP through the proxy to a name that is not allowed."""
    ctl = marker("offlist-ctl")
    direct = curl(sandbox.control, f"http://{OFF_LIST}/{ctl}")
    assert (direct.status, direct.body) == (200, "canary-http")
    sandbox.canary.wait_for(ctl)
    tokens = [marker("offlist-agent"), marker("offlist-userinfo")]
    # The second URL dresses the off-list host up with the allowed name as userinfo.
    for url in (f"http://{OFF_LIST}/{tokens[0]}", f"http://{ALLOWED}@{OFF_LIST}/{tokens[1]}"):
        denied = curl(sandbox.agent, url, proxy=sandbox.proxy_url)
        assert denied.status == 403, (url, denied)
        # The refusal is squid's own, not something the canary answered.
        assert re.search(r"^Server: squid", denied.headers, re.M | re.I), denied.headers
        assert re.search(r"^X-Squid-Error: ", denied.headers, re.M | re.I), denied.headers
    sandbox.canary.assert_never(tokens, quiet=[(sandbox.proxy_egress_ip, 80)])


def ip_literal_forms(ip: str) -> list[str]:
    """Ways to write an IPv4 address that libc reads as that address: dotted, decimal,
    hex, dotted hex, dotted octal, IPv4-mapped IPv6."""
    octets = [int(o) for o in ip.split(".")]
    number = int(ipaddress.IPv4Address(ip))
    return [ip, str(number), f"0x{number:08x}", ".".join(f"0x{o:02x}" for o in octets),
            ".".join(f"0{o:o}" for o in octets), f"[::ffff:{ip}]"]


def test_proxy_denies_connect_to_ip_literals(sandbox: Sandbox) -> None:
    """Vector 6: CONNECT to an address instead of a name, in every spelling."""
    ctl = marker("iplit-ctl")
    assert "canary-443" in tcp_send(sandbox.control, sandbox.canary.ip, 443, ctl + "\n")
    sandbox.canary.wait_for(ctl)
    forms = ip_literal_forms(sandbox.canary.ip)
    # Were a refusal ever missing, squid would read these as numbers (no DNS query leaves)
    # and reach only the canary; check that before sending any of them.
    assert set(numeric_hosts(sandbox.proxy, *forms)) == {
        sandbox.canary.ip, f"::ffff:{sandbox.canary.ip}"}
    tokens = []
    for form in forms:
        tokens.append(marker("iplit-agent"))
        status, tunnel = connect(sandbox.agent, sandbox.proxy_address, f"{form}:443", tokens[-1])
        assert (status, tunnel) == (403, ""), form
    sandbox.canary.assert_never(tokens, quiet=[(sandbox.proxy_egress_ip, 443)])


@pytest.mark.parametrize("port", [8080, 22, 9418])
def test_proxy_denies_connect_to_other_ports(sandbox: Sandbox, port: int) -> None:
    """Vector 7: CONNECT to the allowed name on a port other than 443."""
    ctl, agent = marker("port-ctl"), marker("port-agent")
    if port == 9418:
        listed = in_container(sandbox.control, "git", "ls-remote", f"git://{ALLOWED}/repo.git")
        assert listed.returncode == 0, listed.stderr
    else:
        payload = http_get(ctl) if port == 8080 else ctl + "\n"
        assert tcp_send(sandbox.control, ALLOWED, port, payload), f"control: {ALLOWED}:{port}"
        sandbox.canary.wait_for(ctl)
    target = f"{ALLOWED}:{port}"
    assert connect(sandbox.agent, sandbox.proxy_address, target, agent) == (403, "")
    sandbox.canary.assert_never([agent], quiet=[(sandbox.proxy_egress_ip, port)])


@pytest.mark.parametrize("port", [8080, 443])
def test_proxy_denies_plain_http_to_other_ports(sandbox: Sandbox, port: int) -> None:
    """Vector 8: plain HTTP through the proxy to the allowed name on a port other than 80."""
    ctl, agent = marker("http-port-ctl"), marker("http-port-agent")
    if port == 8080:
        assert curl(sandbox.control, f"http://{ALLOWED}:{port}/{ctl}").status == 200
    else:
        assert tcp_send(sandbox.control, ALLOWED, port, ctl + "\n").strip() == f"canary-{port}"
    sandbox.canary.wait_for(ctl)
    denied = curl(sandbox.agent, f"http://{ALLOWED}:{port}/{agent}", proxy=sandbox.proxy_url)
    assert denied.status == 403, denied
    sandbox.canary.assert_never([agent], quiet=[(sandbox.proxy_egress_ip, port)])


def test_metadata_address_is_unreachable(sandbox: Sandbox) -> None:
    """Vector 9: the cloud metadata address, directly, through the proxy and by CONNECT."""
    meta = sandbox.metadata
    ctl, from_proxy = marker("meta-ctl"), marker("meta-proxyhost")
    assert curl(sandbox.control, f"http://{METADATA_IP}/{ctl}").body == "metadata"
    meta.wait_for(ctl)
    # The proxy container's own network path reaches the address, so the refusals below
    # are squid's policy rather than routing.
    own = in_container(sandbox.proxy, "curl", "-sS", "--max-time", "5", "--noproxy", "*",
                       f"http://{METADATA_IP}/{from_proxy}")
    assert own.stdout == "metadata", own.stderr
    proxy_peer = str(meta.wait_for(from_proxy)["peer"])
    direct, proxied, tunnelled = (marker("meta-agent") for _ in range(3))
    assert tcp_send(sandbox.agent, METADATA_IP, 80, http_get(direct)) == ""
    denied = curl(sandbox.agent, f"http://{METADATA_IP}/{proxied}", proxy=sandbox.proxy_url)
    assert denied.status == 403, denied
    target = f"{METADATA_IP}:443"
    assert connect(sandbox.agent, sandbox.proxy_address, target, tunnelled) == (403, "")
    meta.assert_never([direct, proxied, tunnelled], quiet=[(proxy_peer, 80), (proxy_peer, 443)])


def test_ssh_is_blocked(sandbox: Sandbox) -> None:
    """Vector 10: SSH (TCP 22) by address and by the allowed name."""
    ctl, agent = marker("ssh-ctl"), marker("ssh-agent")
    hello = "SSH-2.0-{}\r\n"
    answer = tcp_send(sandbox.control, sandbox.canary.ip, 22, hello.format(ctl))
    assert answer.strip() == "canary-22"
    sandbox.canary.wait_for(ctl)
    for host in (sandbox.canary.ip, ALLOWED):
        assert tcp_send(sandbox.agent, host, 22, hello.format(agent)) == "", host
    sandbox.canary.assert_never([agent])


def test_git_push_to_outside_remotes_fails(sandbox: Sandbox) -> None:
    """Vector 11: git:// push (git honours proxies only for http) by address and by name."""
    remotes = (f"git://{sandbox.canary.ip}/repo.git", f"git://{ALLOWED}/repo.git")
    controls = [marker("git-ctl") for _ in remotes]
    for remote, branch in zip(remotes, controls, strict=True):
        assert git_push(sandbox.control, remote, branch) == 0, remote
    refs = sandbox.canary.git_refs()
    assert all(f"refs/heads/{branch}" in refs for branch in controls), refs
    agents = [marker("git-agent") for _ in remotes]
    for remote, branch in zip(remotes, agents, strict=True):
        assert git_push(sandbox.agent, remote, branch) != 0, remote
    refs = sandbox.canary.git_refs()
    assert not [ref for ref in refs if any(branch in ref for branch in agents)], refs


def test_unsetting_proxy_variables_does_not_help(sandbox: Sandbox) -> None:
    """Vector 12: a client that ignores the proxy settings, by name and by address."""
    urls = (f"http://{ALLOWED}/{{}}", f"http://{sandbox.canary.ip}/{{}}")
    for url in urls:
        ctl = marker("noproxy-ctl")
        assert curl(sandbox.control, url.format(ctl)).body == "canary-http"
        sandbox.canary.wait_for(ctl)
    agents = [marker("noproxy-agent") for _ in urls]
    for url, token in zip(urls, agents, strict=True):
        response = curl(sandbox.agent, url.format(token), without_proxy_env=True)
        assert response.status == 0, (url, response)
    sandbox.canary.assert_never(agents)


def test_agent_has_no_capabilities(sandbox: Sandbox) -> None:
    """Vector 13: no capability to open raw sockets or reconfigure the network; no way to
    gain one (no-new-privileges)."""
    # podman's default capability set here lacks NET_RAW, so the control adds it.
    granted = privileges(sandbox.control)
    assert {k: granted[k] for k in NET_PRIVILEGES} == dict.fromkeys(NET_PRIVILEGES, "ok")
    found = privileges(sandbox.agent)
    assert found["uid"] != 0
    assert found["NoNewPrivs"] == "1"
    assert {k: found[k] for k in CAP_SETS} == dict.fromkeys(CAP_SETS, "0000000000000000")
    assert {k: found[k] for k in NET_PRIVILEGES} == dict.fromkeys(
        NET_PRIVILEGES, "PermissionError")


def test_allowed_name_through_proxy(sandbox: Sandbox) -> None:
    """Positive case: HTTP to the allowed name, via the proxy the environment names."""
    token = marker("allowed-http")
    response = curl(sandbox.agent, f"http://{ALLOWED}/{token}")
    assert (response.status, response.body) == (200, "canary-http"), response
    seen = sandbox.canary.wait_for(token)
    assert (seen["peer"], seen["port"]) == (sandbox.proxy_egress_ip, 80)


def test_connect_to_allowed_name_443(sandbox: Sandbox) -> None:
    """Positive case: CONNECT to the allowed name on 443 opens a tunnel to it."""
    token = marker("allowed-connect")
    status, tunnel = connect(sandbox.agent, sandbox.proxy_address, f"{ALLOWED}:443", token)
    assert (status, tunnel) == (200, "canary-443")
    seen = sandbox.canary.wait_for(token)
    assert (seen["peer"], seen["port"]) == (sandbox.proxy_egress_ip, 443)


def test_denied_page_names_paude(sandbox: Sandbox) -> None:
    """The refusal says paude blocked the request: more than the proxy's host name, which
    squid prints on every error page."""
    url = f"http://{OFF_LIST}/{marker('page')}"
    denied = curl(sandbox.agent, url, proxy=sandbox.proxy_url)
    assert denied.status == 403
    without_names = re.sub(r"paude-[\w.-]+", "", denied.body)
    assert "paude" in without_names.lower(), denied.body


def test_agent_has_no_ipv6_link_to_the_host(sandbox: Sandbox) -> None:
    """The internal bridge has no IPv4 address on the host but does have an IPv6 link-local
    one: an agent with IPv6 on its interface can reach host services listening on '::'."""
    result = in_container(sandbox.agent, "cat", "/proc/net/if_inet6")
    # No such file: IPv6 is off altogether, which is fine.
    lines = result.stdout.splitlines() if result.returncode == 0 else []
    off_loopback = [line for line in lines if line.split()[-1] != "lo"]
    assert not off_loopback, _ipv6_evidence(sandbox, off_loopback)


def _ipv6_evidence(sandbox: Sandbox, addresses: list[str]) -> str:
    # Built only on failure. The link is demonstrated on the proxy (a session container);
    # the host's address is read, never sent to.
    bridge = podman("network", "inspect", f"paude-{sandbox.session}-internal", "--format",
                    "{{.NetworkInterface}}").stdout.strip()
    host = [line.split()[0] for line in Path("/proc/net/if_inet6").read_text().splitlines()
            if line.split()[-1] == bridge]
    reached = []
    for line in in_container(sandbox.proxy, "cat", "/proc/net/if_inet6").stdout.splitlines():
        raw = line.split()[0]
        if raw.startswith("fe80"):
            addr = ":".join(raw[i:i + 4] for i in range(0, 32, 4)) + "%eth0"
            answer = tcp_send(sandbox.agent, addr, 3128, "GET / HTTP/1.0\r\n\r\n")
            reached += [f"proxy {addr}: {answer.splitlines()[0]}"] if answer else []
    return (f"the agent has IPv6 off loopback {addresses}; the host's bridge {bridge} has "
            f"{host} on the same link; over it the agent reached {reached}")
