"""Canary containers for the exfiltration tests: servers that record everything they receive.

Every address the exfiltration tests send to belongs to a container started here (or to
loopback), so nothing leaves the machine even when the sandbox is broken.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tests.integration.helpers import BASE_IMAGE, podman

CANARY_LOG = "/tmp/canary.log"
GIT_ROOT = "/srv/git"
HTTP_PORTS = (80, 8080)
RAW_TCP_PORTS = (22, 53, 443)
UDP_PORTS = (53, 9999)
GIT_PORT = 9418

# Runs inside the canary as `python3 -c`. One JSON line per event in CANARY_LOG:
# {"event", "proto", "port", "peer", "data"}; "ready" once every listener is bound.
# HTTP ports answer 200 with CANARY_BODY; raw TCP ports record the connection at once,
# then the first line (or DNS message) and answer "canary-PORT"; UDP ports answer
# "canary-udp", and port 53 answers any query with a dummy A record (127.0.0.1).
CANARY_SCRIPT = r'''
import json, os, socket, subprocess, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = "/tmp/canary.log"
BODY = os.environ.get("CANARY_BODY", "canary-http").encode()
LOCK = threading.Lock()


def record(event, proto, port, peer, data=""):
    line = json.dumps({"event": event, "proto": proto, "port": port, "peer": peer,
                       "data": data})
    with LOCK, open(LOG, "a") as log:
        log.write(line + "\n")


def qname(msg):
    labels, i = [], 12
    while i < len(msg) and msg[i]:
        labels.append(msg[i + 1:i + 1 + msg[i]].decode("latin-1"))
        i += 1 + msg[i]
    return ".".join(labels), i + 5


def dns_answer(msg):
    name, end = qname(msg)
    header = msg[:2] + b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00"
    answer = b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x7f\x00\x00\x01"
    return name, header + msg[12:end] + answer


class Http(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("latin-1") if length else ""
        record("http", "tcp", self.server.server_address[1], self.client_address[0],
               f"{self.requestline} host={self.headers.get('Host')} {body}")
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    do_POST = do_PUT = do_GET

    def log_message(self, *args):
        pass


def raw_conn(conn, peer, port):
    record("accept", "tcp", port, peer)
    conn.settimeout(3)
    data = b""
    try:
        while len(data) < 4096:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
            size = 2 + int.from_bytes(data[:2], "big") if len(data) >= 2 else 1 << 16
            if port == 53 and len(data) >= size:
                break
            if port != 53 and b"\n" in data:
                break
        if port == 53 and len(data) > 14:
            name, reply = dns_answer(data[2:])
            record("dns", "tcp", port, peer, name)
            conn.sendall(len(reply).to_bytes(2, "big") + reply)
        else:
            record("data", "tcp", port, peer, data.decode("latin-1"))
            conn.sendall(f"canary-{port}\n".encode())
    except OSError:
        record("data", "tcp", port, peer, data.decode("latin-1"))
    finally:
        conn.close()


def serve_raw(server, port):
    while True:
        conn, addr = server.accept()
        threading.Thread(target=raw_conn, args=(conn, addr[0], port), daemon=True).start()


def serve_udp(sock, port):
    while True:
        data, addr = sock.recvfrom(4096)
        if port == 53 and len(data) > 12:
            name, reply = dns_answer(data)
            record("dns", "udp", port, addr[0], name)
            sock.sendto(reply, addr)
        else:
            record("udp", "udp", port, addr[0], data.decode("latin-1"))
            sock.sendto(b"canary-udp", addr)


def serve_git():
    os.makedirs("/srv/git", exist_ok=True)
    subprocess.run(["git", "init", "--quiet", "--bare", "/srv/git/repo.git"], check=True)
    subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", "--base-path=/srv/git",
                      "--enable=receive-pack", "--listen=0.0.0.0", "--port=9418"])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", 9418), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("git daemon did not start")


# Every socket is bound before "ready" is recorded, so a test never races a listener.
threads = []
for port in (80, 8080):
    server = ThreadingHTTPServer(("0.0.0.0", port), Http)
    threads.append(threading.Thread(target=server.serve_forever, daemon=True))
for port in (22, 53, 443):
    server = socket.create_server(("0.0.0.0", port))
    threads.append(threading.Thread(target=serve_raw, args=(server, port), daemon=True))
for port in (53, 9999):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    threads.append(threading.Thread(target=serve_udp, args=(sock, port), daemon=True))
for thread in threads:
    thread.start()
if os.environ.get("CANARY_GIT") == "1":
    serve_git()
record("ready", "", 0, "")
threads[0].join()
'''


def marker(kind: str) -> str:
    """A unique token naming one attempt, so a canary record can be attributed to it."""
    return f"mark-{kind}-{secrets.token_hex(4)}"


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll `predicate` until it holds, or fail saying what never happened."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)


def container_ip(container: str, network: str, *, timeout: float = 20) -> str:
    """The container's address on `network` (polled: podman fills it in after start)."""
    found: list[str] = []

    def has_ip() -> bool:
        out = podman("inspect", container, "--format", "{{json .NetworkSettings.Networks}}",
                     check=False).stdout
        ip = (json.loads(out or "{}").get(network) or {}).get("IPAddress")
        if ip:
            found.append(str(ip))
        return bool(ip)

    wait_until(has_ip, timeout=timeout, what=f"{container} to get an address on {network}")
    return found[0]


@dataclass(frozen=True)
class Pod:
    """A container of a pod on the test cluster's node, reached with `kubectl exec`."""

    kubectl: tuple[str, ...]  # kubectl with its --kubeconfig and --context
    namespace: str
    name: str
    container: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


# Where a probe runs: a podman container (by name) or a pod's container.
Target = str | Pod


def in_container(container: Target, *argv: str,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a command inside a running container (never raises on its exit code)."""
    if isinstance(container, Pod):
        command = [*container.kubectl, "-n", container.namespace, "exec", container.name,
                   "-c", container.container, "--", *argv]
    else:
        command = ["podman", "exec", container, *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


def py(container: Target, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a python snippet inside a container with `args` as sys.argv[1:]."""
    return in_container(container, "python3", "-c", code, *args)


@dataclass(frozen=True)
class Canary:
    """A running canary container and what it has recorded."""

    name: Target
    ip: str

    def records(self) -> list[dict[str, Any]]:
        """Every event the canary logged so far."""
        result = in_container(self.name, "cat", CANARY_LOG)
        # A canary that died would make every "nothing arrived" check pass vacuously.
        assert result.returncode == 0, f"canary {self.name} is not answering: {result.stderr}"
        # Only complete lines: the canary may be half-way through writing the last one.
        return [json.loads(line) for line in result.stdout.split("\n")[:-1] if line.strip()]

    def wait_for(self, token: str, *, timeout: float = 10) -> dict[str, Any]:
        """The first record carrying `token`, polled until it arrives."""
        found: list[dict[str, Any]] = []

        def arrived() -> bool:
            found.extend(r for r in self.records() if token in str(r.get("data", "")))
            return bool(found)

        wait_until(arrived, timeout=timeout, what=f"{self.name} to record {token}")
        return found[0]

    def accepts_from(self, peer: str, port: int) -> int:
        """How many TCP connections `peer` opened to `port` (counted when accepted)."""
        return sum(1 for r in self.records()
                   if r["event"] == "accept" and r["peer"] == peer and r["port"] == port)

    def assert_never(self, tokens: Iterable[str], *, window: float = 2.0,
                     quiet: Sequence[tuple[str, int]] = ()) -> None:
        """Watch for `window` seconds: no token may arrive, and no (peer, port) in `quiet`
        may open a new connection. Fails as soon as either happens."""
        tokens = list(tokens)
        baseline = {key: self.accepts_from(*key) for key in quiet}
        deadline = time.monotonic() + window
        while True:
            records = self.records()
            leaked = [r for r in records for t in tokens if t in str(r.get("data", ""))]
            assert not leaked, f"{self.name} recorded what the agent sent: {leaked}"
            for key, before in baseline.items():
                now = sum(1 for r in records if r["event"] == "accept"
                          and (r["peer"], r["port"]) == key)
                assert now == before, f"{key[0]} opened a connection to {self.name}:{key[1]}"
            if time.monotonic() > deadline:
                return
            time.sleep(0.2)

    def git_refs(self) -> list[str]:
        """Refs of the canary's bare repository (the git push target)."""
        result = in_container(self.name, "git", "--git-dir", f"{GIT_ROOT}/repo.git",
                              "for-each-ref", "--format=%(refname)")
        assert result.returncode == 0, result.stderr
        return result.stdout.split()


def start_canary(name: str, network: str, *, session: str, aliases: Sequence[str] = (),
                 ip: str | None = None, body: str = "canary-http", git: bool = False) -> Canary:
    """Start a canary on `network` and wait until every listener is up."""
    argv = ["run", "--detach", "--name", name, "--label", f"paude.session={session}",
            "--network", network, "--env", f"CANARY_BODY={body}",
            "--env", f"CANARY_GIT={int(git)}"]
    for alias in aliases:
        argv += ["--network-alias", alias]
    if ip:
        argv += ["--ip", ip]
    podman(*argv, BASE_IMAGE, "python3", "-c", CANARY_SCRIPT)
    canary = Canary(name, ip or container_ip(name, network))

    def ready() -> bool:
        state = podman("inspect", name, "--format", "{{.State.Running}}", check=False)
        if state.stdout.strip() != "true":
            logs = podman("logs", name, check=False)
            raise AssertionError(f"canary {name} exited:\n{logs.stdout}{logs.stderr}")
        # Not records(): the log does not exist until the script writes its first line.
        return '"event": "ready"' in in_container(name, "cat", CANARY_LOG).stdout

    wait_until(ready, timeout=30, what=f"canary {name} to start")
    return canary


def start_control(name: str, networks: Sequence[str], *, session: str,
                  cap_add: Sequence[str] = ()) -> str:
    """A plain container with direct egress: shows what each vector WOULD do without paude."""
    argv = ["run", "--detach", "--name", name, "--label", f"paude.session={session}"]
    for network in networks:
        argv += ["--network", network]
    for cap in cap_add:
        argv += ["--cap-add", cap]
    podman(*argv, BASE_IMAGE, "sleep", "infinity")
    for network in networks:
        container_ip(name, network)
    return name


# Probes: what a client inside a container sends, and what it got back.

PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
              "all_proxy", "NO_PROXY", "no_proxy")

# sys.argv: host port payload. Prints everything the peer sends back until it closes.
TCP_SEND = """
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3) as s:
    s.sendall(sys.argv[3].encode())
    reply = b""
    while chunk := s.recv(4096):
        reply += chunk
print(reply.decode(errors="replace"))
"""
# sys.argv: host port payload. Prints the first datagram that comes back.
UDP_SEND = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
s.sendto(sys.argv[3].encode(), (sys.argv[1], int(sys.argv[2])))
print(s.recvfrom(4096)[0].decode(errors="replace"))
"""
# sys.argv: server udp|tcp name. An A query straight to a resolver at `server`:53.
DNS_QUERY = """
import socket, sys
server, proto, name = sys.argv[1:4]
qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\\0"
query = b"\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00" + qname + b"\\0\\1\\0\\1"
if proto == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.sendto(query, (server, 53))
    reply = s.recvfrom(4096)[0]
else:
    s = socket.create_connection((server, 53), timeout=3)
    s.sendall(len(query).to_bytes(2, "big") + query)
    reply = s.recv(4096)[2:]
print("answer", socket.inet_ntoa(reply[-4:]))
"""
# sys.argv: proxy-host proxy-port target payload. Prints the proxy's status line, then what
# the target answers through the tunnel when the proxy opens one.
CONNECT = """
import socket, sys
target, payload = sys.argv[3], sys.argv[4]
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
s.sendall(f"CONNECT {target} HTTP/1.1\\r\\nHost: {target}\\r\\n\\r\\n".encode())
head = b""
while b"\\r\\n\\r\\n" not in head and (chunk := s.recv(4096)):
    head += chunk
print(head.split(b"\\r\\n", 1)[0].decode(errors="replace"))
if head.split(b" ")[1:2] == [b"200"]:
    s.sendall(payload.encode() + b"\\n")
    print(s.recv(4096).decode(errors="replace").strip())
"""
# sys.argv: names. Prints {name: address or null}.
RESOLVE = """
import json, socket, sys
found = {}
for name in sys.argv[1:]:
    try:
        found[name] = socket.gethostbyname(name)
    except OSError:
        found[name] = None
print(json.dumps(found))
"""
# sh -c: $1 remote URL, $2 branch. A fresh one-commit repository pushed to the remote.
GIT_PUSH = """
set -e
cd "$(mktemp -d)"
git init --quiet .
git -c user.name=canary -c user.email=canary@canary.test commit --quiet --allow-empty -m "$2"
timeout 20 git push --quiet "$1" "HEAD:refs/heads/$2"
"""


@dataclass(frozen=True)
class Response:
    """An HTTP response as curl saw it; status 0 when none arrived."""

    status: int
    headers: str
    body: str
    error: str


def curl(container: Target, url: str, *, proxy: str | None = None,
         without_proxy_env: bool = False) -> Response:
    """GET `url` with curl inside `container` (through `proxy` when given)."""
    argv = ["curl", "-sS", "-i", "--max-time", "5"]
    if proxy:
        argv += ["--proxy", proxy]
    if without_proxy_env:
        argv = ["env", *(f"--unset={v}" for v in PROXY_VARS), *argv]
    result = in_container(container, *argv, url)
    # text mode has turned every CRLF into LF
    head, _, body = result.stdout.partition("\n\n")
    if result.returncode != 0 or not head.startswith("HTTP/"):
        return Response(0, head, body, result.stderr.strip())
    return Response(int(head.split()[1]), head, body, "")


def tcp_send(container: Target, host: str, port: int, payload: str) -> str:
    """What `host:port` answers to `payload`; empty when no connection was made."""
    result = py(container, TCP_SEND, host, str(port), payload)
    return result.stdout if result.returncode == 0 else ""


def udp_send(container: Target, host: str, port: int, payload: str) -> str:
    """The first datagram `host:port` sends back; empty when nothing came back."""
    result = py(container, UDP_SEND, host, str(port), payload)
    return result.stdout if result.returncode == 0 else ""


def dns_query(container: Target, server: str, proto: str, name: str) -> str:
    """Ask `server`:53 (over udp or tcp) for `name`; the A record it answered, or ''."""
    result = py(container, DNS_QUERY, server, proto, name)
    return result.stdout.removeprefix("answer ").strip() if result.returncode == 0 else ""

def http_get(path: str) -> str:
    """A minimal HTTP/1.0 request line for a raw socket."""
    return f"GET /{path} HTTP/1.0\r\nHost: canary\r\n\r\n"


def connect(container: Target, proxy: str, target: str, payload: str) -> tuple[int, str]:
    """CONNECT `target` through `proxy` (host:port): (status, what the tunnel answered)."""
    host, _, port = proxy.rpartition(":")
    result = py(container, CONNECT, host, port, target, payload)
    lines = result.stdout.splitlines()
    parts = lines[0].split() if lines else []
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    return status, "\n".join(lines[1:])


def resolve(container: Target, *names: str) -> dict[str, str | None]:
    """Each name's IPv4 address as the container's resolver sees it (None: no answer)."""
    result = py(container, RESOLVE, *names)
    assert result.returncode == 0, result.stderr
    found: dict[str, str | None] = json.loads(result.stdout)
    return found


def git_push(container: Target, remote: str, branch: str) -> int:
    """Push a one-commit branch from inside `container`; the exit code."""
    return in_container(container, "sh", "-c", GIT_PUSH, "sh", remote, branch).returncode


def assert_direct_blocked(canary: Canary, *, control: Target, agent: Target) -> None:
    """TCP and UDP straight to the canary: the control's request arrives, the agent's gets
    no answer and never arrives."""
    ctl, mark = marker("tcp-ctl"), marker("tcp-agent")
    assert "canary-http" in tcp_send(control, canary.ip, 8080, http_get(ctl))
    canary.wait_for(ctl)
    assert tcp_send(agent, canary.ip, 8080, http_get(mark)) == ""
    ctl_udp, mark_udp = marker("udp-ctl"), marker("udp-agent")
    assert udp_send(control, canary.ip, 9999, ctl_udp).strip() == "canary-udp"
    canary.wait_for(ctl_udp)
    assert udp_send(agent, canary.ip, 9999, mark_udp) == ""
    canary.assert_never([mark, mark_udp])
