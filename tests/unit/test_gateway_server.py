"""The model gateway (templates/gateway.py) against stand-in upstreams on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from paude.templates.gateway import Config, Gateway, GoogleToken, from_environment, scrub

KEY = "sk-ant-real-key-0123456789abcdef"
REFRESH = "1//real-refresh-token-abcdef"
CLIENT_SECRET = "real-client-secret-xyz"
PROJECT = "proj-test-1"
VERTEX_PATH = (f"/vertex/v1/projects/{PROJECT}/locations/us-east5/publishers/anthropic/"
               "models/claude-sonnet-4@20250514:streamRawPredict")


class Upstream:
    """A stand-in model API and token endpoint that records what it receives."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.tokens: dict[str, float] = {}
        self.minted = 0
        self.lifetime = 3600
        self.error_body = ""
        self.delay = 0.0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append({"path": request.rel_url.raw_path_qs, "method": request.method,
                              "headers": dict(request.headers), "body": body})
        if request.path == "/token":
            self.minted += 1
            token = f"ya29.token-{self.minted}"
            self.tokens[token] = time.time() + self.lifetime
            return web.json_response({"access_token": token, "expires_in": self.lifetime,
                                      "token_type": "Bearer"})
        if self.error_body:
            return web.Response(status=401, text=self.error_body,
                                headers={"x-echo-key": request.headers.get("x-api-key", "")})
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
        if request.path.startswith("/v1/projects/") and self.tokens.get(bearer, 0) < time.time():
            return web.json_response({"error": "expired token"}, status=401)
        response = web.StreamResponse(headers={"content-type": "text/event-stream",
                                               "request-id": "req_1", "set-cookie": "a=b"})
        await response.prepare(request)
        for index in range(3):
            await response.write(f"event: ping\ndata: {index}\n\n".encode())
            await asyncio.sleep(self.delay)
        await response.write_eof()
        return response


Scenario = Callable[[ClientSession, str, Upstream, Gateway], Awaitable[None]]


def run(scenario: Scenario, *, mode: str = "api_key", google: dict[str, Any] | None = None,
        anthropic: bool = True, log_file: Path | None = None) -> None:
    async def main() -> None:
        upstream = Upstream()
        async with TestServer(upstream.app()) as up:
            base = str(up.make_url("")).rstrip("/")
            config = Config(anthropic_upstream=base if anthropic else None, anthropic_mode=mode,
                            vertex_upstream=base, vertex_global=base, vertex_project=PROJECT,
                            token_uri=f"{base}/token",
                            log_file=str(log_file) if log_file else None)
            token = GoogleToken(google, config.token_uri) if google else None
            gateway = Gateway(config, anthropic_credential=KEY, google=token)
            async with TestServer(gateway.app()) as gw, ClientSession() as http:
                await scenario(http, str(gw.make_url("")).rstrip("/"), upstream, gateway)

    # Not asyncio.run: it leaves no current event loop, which later Pulumi mock tests need.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


ADC = {"type": "authorized_user", "client_id": "cid", "client_secret": CLIENT_SECRET,
       "refresh_token": REFRESH}


def test_messages_pass_with_the_real_key_and_the_placeholder_dropped() -> None:
    async def scenario(http: ClientSession, gw: str, up: Upstream, _: Gateway) -> None:
        async with http.post(f"{gw}/v1/messages?beta=true", data=b'{"stream": true}', headers={
                "x-api-key": "placeholder", "authorization": "Bearer placeholder",
                "anthropic-version": "2023-06-01", "anthropic-beta": "tools-1",
                "cookie": "c=1", "x-forwarded-for": "1.2.3.4"}) as resp:
            assert resp.status == 200
            assert resp.headers["request-id"] == "req_1"
            assert "set-cookie" not in resp.headers
            await resp.read()
        sent = up.requests[0]
        assert sent["path"] == "/v1/messages?beta=true"
        assert sent["body"] == b'{"stream": true}'
        assert sent["headers"]["x-api-key"] == KEY
        assert "authorization" not in {k.lower() for k in sent["headers"]}
        assert sent["headers"]["anthropic-version"] == "2023-06-01"
        assert sent["headers"]["anthropic-beta"] == "tools-1"
        assert "cookie" not in {k.lower() for k in sent["headers"]}
        assert "x-forwarded-for" not in {k.lower() for k in sent["headers"]}

    run(scenario)


def test_oauth_token_is_a_bearer_with_the_oauth_beta() -> None:
    async def scenario(http: ClientSession, gw: str, up: Upstream, _: Gateway) -> None:
        async with http.post(f"{gw}/v1/messages/count_tokens", data=b"{}",
                             headers={"anthropic-beta": "a,b"}) as resp:
            assert resp.status == 200
        headers = up.requests[0]["headers"]
        assert headers["Authorization"] == f"Bearer {KEY}"
        assert "x-api-key" not in {k.lower() for k in headers}
        assert headers["anthropic-beta"] == "a,b,oauth-2025-04-20"

    run(scenario, mode="oauth")


def test_sse_streams_unbuffered() -> None:
    async def scenario(http: ClientSession, gw: str, up: Upstream, _g: Gateway) -> None:
        up.delay = 0.3
        async with http.post(f"{gw}/v1/messages", data=b"{}") as resp:
            start = time.monotonic()
            first = await resp.content.readuntil(b"\n\n")
            # The upstream sends three events 0.3 s apart: the first arrives before the rest.
            assert first == b"event: ping\ndata: 0\n\n"
            assert time.monotonic() - start < 0.25
            rest = await resp.read()
            assert rest.count(b"event: ping") == 2

    run(scenario)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/v1/messages"), ("POST", "/v1/models"), ("POST", "/v1/files"),
    ("POST", "/v1/messages/batches"), ("POST", "/v1/messages/../files"),
    ("POST", "/v1/messages%2F..%2Ffiles"), ("POST", "/upload/storage/v1/b/x/o"),
    ("POST", "/vertex/v1/projects/other-project/locations/us-east5/publishers/anthropic/"
             "models/claude:rawPredict"),
    ("POST", "/vertex/v1/projects/proj-test-1/locations/us-east5/publishers/google/"
             "models/gemini:generateContent"),
    ("PUT", VERTEX_PATH),
])
def test_everything_else_is_refused_and_logged(method: str, path: str, tmp_path: Path) -> None:
    log = tmp_path / "access.log"

    async def scenario(http: ClientSession, gw: str, up: Upstream, _: Gateway) -> None:
        async with http.request(method, f"{gw}{path}", data=b"{}") as resp:
            assert resp.status == 403
            body = await resp.json()
            assert body["error"]["message"].startswith("paude gateway: ")
        # Control: the model path passes on the same gateway.
        async with http.post(f"{gw}/v1/messages", data=b"{}") as resp:
            assert resp.status == 200
            await resp.read()
        assert [r["path"] for r in up.requests] == ["/v1/messages"]

    run(scenario, google=ADC, log_file=log)
    from paude.proxylog import blocked

    records = blocked(log.read_text())
    assert len(records) == 1 and records[0].method == method
    assert records[0].result == "GATEWAY_DENIED"


def test_error_bodies_are_scrubbed_and_headers_never_reflected() -> None:
    async def scenario(http: ClientSession, gw: str, up: Upstream, _: Gateway) -> None:
        up.error_body = f'{{"error": "invalid x-api-key {KEY}"}}'
        async with http.post(f"{gw}/v1/messages", data=b"{}") as resp:
            assert resp.status == 401
            text = await resp.text()
            assert KEY not in text and "[redacted by paude]" in text
            assert KEY not in str(dict(resp.headers))
            assert "x-echo-key" not in resp.headers

    run(scenario)


def test_vertex_tokens_are_minted_and_refreshed_before_expiry() -> None:
    async def scenario(http: ClientSession, gw: str, up: Upstream, _: Gateway) -> None:
        up.lifetime = 2
        for _round in range(2):
            async with http.post(f"{gw}{VERTEX_PATH}", data=b"{}") as resp:
                assert resp.status == 200, await resp.text()
                await resp.read()
            await asyncio.sleep(1.6)
        assert up.minted == 2
        token_request = up.requests[0]
        assert token_request["path"] == "/token"
        assert REFRESH.encode() in token_request["body"].replace(b"%2F", b"/")
        model = up.requests[1]
        assert model["path"].startswith(f"/v1/projects/{PROJECT}/locations/us-east5/")
        assert model["headers"]["Authorization"] == "Bearer ya29.token-1"

    run(scenario, google=ADC, anthropic=False)


def test_no_route_without_a_credential() -> None:
    async def scenario(http: ClientSession, gw: str, up: Upstream, _: Gateway) -> None:
        async with http.post(f"{gw}{VERTEX_PATH}", data=b"{}") as resp:
            assert resp.status == 403
            assert "no Vertex AI route" in (await resp.json())["error"]["message"]
        async with http.post(f"{gw}/v1/messages", data=b"{}") as resp:
            assert resp.status == 403
        assert up.requests == []

    run(scenario, anthropic=False)


def test_service_account_assertion_is_signed_rs256() -> None:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    from paude.templates.gateway import service_account_assertion

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    jwt = service_account_assertion({"client_email": "sa@p.iam.gserviceaccount.com",
                                     "private_key": pem, "private_key_id": "k1"}, "https://t/x")
    head, claims, signature = jwt.split(".")
    import base64

    def unb64(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    assert json.loads(unb64(claims))["aud"] == "https://t/x"
    key.public_key().verify(unb64(signature), f"{head}.{claims}".encode(), padding.PKCS1v15(),
                            hashes.SHA256())


def test_environment_secrets_are_taken_out() -> None:
    environ = {"PAUDE_GATEWAY_CONFIG": json.dumps({"port": 9000}),
               "PAUDE_GATEWAY_ANTHROPIC_CREDENTIAL": KEY,
               "PAUDE_GATEWAY_GOOGLE_CREDENTIALS": json.dumps(ADC)}
    gateway = from_environment(environ)
    assert gateway.config.port == 9000 and gateway.anthropic_credential == KEY
    assert not any(k.startswith("PAUDE_GATEWAY_") for k in environ)
    assert KEY not in repr(gateway.google) and REFRESH not in repr(gateway.google)
    with pytest.raises(ValueError, match="unknown gateway settings: nope"):
        Config.load('{"nope": 1}')


def test_scrub_covers_base64_forms() -> None:
    import base64

    encoded = base64.b64encode(KEY.encode())
    assert scrub(b"a " + KEY.encode() + b" b " + encoded, [KEY]) == (
        b"a [redacted by paude] b [redacted by paude]")
