"""A stand-in for the model APIs (Anthropic Messages, Vertex AI, Google's token endpoint),
served over HTTPS with a test CA from a container on a session's egress network, under
the real hosts' names as network aliases. Nothing leaves the machine.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.integration.canary import in_container, wait_until
from tests.integration.helpers import BASE_IMAGE, podman

ALIASES = ("api.anthropic.com", "oauth2.googleapis.com", "us-east5-aiplatform.googleapis.com",
           "www.googleapis.com", "allowed.paude-test.example")
STANDIN_LOG = "/tmp/model.log"
# The CA is kept per machine: it is hashed into the session images (image.ca_certificates),
# so a stable CA lets every run reuse the cached images, Claude Code's included.
CA_DIR = Path.home() / ".cache" / "paude" / "test-model-ca"

# Runs inside the stand-in as `python3 -c`. One JSON line per request in STANDIN_LOG.
# /v1/messages: checks the real key (401 echoing what it got otherwise, or when asked to:
# the gateway must scrub it); answers a Bash tool call that commits, then a final text once
# the tool result comes back, as SSE when stream is true. Vertex: checks that the bearer
# token was minted by /token and has not expired. /token: mints TOKEN_LIFETIME-second tokens.
STANDIN_SCRIPT = r'''
import json, os, ssl, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG = "/tmp/model.log"
KEY = os.environ["STANDIN_KEY"]
LIFETIME = int(os.environ.get("TOKEN_LIFETIME", "3"))
COMMAND = os.environ["STANDIN_COMMAND"]
TOKENS = {}
LOCK = threading.Lock()


def sse(kind, data):
    return f"event: {kind}\ndata: {json.dumps(data)}\n\n".encode()


def message(content, stop):
    return {"id": "msg_standin", "type": "message", "role": "assistant",
            "model": "claude-standin", "content": content, "stop_reason": stop,
            "stop_sequence": None, "usage": {"input_tokens": 10, "output_tokens": 5}}


def reply(body):
    done = any(isinstance(m.get("content"), list) and any(
        isinstance(c, dict) and c.get("type") == "tool_result" for c in m["content"])
        for m in body.get("messages", []))
    if done:
        return [{"type": "text", "text": "committed"}], "end_turn"
    return [{"type": "tool_use", "id": "toolu_standin", "name": "Bash",
             "input": {"command": COMMAND, "description": "commit"}}], "tool_use"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, status, payload, ctype="application/json"):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.record(b"")
        self.send(200, b"standin-ok", "text/plain")

    def record(self, raw):
        with LOCK, open(LOG, "a") as log:
            log.write(json.dumps({"host": self.headers.get("host"), "method": self.command,
                                  "path": self.path, "headers": dict(self.headers),
                                  "body": raw.decode("utf-8", "replace")[:2000]}) + "\n")

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        self.record(raw)
        host = (self.headers.get("host") or "").split(":")[0]
        if self.path == "/token":
            token = f"ya29.standin-{time.time_ns()}"
            TOKENS[token] = time.time() + LIFETIME
            return self.send(200, {"access_token": token, "expires_in": LIFETIME,
                                   "token_type": "Bearer"})
        if host.endswith("aiplatform.googleapis.com"):
            bearer = (self.headers.get("authorization") or "").removeprefix("Bearer ")
            if TOKENS.get(bearer, 0) < time.time():
                return self.send(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
            return self.send(200, message([{"type": "text", "text": "vertex ok"}], "end_turn"))
        got = self.headers.get("x-api-key") or ""
        body = json.loads(raw or b"{}")
        if got != KEY or body.get("please_echo"):
            return self.send(401, {"type": "error", "error": {
                "type": "authentication_error", "message": f"invalid x-api-key: {got}"}})
        if self.path.startswith("/v1/messages/count_tokens"):
            return self.send(200, {"input_tokens": 10})
        content, stop = reply(body)
        if not body.get("stream"):
            return self.send(200, message(content, stop))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        out = [sse("message_start", {"type": "message_start", "message": message([], None)})]
        for index, block in enumerate(content):
            start = dict(block, input={}) if block["type"] == "tool_use" else dict(block, text="")
            out.append(sse("content_block_start", {"type": "content_block_start",
                                                   "index": index, "content_block": start}))
            delta = ({"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
                     if block["type"] == "tool_use" else
                     {"type": "text_delta", "text": block["text"]})
            out.append(sse("content_block_delta", {"type": "content_block_delta",
                                                   "index": index, "delta": delta}))
            out.append(sse("content_block_stop", {"type": "content_block_stop", "index": index}))
        out.append(sse("message_delta", {"type": "message_delta", "delta": {
            "stop_reason": stop, "stop_sequence": None}, "usage": {"output_tokens": 5}}))
        out.append(sse("message_stop", {"type": "message_stop"}))
        for chunk in out:
            self.wfile.write(chunk)
            self.wfile.flush()
        self.close_connection = True


server = ThreadingHTTPServer(("0.0.0.0", 443), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain("/certs/server.crt", "/certs/server.key")
server.socket = context.wrap_socket(server.socket, server_side=True)
open(LOG, "a").close()
server.serve_forever()
'''


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def standin_ca() -> Path:
    """The machine's stand-in CA certificate (created once, then reused)."""
    CA_DIR.mkdir(parents=True, exist_ok=True)
    key, cert = CA_DIR / "ca.key", CA_DIR / "ca.crt"
    if not cert.exists():
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                 "-subj", "/CN=paude model stand-in test CA", "-keyout", str(key),
                 "-out", str(cert))
    return cert


def server_cert(folder: Path, aliases: tuple[str, ...] = ALIASES) -> Path:
    """A server certificate for every alias, signed by the stand-in CA."""
    standin_ca()
    folder.mkdir(parents=True, exist_ok=True)
    ext = folder / "ext.cnf"
    ext.write_text("subjectAltName=" + ",".join(f"DNS:{a}" for a in aliases) + "\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=api.anthropic.com",
             "-keyout", str(folder / "server.key"), "-out", str(folder / "server.csr"))
    _openssl("x509", "-req", "-in", str(folder / "server.csr"), "-CA", str(CA_DIR / "ca.crt"),
             "-CAkey", str(CA_DIR / "ca.key"), "-CAcreateserial", "-days", "2",
             "-extfile", str(ext), "-out", str(folder / "server.crt"))
    (folder / "server.key").chmod(0o644)
    return folder


@dataclass(frozen=True)
class StandIn:
    """A running stand-in and what it received."""

    name: str

    def requests(self) -> list[dict[str, Any]]:
        text = in_container(self.name, "cat", STANDIN_LOG).stdout
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def start_standin(name: str, network: str, *, session: str, certs: Path, key: str,
                  command: str = "true", token_lifetime: int = 3) -> StandIn:
    """Start the stand-in on `network` under every alias and wait until it serves."""
    argv = ["run", "--detach", "--name", name, "--label", f"paude.session={session}",
            "--network", network, "--volume", f"{certs}:/certs:ro",
            "--env", f"STANDIN_KEY={key}", "--env", f"STANDIN_COMMAND={command}",
            "--env", f"TOKEN_LIFETIME={token_lifetime}"]
    for alias in ALIASES:
        argv += ["--network-alias", alias]
    podman(*argv, BASE_IMAGE, "python3", "-c", STANDIN_SCRIPT)

    def ready() -> bool:
        state = podman("inspect", name, "--format", "{{.State.Running}}", check=False)
        if state.stdout.strip() != "true":
            logs = podman("logs", name, check=False)
            raise AssertionError(f"stand-in {name} exited:\n{logs.stdout}{logs.stderr}")
        return in_container(name, "test", "-e", STANDIN_LOG).returncode == 0

    wait_until(ready, timeout=30, what=f"stand-in {name} to start")
    return StandIn(name)
