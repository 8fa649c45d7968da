"""The credential gateway's GitHub route: git over smart HTTP and the REST API, with the
user's token added here, read-only.

The agent's git sends https://github.com/ to the gateway's /github/ (url.insteadOf, set by
`paude start --github-token`); the token never enters the agent. It reaches the gateway as
a file written through `podman exec` (TOKEN_FILE), read on every request, so a new token
needs no restart, and a start without one removes it.

Read-only, as the proxy's `github` group: GET and HEAD anywhere, POST only to
git-upload-pack (clone, fetch); git-receive-pack (push) and every other write refused,
except pushes to the repositories the session's `github_writes` names.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

GIT_PREFIX = "/github/"
API_PREFIX = "/github-api/"
TOKEN_FILE = "/tmp/paude-github-token"
READ = ("GET", "HEAD")
# Dot segments, backslashes and any percent-encoding: a path the upstream could read
# differently from these rules is refused rather than interpreted.
_AMBIGUOUS = re.compile(r"/\.\.?(/|$)|\\|%|//")
_UPLOAD_PACK = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+/git-upload-pack")
_RECEIVE_PACK = re.compile(r"(?P<owner>[A-Za-z0-9_.-]+)/(?P<repo>[A-Za-z0-9_.-]+)/"
                           r"(?P<tail>info/refs|git-receive-pack)")
# Request headers git and API clients need upstream; the agent's own credentials never go.
# Not content-encoding: aiohttp hands the gateway a gzip body (git's large fetch requests)
# already decompressed, and it goes upstream as that.
FORWARD_REQUEST = ("content-type", "accept", "user-agent", "git-protocol")


@dataclass(frozen=True)
class Decision:
    """Where a GitHub request goes (url), or why it is refused (reason)."""

    url: str = ""
    reason: str = ""
    api: bool = False


def handles(path: str) -> bool:
    """True for the paths this route answers (allowed or refused)."""
    return path.startswith((GIT_PREFIX, API_PREFIX))


def decide(method: str, path: str, query: str, *, git_upstream: str | None,
           api_upstream: str | None, writes: tuple[str, ...] | list[str] = ()) -> Decision:
    """Read-only routing of one request, but for pushes to the repositories in `writes`
    (OWNER/REPO or OWNER/*, the session's github_writes); no token is looked at here."""
    api = path.startswith(API_PREFIX)
    upstream = api_upstream if api else git_upstream
    if not upstream:
        return Decision(reason="this session has no GitHub route (allowed_domains needs "
                        "'github')")
    rest = path[len(API_PREFIX if api else GIT_PREFIX):]
    if not rest or _AMBIGUOUS.search(path):
        return Decision(reason=f"{path} is ambiguous (dot segments, encodings)")
    if not api and ("receive-pack" in unquote(query) or "receive-pack" in rest):
        if not _push_allowed(method, rest, query, writes):
            return Decision(reason="git push (git-receive-pack) to this repository is refused: "
                            "the GitHub route is read-only except for the repositories "
                            "the session's github_writes names")
        url = f"{upstream.rstrip('/')}/{rest}" + (f"?{query}" if query else "")
        return Decision(url=url)
    allowed = method in READ or (not api and method == "POST"
                                 and _UPLOAD_PACK.fullmatch(rest) is not None)
    if not allowed:
        return Decision(reason=f"{method} {path} is a write: the GitHub route is read-only")
    url = f"{upstream.rstrip('/')}/{rest}" + (f"?{query}" if query else "")
    return Decision(url=url, api=api)


def _push_allowed(method: str, rest: str, query: str, writes: tuple[str, ...] | list[str]
                  ) -> bool:
    """A push's two requests, to a repository the session may write: the advertisement
    (GET OWNER/REPO/info/refs?service=git-receive-pack) and the upload (POST
    OWNER/REPO/git-receive-pack). Anything else naming receive-pack is refused."""
    match = _RECEIVE_PACK.fullmatch(rest)
    if match is None:
        return False
    owner, repo, tail = match.group("owner"), match.group("repo"), match.group("tail")
    if tail == "info/refs":
        if method != "GET" or query != "service=git-receive-pack":
            return False
    elif method != "POST" or query:
        return False
    repo = repo[:-4] if repo.lower().endswith(".git") else repo
    return any(_covers(pattern, owner, repo) for pattern in writes)


def _covers(pattern: str, owner: str, repo: str) -> bool:
    # GitHub's owner and repository names are case-insensitive.
    want_owner, _, want_repo = pattern.lower().partition("/")
    return want_owner == owner.lower() and want_repo in ("*", repo.lower())


def read_token(path: str = TOKEN_FILE) -> str:
    """The token `paude start --github-token` delivered, or '' without one."""
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def authorization(token: str, *, api: bool) -> str:
    """How GitHub takes a token: Basic for git over HTTPS, Bearer for the API."""
    if api:
        return f"Bearer {token}"
    return "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()
