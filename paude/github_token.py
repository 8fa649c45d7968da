"""`--github-token` / PAUDE_GITHUB_TOKEN: GitHub for the agent without the agent holding
the token.

The token goes only to the session's credential gateway, as a file written through stdin
of `podman exec` (never argv, paude.yaml, the stack or a log); the gateway adds it to the
agent's GitHub requests, read-only (templates/gateway_github.py). The agent's git is
pointed at the gateway (url.insteadOf in its global git configuration, which holds no
secret). A start without a token takes an earlier one away. Returns results, never
prints."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from paude import gateway, proc
from paude.backends import get_backend
from paude.backends.base import Backend
from paude.errors import PaudeError
from paude.home import paude_home
from paude.naming import PodmanNames

# GitHub's tokens are printable ASCII without spaces; anything else is a paste accident
# (a newline would also split the file the gateway reads).
_TOKEN = re.compile(r"[\x21-\x7e]{1,1024}")
# The GitHub URL forms the agent's git sends to the gateway instead.
GITHUB_URLS = ("https://github.com/", "git@github.com:", "ssh://git@github.com/")
# Positional arguments: the gateway's git URL, then "on" to point git at it ("off" only
# removes). Run as the agent's user, in its global configuration.
_AGENT_GIT = """\
url=$1 mode=$2
shift 2
git config --global --unset-all "url.$url.insteadOf" 2>/dev/null
[ "$mode" = on ] || exit 0
for form in "$@"; do git config --global --add "url.$url.insteadOf" "$form" || exit; done
"""


class NoGithubRouteError(PaudeError):
    """The session has no GitHub route for a token (its backend, or its allowed_domains)."""


@dataclass(frozen=True)
class TokenResult:
    """What a start or connect did about the GitHub token."""

    session: str
    given: bool  # a token now sits in the gateway
    removed: bool  # an earlier start's token was taken away
    url: str = ""  # where the agent's git now sends github.com


def check(session: str, token: str, *, cwd: Path | None = None) -> None:
    """Before anything starts: a well-formed token, a podman session, and a definition that
    lets the agent reach GitHub (the gateway's route exists only there)."""
    if not _TOKEN.fullmatch(token):
        raise PaudeError("the GitHub token is not one: it must be 1 to 1024 printable "
                         "characters without spaces or line breaks",
                         hint="copy the token again (`gh auth token` prints yours)")
    from paude import domains, sessions  # pydantic: only when a token is given

    project = sessions.open_project(cwd)
    definition, _ = sessions.session_of(project, session)
    if definition.backend != "podman":
        raise NoGithubRouteError(f"session {session} runs on {definition.backend}: --github-token "
                         "works for podman sessions only",
                         hint="leave out --github-token and unset PAUDE_GITHUB_TOKEN")
    allow = domains.expand(definition.allowed_domains, definition.denied_requests)
    if not gateway.github_route(allow):
        raise NoGithubRouteError(f"session {session} does not allow GitHub, so its gateway has no "
                         "GitHub route for the token",
                         hint=f"add github to allowed_domains of {session} in paude.yaml and "
                              f"run `paude apply {session}`, or leave out the token")


def give(session: str, token: str) -> TokenResult:
    """Hand the token to the running session's gateway and point the agent's git at it."""
    backend = get_backend("podman", session)
    backend.gateway_file(session=session, path=gateway.GITHUB_TOKEN_FILE, content=token)
    _marker(session).parent.mkdir(parents=True, exist_ok=True)
    _marker(session).touch()  # no secret: only that a token was given
    url = _agent_git(backend, session, on=True)
    return TokenResult(session, given=True, removed=False, url=url)


def take_back(session: str) -> TokenResult:
    """A start without a token: remove what an earlier start gave (nothing to do, and no
    podman call, when none was given)."""
    if not _marker(session).exists():
        return TokenResult(session, given=False, removed=False)
    backend = get_backend("podman", session)
    backend.gateway_file(session=session, path=gateway.GITHUB_TOKEN_FILE, content=None)
    _agent_git(backend, session, on=False)
    _marker(session).unlink(missing_ok=True)
    return TokenResult(session, given=False, removed=True)


def gateway_git_url(session: str) -> str:
    """Where the agent's git sends github.com: the gateway's GitHub route."""
    return f"http://{PodmanNames(session).gateway}:{gateway.GATEWAY_PORT}{gateway.GITHUB_GIT_PATH}"


def _agent_git(backend: Backend, session: str, *, on: bool) -> str:
    url = gateway_git_url(session)
    argv = ["sh", "-c", _AGENT_GIT, "sh", url, "on" if on else "off", *GITHUB_URLS]
    proc.run(backend.exec_argv(session=session, argv=argv))
    return url


def _marker(session: str) -> Path:
    return paude_home() / "sessions" / session / "github-token-given"
