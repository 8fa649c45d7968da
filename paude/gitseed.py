"""`paude create --git`: the session starts from the user's repository: the paude-NAME
remote, the current branch and the tags pushed in, and `origin` inside set to the host's
origin URL (for the record: the agent reaches it only where egress allows). Returns
results, never prints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from paude import gitsync, proc
from paude.backends.base import WORKSPACE, Backend

# Positional arguments: workspace, URL. `--` keeps a URL that starts with '-' a URL.
_SET_ORIGIN = """\
git -C "$1" remote remove origin 2>/dev/null
git -C "$1" remote add origin -- "$2"
"""


@dataclass(frozen=True)
class OriginURL:
    """The host's origin URL as the session gets it."""

    url: str
    stripped: tuple[str, ...] = ()  # what was left out: "credentials", "query"


@dataclass(frozen=True)
class GitSeedResult:
    """What `create --git` did after the apply."""

    remote: gitsync.RemoteAddResult
    tags: int  # tags in the repository, all pushed
    origin: OriginURL | None  # None: the repository has no origin


def safe_origin(url: str) -> OriginURL:
    """The URL without what may be a credential: userinfo (`https://user:token@host`) and
    a query string. scp-like `git@host:path` keeps its user, an SSH login name."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return OriginURL(url)
    stripped = []
    netloc = parts.netloc
    if "@" in netloc:
        netloc = netloc.rpartition("@")[2]
        stripped.append("credentials")
    query = parts.query
    if query:
        query = ""
        stripped.append("query")
    if not stripped:
        return OriginURL(url)
    return OriginURL(urlunsplit((parts.scheme, netloc, parts.path, query, "")), tuple(stripped))


def host_origin(repo: Path) -> OriginURL | None:
    """The repository's origin URL (insteadOf applied), made safe; None without one."""
    result = proc.run([*gitsync.HOST_GIT, "-C", str(repo), "remote", "get-url", "origin"],
                      check=False)
    if not result.ok:
        return None  # "No such remote"
    url = result.stdout.strip()
    return safe_origin(url) if url else None


def check(repo: Path) -> str:
    """Before anything is written or made: a repository with a branch that has a commit."""
    return gitsync.current_branch(repo)


def seed(repo: Path, session: str, *, backend: Backend) -> GitSeedResult:
    """Add the remote, push the current branch and every tag, and set origin inside."""
    added = gitsync.remote_add(repo, session, push=True, backend=backend)
    tags = proc.run([*gitsync.HOST_GIT, "-C", str(repo), "tag", "--list"]).stdout.split()
    if tags:
        pushed = proc.run([*gitsync.HOST_GIT, "-C", str(repo), "push", "--quiet",
                           gitsync.remote_name(session), "--tags"],
                          env=gitsync.git_env(), check=False)
        if not pushed.ok:
            raise proc.classify_failure(pushed)
    origin = host_origin(repo)
    if origin is not None:
        proc.run(backend.exec_argv(session=session, argv=[
            "sh", "-c", _SET_ORIGIN, "sh", WORKSPACE, origin.url], stdin=False))
    return GitSeedResult(added, len(tags), origin)
