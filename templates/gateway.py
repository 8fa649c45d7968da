"""paude's model gateway: the agent's only path to the model, and the only holder of the
real model credentials.

Runs in the session's gateway container (python3 and aiohttp from the Debian archive).
The agent talks to it with placeholder credentials through Claude Code's documented
gateway variables (ANTHROPIC_BASE_URL, ANTHROPIC_VERTEX_BASE_URL); the gateway forwards
only the model API's paths, with the real credential added, through the session's proxy.
Everything else is refused with 403 and logged for `paude blocked`.

Configuration: PAUDE_GATEWAY_CONFIG (JSON, see Config.load). Credentials:
PAUDE_GATEWAY_ANTHROPIC_CREDENTIAL and PAUDE_GATEWAY_GOOGLE_CREDENTIALS (the ADC JSON),
read once and removed from the environment.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import ClientSession, ClientTimeout, web

try:
    from . import gateway_github as github  # imported as paude.templates (tests)
except ImportError:  # run as a script in the gateway container, beside it
    import gateway_github as github  # type: ignore[no-redef]

LOG = logging.getLogger("paude-gateway")
ANTHROPIC_PATHS = ("/v1/messages", "/v1/messages/count_tokens")
# Vertex AI's Anthropic endpoints (count-tokens is a model named count-tokens there). No
# percent-encoding, no dots in segments: the path cannot be steered anywhere else.
VERTEX_PATH = re.compile(
    r"^/vertex/v1/projects/(?P<project>[a-z][a-z0-9-]{4,28}[a-z0-9])"
    r"/locations/(?P<region>[a-z0-9-]{1,40})/publishers/anthropic/models/"
    r"(?P<model>[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,99}):(?P<method>rawPredict|streamRawPredict)$")
# Request headers the upstream needs; credentials the agent sends are never forwarded.
FORWARD_REQUEST = ("content-type", "accept", "anthropic-version", "anthropic-beta",
                   "user-agent")
FORWARD_RESPONSE = ("content-type", "request-id", "x-request-id", "retry-after")
OAUTH_BETA = "oauth-2025-04-20"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
CLOUD_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
MAX_BODY = 64 * 1024 * 1024
MAX_ERROR_BODY = 1024 * 1024


class Refused(Exception):
    """A request the gateway does not forward; the message says why."""


@dataclass
class Config:
    """What the gateway serves, from PAUDE_GATEWAY_CONFIG."""

    port: int = 8080
    proxy: str | None = None
    anthropic_upstream: str | None = None
    anthropic_mode: str = "api_key"  # api_key | auth_token | oauth
    vertex_upstream: str | None = None  # "https://{region}-aiplatform.googleapis.com"
    vertex_global: str = "https://aiplatform.googleapis.com"
    vertex_project: str | None = None
    token_uri: str | None = None  # overrides the credential file's (tests)
    log_file: str | None = None
    # The GitHub route (gateway_github), present when the session allows GitHub.
    github_upstream: str | None = None
    github_api_upstream: str | None = None
    github_token_file: str = github.TOKEN_FILE
    github_writes: list[str] = field(default_factory=list)  # OWNER/REPO or OWNER/*

    @classmethod
    def load(cls, text: str) -> Config:
        """Parse the JSON configuration; unknown keys are an error."""
        data = json.loads(text)
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown gateway settings: {', '.join(sorted(unknown))}")
        return cls(**data)


@dataclass
class GoogleToken:
    """Access tokens minted from an ADC file (authorized_user or service_account) and
    refreshed before they expire; the long-lived secret never leaves this process."""

    info: dict[str, Any] = field(repr=False)
    token_uri: str | None = None
    proxy: str | None = None
    _token: str = field(default="", repr=False)
    _expiry: float = 0.0
    _lifetime: float = 0.0
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def secrets(self) -> list[str]:
        """Every secret value this source knows (scrubbed from error bodies)."""
        keys = ("refresh_token", "client_secret", "private_key", "private_key_id")
        return [v for v in (*(str(self.info.get(k) or "") for k in keys), self._token) if v]

    def _fresh(self) -> bool:
        margin = min(60.0, self._lifetime / 4)
        return bool(self._token) and time.time() < self._expiry - margin

    async def get(self, http: ClientSession) -> str:
        """A valid access token, minting a new one when the current one is about to expire."""
        async with self._lock:
            if not self._fresh():
                await self._mint(http)
            return self._token

    async def _mint(self, http: ClientSession) -> None:
        kind = self.info.get("type")
        uri = self.token_uri or self.info.get("token_uri") or GOOGLE_TOKEN_URI
        if kind == "authorized_user":
            form = {"grant_type": "refresh_token", "client_id": self.info["client_id"],
                    "client_secret": self.info["client_secret"],
                    "refresh_token": self.info["refresh_token"]}
        elif kind == "service_account":
            form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                    "assertion": service_account_assertion(self.info, uri)}
        else:
            raise Refused(f"unsupported Google credential type {kind!r}")
        async with http.post(uri, data=urlencode(form), proxy=self.proxy, headers={
                "content-type": "application/x-www-form-urlencoded"}) as resp:
            body = await resp.text()
            if resp.status != 200:
                LOG.error("token endpoint answered %s", resp.status)
                raise Refused(f"the Google token endpoint refused to mint a token "
                              f"(HTTP {resp.status})")
            data = json.loads(body)
        self._token = str(data["access_token"])
        self._lifetime = float(data.get("expires_in", 3600))
        self._expiry = time.time() + self._lifetime
        LOG.info("minted a Google access token valid for %.0fs", self._lifetime)


def service_account_assertion(info: dict[str, Any], audience: str) -> str:
    """A signed JWT (RS256) exchanging a service-account key for an access token."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": info.get("private_key_id", "")}
    claims = {"iss": info["client_email"], "scope": CLOUD_SCOPE, "aud": audience,
              "iat": now, "exp": now + 3600}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise Refused("the service account key is not an RSA key")
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


@dataclass
class Route:
    """Where one allowed request goes, and how it is authorised."""

    url: str
    headers: dict[str, str]
    secrets: list[str]


class Gateway:
    """The aiohttp application: route, authorise, stream."""

    def __init__(self, config: Config, *, anthropic_credential: str | None,
                 google: GoogleToken | None) -> None:
        self.config = config
        self.anthropic_credential = anthropic_credential
        self.google = google
        self.http: ClientSession | None = None

    def app(self) -> web.Application:
        """The web application; every path and method reaches one handler."""
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, _app: web.Application) -> None:
        self.http = ClientSession(timeout=ClientTimeout(total=None, sock_connect=30,
                                                        sock_read=600),
                                  auto_decompress=True, trust_env=False)

    async def _stop(self, _app: web.Application) -> None:
        if self.http is not None:
            await self.http.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Forward a model request, or refuse it with 403 and a reason."""
        try:
            route = await self.route(request)
        except Refused as exc:
            self.log(request, 403, "GATEWAY_DENIED", str(exc))
            return web.json_response(
                {"type": "error", "error": {"type": "permission_error",
                                            "message": f"paude gateway: {exc}"}}, status=403)
        return await self.forward(request, route)

    async def route(self, request: web.Request) -> Route:
        """Decide where a request goes; Refused for anything that is not a model call."""
        path = request.rel_url.raw_path
        if github.handles(path):
            return self._github(request, path)
        if request.method != "POST":
            raise Refused(f"{request.method} {path} is not a model API call (only POST)")
        if path in ANTHROPIC_PATHS:
            if not self.config.anthropic_upstream or not self.anthropic_credential:
                raise Refused("this session has no Anthropic API route (allowed_domains "
                              "needs 'claude' and the host an Anthropic credential)")
            return self._anthropic(request, path)
        match = VERTEX_PATH.match(path)
        if match:
            if not self.config.vertex_upstream or self.google is None or self.http is None:
                raise Refused("this session has no Vertex AI route (allowed_domains needs "
                              "'vertexai' and the host Google credentials)")
            project = self.config.vertex_project
            if project and match["project"] != project:
                raise Refused(f"Vertex AI project {match['project']} is not this session's "
                              f"project {project}")
            region = match["region"]
            base = (self.config.vertex_global if region == "global"
                    else self.config.vertex_upstream.replace("{region}", region))
            token = await self.google.get(self.http)
            headers = self._headers(request)
            headers["authorization"] = f"Bearer {token}"
            return Route(base + path[len("/vertex"):], headers, self.google.secrets())
        raise Refused(f"{path} is not a model API path")

    def _anthropic(self, request: web.Request, path: str) -> Route:
        credential = self.anthropic_credential or ""
        headers = self._headers(request)
        if self.config.anthropic_mode == "api_key":
            headers["x-api-key"] = credential
        else:
            headers["authorization"] = f"Bearer {credential}"
        if self.config.anthropic_mode == "oauth":
            betas = [b.strip() for b in headers.get("anthropic-beta", "").split(",") if b.strip()]
            headers["anthropic-beta"] = ",".join(dict.fromkeys([*betas, OAUTH_BETA]))
        query = request.rel_url.raw_query_string
        url = f"{self.config.anthropic_upstream}{path}" + (f"?{query}" if query else "")
        return Route(url, headers, [credential])

    def _github(self, request: web.Request, path: str) -> Route:
        decision = github.decide(request.method, path, request.rel_url.raw_query_string,
                                 git_upstream=self.config.github_upstream,
                                 api_upstream=self.config.github_api_upstream,
                                 writes=self.config.github_writes)
        if not decision.url:
            raise Refused(decision.reason)
        token = github.read_token(self.config.github_token_file)
        if not token:
            raise Refused("no GitHub token: give one with `paude start --github-token`")
        headers = {k: v for k in github.FORWARD_REQUEST
                   if (v := request.headers.get(k)) is not None}
        headers["authorization"] = github.authorization(token, api=decision.api)
        return Route(decision.url, headers, [token])

    @staticmethod
    def _headers(request: web.Request) -> dict[str, str]:
        return {k: v for k in FORWARD_REQUEST if (v := request.headers.get(k)) is not None}

    async def forward(self, request: web.Request, route: Route) -> web.StreamResponse:
        """Send the request upstream; stream a success as it arrives (SSE), scrub an error."""
        assert self.http is not None
        body = await request.read()
        try:
            # The agent's method (routes admit only the ones they allow); never a redirect
            # followed on the agent's behalf with the credential attached.
            upstream = await self.http.request(request.method, route.url, data=body,
                                               headers=route.headers, proxy=self.config.proxy,
                                               allow_redirects=False)
        except Exception as exc:  # any failure upstream is a 502 to the agent
            self.log(request, 502, "GATEWAY_UPSTREAM_ERROR", type(exc).__name__)
            return web.json_response({"type": "error", "error": {
                "type": "api_error", "message": "paude gateway: the model API is unreachable "
                f"({type(exc).__name__})"}}, status=502)
        async with upstream:
            headers = {k: v for k, v in upstream.headers.items()
                       if k.lower() in FORWARD_RESPONSE or k.lower().startswith("anthropic-")}
            if upstream.status >= 300:
                raw = await upstream.content.read(MAX_ERROR_BODY)
                self.log(request, upstream.status, "GATEWAY_UPSTREAM_STATUS", "")
                return web.Response(status=upstream.status, headers=headers,
                                    body=scrub(raw, route.secrets))
            response = web.StreamResponse(status=upstream.status, headers=headers)
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            self.log(request, upstream.status, "GATEWAY_FORWARDED", "")
            return response

    def log(self, request: web.Request, status: int, result: str, reason: str) -> None:
        """One access-log line in the proxy's format (paude blocked reads both)."""
        url = f"http://{request.host}{request.rel_url.raw_path_qs}".replace(" ", "%20")
        peer = request.remote or "-"
        line = f"{time.time():.3f} {peer} {request.method} {url} {status} {result}"
        if reason:
            LOG.warning("%s: %s", line, reason)
        if self.config.log_file:
            with open(self.config.log_file, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")


def scrub(raw: bytes, secrets: list[str]) -> bytes:
    """Remove every secret value (and its base64 forms) from an upstream body."""
    for secret in sorted((s for s in secrets if len(s) >= 8), key=len, reverse=True):
        for form in {secret, base64.b64encode(secret.encode()).decode()}:
            raw = raw.replace(form.encode(), b"[redacted by paude]")
    return raw


def from_environment(environ: dict[str, str]) -> Gateway:
    """Build the gateway from its environment, removing the secrets from it."""
    config = Config.load(environ.pop("PAUDE_GATEWAY_CONFIG", "{}"))
    credential = environ.pop("PAUDE_GATEWAY_ANTHROPIC_CREDENTIAL", "") or None
    google_text = environ.pop("PAUDE_GATEWAY_GOOGLE_CREDENTIALS", "")
    google = (GoogleToken(json.loads(google_text), config.token_uri, config.proxy)
              if google_text else None)
    return Gateway(config, anthropic_credential=credential, google=google)


def main() -> int:
    """Serve until stopped."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="paude-gateway: %(levelname)s %(message)s")
    environ = dict(os.environ)
    for key in ("PAUDE_GATEWAY_ANTHROPIC_CREDENTIAL", "PAUDE_GATEWAY_GOOGLE_CREDENTIALS"):
        os.environ.pop(key, None)
    try:
        gateway = from_environment(environ)
    except (ValueError, KeyError, TypeError) as exc:
        LOG.error("bad configuration: %s", exc)
        return 64
    web.run_app(gateway.app(), host="0.0.0.0", port=gateway.config.port,
                print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
