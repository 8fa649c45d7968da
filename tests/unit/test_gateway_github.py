"""The gateway's GitHub route (templates/gateway_github.py): the token added by the gateway,
read-only, against a stand-in upstream on loopback."""

from __future__ import annotations

import asyncio
import base64
import gzip
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from yarl import URL

from paude.templates import gateway_github as github
from paude.templates.gateway import Config, Gateway

TOKEN = "ghp_gatewayUnitToken0123456789"
BASIC = "Basic " + base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode()


class Forge:
    """A stand-in github.com / api.github.com that records what reaches it."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.echo_auth = False

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append({"method": request.method, "path": request.rel_url.raw_path_qs,
                              "headers": request.headers.copy(), "body": await request.read()})
        if self.echo_auth:
            return web.Response(status=401, text=f"bad credentials: "
                                f"{request.headers.get('authorization', '')}")
        return web.Response(text="ok", content_type="application/x-git-upload-pack-result")


Scenario = Callable[[ClientSession, str, Forge], Awaitable[None]]


def run(scenario: Scenario, token_file: Path) -> None:
    async def main() -> None:
        forge = Forge()
        async with TestServer(forge.app()) as up:
            base = str(up.make_url("")).rstrip("/")
            config = Config(github_upstream=base, github_api_upstream=f"{base}/api",
                            github_token_file=str(token_file))
            gateway = Gateway(config, anthropic_credential=None, google=None)
            async with TestServer(gateway.app()) as gw, ClientSession() as http:
                await scenario(http, str(gw.make_url("")).rstrip("/"), forge)

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "github-token"
    path.write_text(TOKEN + "\n", encoding="utf-8")
    return path


def test_clone_requests_carry_the_token_and_drop_the_agents(token_file: Path) -> None:
    async def scenario(http: ClientSession, gw: str, forge: Forge) -> None:
        async with http.get(f"{gw}/github/org/project.git/info/refs?service=git-upload-pack",
                            headers={"authorization": "Basic agent-made-up",
                                     "git-protocol": "version=2"}) as resp:
            assert resp.status == 200
        async with http.post(f"{gw}/github/org/project.git/git-upload-pack",
                             data=gzip.compress(b"0000"),
                             headers={"content-type": "application/x-git-upload-pack-request",
                                      "content-encoding": "gzip", "cookie": "c=1"}) as resp:
            assert resp.status == 200
        get, post = forge.requests
        assert get["path"] == "/org/project.git/info/refs?service=git-upload-pack"
        assert get["headers"]["Authorization"] == BASIC
        assert get["headers"]["Git-Protocol"] == "version=2"
        assert post["method"] == "POST" and post["body"] == b"0000"
        assert post["headers"]["Authorization"] == BASIC
        assert "Content-Encoding" not in post["headers"]  # decompressed on the way
        assert "Cookie" not in post["headers"]

    run(scenario, token_file)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/github/org/project.git/info/refs?service=git-receive-pack"),
    ("GET", "/github/org/project.git/info/refs?service=git%2Dreceive-pack"),
    ("POST", "/github/org/project.git/git-receive-pack"),
    ("POST", "/github/org/project.git/git-upload-pack/x"),
    ("PUT", "/github/org/project.git/info/refs"),
    ("POST", "/github-api/repos/org/project/issues"),
    ("DELETE", "/github-api/repos/org/project"),
    ("POST", "/github-api/graphql"),
    ("GET", "/github/org/%2e%2e/other"),
    ("GET", "/github/org/project/../../x"),
    ("GET", "/github//evil.example/x"),
])
def test_writes_and_ambiguous_paths_never_reach_github(method: str, path: str,
                                                       token_file: Path) -> None:
    async def scenario(http: ClientSession, gw: str, forge: Forge) -> None:
        # As sent: the client must not tidy the dot segments away first.
        async with http.request(method, URL(f"{gw}{path}", encoded=True), data=b"x") as resp:
            assert resp.status == 403
            assert "paude gateway" in await resp.text()
        assert forge.requests == []
        # The control: a read of the same repository goes through.
        async with http.get(f"{gw}/github/org/project.git/info/refs"
                            "?service=git-upload-pack") as resp:
            assert resp.status == 200
        assert len(forge.requests) == 1

    run(scenario, token_file)


def test_the_api_is_read_with_a_bearer_token(token_file: Path) -> None:
    async def scenario(http: ClientSession, gw: str, forge: Forge) -> None:
        async with http.get(f"{gw}/github-api/repos/org/project?per_page=1") as resp:
            assert resp.status == 200
        assert forge.requests[0]["path"] == "/api/repos/org/project?per_page=1"
        assert forge.requests[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"

    run(scenario, token_file)


def test_without_a_token_nothing_is_forwarded(tmp_path: Path) -> None:
    async def scenario(http: ClientSession, gw: str, forge: Forge) -> None:
        async with http.get(f"{gw}/github/org/project.git/info/refs") as resp:
            assert resp.status == 403
            assert "no GitHub token" in await resp.text()
        assert forge.requests == []
        # The token file is read per request: delivered now, used at once.
        (tmp_path / "absent").write_text(TOKEN, encoding="utf-8")
        async with http.get(f"{gw}/github/org/project.git/info/refs") as resp:
            assert resp.status == 200
        assert forge.requests[0]["headers"]["Authorization"] == BASIC

    run(scenario, tmp_path / "absent")


def test_an_upstream_error_echoing_the_token_is_scrubbed(token_file: Path) -> None:
    async def scenario(http: ClientSession, gw: str, forge: Forge) -> None:
        forge.echo_auth = True
        async with http.get(f"{gw}/github-api/user") as resp:
            assert resp.status == 401
            body = await resp.text()
        assert TOKEN not in body and "[redacted by paude]" in body

    run(scenario, token_file)


def test_no_upstream_no_route() -> None:
    decision = github.decide("GET", "/github/o/r", "", git_upstream=None, api_upstream=None)
    assert decision.url == "" and "allowed_domains needs 'github'" in decision.reason


GIT = "https://github.example"


def pushes(writes: list[str], method: str, path: str, query: str = "") -> bool:
    decision = github.decide(method, path, query, git_upstream=GIT, api_upstream=GIT,
                             writes=writes)
    return bool(decision.url)


@pytest.mark.parametrize("writes", [["org/project"], ["ORG/Project"], ["org/*"]])
def test_a_push_reaches_only_the_repositories_the_session_names(writes: list[str]) -> None:
    advert = ("GET", "/github/org/project.git/info/refs", "service=git-receive-pack")
    upload = ("POST", "/github/org/project.git/git-receive-pack")
    assert pushes(writes, *advert) and pushes(writes, *upload)
    assert github.decide(*upload, "", git_upstream=GIT, api_upstream=GIT,
                         writes=writes).url == f"{GIT}/org/project.git/git-receive-pack"
    # Another repository, another owner, the same repository without github_writes.
    assert not pushes(writes, "POST", "/github/org2/project.git/git-receive-pack")
    assert not pushes(writes, "GET", "/github/other/x/info/refs", "service=git-receive-pack")
    assert not pushes([], *upload) and not pushes([], *advert)


@pytest.mark.parametrize(("method", "path", "query"), [
    ("PUT", "/github/org/project.git/git-receive-pack", ""),
    ("POST", "/github/org/project.git/info/refs", "service=git-receive-pack"),
    ("GET", "/github/org/project.git/git-receive-pack", ""),
    ("POST", "/github/org/project.git/git-receive-pack", "x=1"),
    ("POST", "/github/org/project.git/git-receive-pack/more", ""),
    ("POST", "/github/org/project.git/sub/git-receive-pack", ""),
    ("GET", "/github/org/project.git/info/refs", "service=git-receive-pack&x=1"),
    ("POST", "/github-api/repos/org/project/git/refs", ""),
    ("DELETE", "/github-api/repos/org/project", ""),
])
def test_github_writes_opens_pushes_and_nothing_else(method: str, path: str,
                                                     query: str) -> None:
    assert not pushes(["org/*"], method, path, query)
