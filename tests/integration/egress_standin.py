"""Stand-ins for a code forge and a package index, served over HTTPS with the machine's
test CA from a container on a session's egress network, under the real hosts' names as
network aliases. It serves a real git repository over smart HTTP (`git http-backend`,
pushes enabled) and answers any other request by echoing it. Nothing leaves the machine."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.canary import in_container, wait_until
from tests.integration.helpers import BASE_IMAGE, podman
from tests.integration.model_standin import server_cert

ALIASES = ("github.com", "api.github.com", "pypi.org", "files.pythonhosted.org",
           "api.paude-test.example", "plain.paude-test.example", "offlist.paude-test.example")
LOG = "/tmp/egress-standin.log"
REPO = "/srv/git/org/project.git"
PRIVATE_REPO = "/srv/git/org/private.git"

# Runs inside the stand-in as `python3 -c`: one JSON line per request in LOG.
SCRIPT = r'''
import hashlib, json, os, ssl, subprocess
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = "/tmp/egress-standin.log"
# Blob bytes: a pattern of prime length, so a piece lost, repeated or reordered at any
# 4 KB or 64 KB boundary changes the digest.
# Three copies in a row, so any piece of up to 64 KB from any offset is one slice (the
# benchmark times downloads from this server: serving must stay as cheap as a memcpy).
PATTERN = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(2048))[:65521]
PATTERNS = memoryview(PATTERN * 3)
# Served only to a request with credentials (which the stand-in does not check).
PRIVATE = "/org/private.git/"

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            body = self.read_chunked()
        with open(LOG, "a") as log:
            log.write(json.dumps({"method": self.command, "path": self.path,
                                  "host": self.headers.get("host", ""),
                                  "auth": self.headers.get("authorization", "")}) + "\n")
        path, _, query = self.path.partition("?")
        if path.startswith(PRIVATE) and not self.headers.get("authorization"):
            self.send_response(401)
            self.send_header("www-authenticate", 'Basic realm="standin"')
            self.send_header("content-length", "0")
            self.end_headers()
            return
        if path.startswith(("/org/project.git/", PRIVATE)):
            return self.git(path, query, body)
        if "/blob/" in path:
            size = int(path.rsplit("/", 1)[1])
            self.send_response(200)
            self.send_header("content-length", str(size))
            self.end_headers()
            sent = 0
            while sent < size:
                start = sent % len(PATTERN)
                piece = PATTERNS[start:start + min(65536, size - sent)]
                self.wfile.write(piece)
                sent += len(piece)
            return
        reply = f"standin {self.command} {self.path}\n".encode()
        self.send_response(200)
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply)

    def read_chunked(self):
        data = b""
        while True:
            size = int(self.rfile.readline().strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return data
            data += self.rfile.read(size)
            self.rfile.readline()

    def git(self, path, query, body):
        env = {"GIT_PROJECT_ROOT": "/srv/git", "GIT_HTTP_EXPORT_ALL": "1",
               "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": self.command,
               "CONTENT_TYPE": self.headers.get("content-type", ""),
               "CONTENT_LENGTH": str(len(body)), "REMOTE_USER": "standin",
               "REMOTE_ADDR": self.client_address[0],
               "GIT_PROTOCOL": self.headers.get("git-protocol", ""),
               "PATH": "/usr/bin:/bin"}
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status = 200
        headers = []
        for line in head.split(b"\r\n"):
            name, _, value = line.decode().partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = handle_any


server = ThreadingHTTPServer(("0.0.0.0", 443), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("/certs/server.crt", "/certs/server.key")
server.socket = context.wrap_socket(server.socket, server_side=True)
open(LOG, "a").close()
server.serve_forever()
'''

SETUP = f"""set -e
git init -q --bare -b main {REPO}
git -C {REPO} config http.receivepack true
work=$(mktemp -d)
git -C "$work" init -q -b main
echo upstream > "$work/README"
git -C "$work" add README
git -C "$work" -c user.name=U -c user.email=u@example.com commit -qm upstream
git -C "$work" push -q {REPO} main
git clone -q --bare {REPO} {PRIVATE_REPO}
git -C {PRIVATE_REPO} config http.receivepack true
"""


@dataclass(frozen=True)
class EgressStandIn:
    """A running stand-in and what it received."""

    name: str

    def requests(self) -> list[dict[str, Any]]:
        text = in_container(self.name, "cat", LOG).stdout
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def refs(self, repo: str = REPO) -> str:
        return in_container(self.name, "git", "-C", repo, "for-each-ref").stdout


def start(name: str, network: str, *, session: str, folder: Path) -> EgressStandIn:
    """Start the stand-in on `network` under every alias and wait until it serves."""
    return start_server(name, network, session=session, folder=folder, aliases=ALIASES)


def start_server(name: str, network: str, *, session: str, folder: Path,
                 aliases: tuple[str, ...]) -> EgressStandIn:
    """The stand-in under `aliases` (a certificate for each, signed by the test CA)."""
    certs = server_cert(folder, aliases)
    argv = ["run", "--detach", "--name", name, "--label", f"paude.session={session}",
            "--network", network, "--volume", f"{certs}:/certs:ro"]
    for alias in aliases:
        argv += ["--network-alias", alias]
    podman(*argv, BASE_IMAGE, "sh", "-c", f"{SETUP}\nexec python3 -c \"$0\"", SCRIPT)

    def ready() -> bool:
        state = podman("inspect", name, "--format", "{{.State.Running}}", check=False)
        if state.stdout.strip() != "true":
            logs = podman("logs", name, check=False)
            raise AssertionError(f"stand-in {name} exited:\n{logs.stdout}{logs.stderr}")
        return in_container(name, "test", "-e", LOG).returncode == 0

    wait_until(ready, timeout=30, what=f"stand-in {name} to start")
    return EgressStandIn(name)
