"""Git between the user's repository and a session: the paude-NAME remote, pushes, and the
branches the host has not fetched yet (paude.work reads every other kind of work). Returns
results, never prints."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from paude import index, locks, naming, proc
from paude.backends.base import DEFAULT_BACKEND, WORKSPACE, Backend
from paude.errors import PaudeError, SessionNotFoundError
from paude.home import paude_home
from paude.proc import CommandResult

log = logging.getLogger(__name__)

URL_PREFIX = naming.REMOTE_SCHEME
# Inside the agent container: the repository `paude rescue` makes from the files of a
# workspace that is not a repository, served by git-remote-paude as paude::NAME/rescue.
RESCUE_REPO = "/tmp/paude-rescue.git"
RESCUE_AREA = "rescue"
# Used only when the container has no git identity at all, so the agent can commit.
FALLBACK_NAME = "paude agent"
FALLBACK_EMAIL = "agent@paude.invalid"

_NOT_RUNNING = re.compile(r"can only create exec sessions on running containers|"
                          r"container state improper", re.I)
_NO_REPO = ("not a git repository", "cannot change to")

# Positional arguments: workspace, branch, fallback name, fallback email. The workspace is
# an argument (not part of the script) so every backend can map it.
_INIT_SCRIPT = """\
if ! prefix=$(git -C "$1" rev-parse --show-prefix 2>/dev/null) || [ -n "$prefix" ]; then
  git init -q -b "$2" "$1" || exit
fi
git -C "$1" config receive.denyCurrentBranch updateInstead || exit
if [ -z "$(git -C "$1" config user.email)" ]; then
  git -C "$1" config user.name "$3" && git -C "$1" config user.email "$4" || exit
fi
"""

@dataclass(frozen=True)
class BranchLag:
    """A branch in the session whose head the host does not have."""

    branch: str
    commits: int  # commits on the branch the host lacks
    head: str


@dataclass(frozen=True)
class RemoteAddResult:
    """What `paude remote add` did."""

    remote: str
    url: str
    branch: str
    pushed: bool
    changed: bool  # the remote was added or its URL corrected


def remote_name(session: str) -> str:
    """The git remote of a session in the user's repository."""
    return naming.git_remote(session)


def remote_url(session: str) -> str:
    """The remote's URL, served by git-remote-paude."""
    return naming.git_remote_url(session)


def rescue_url(session: str) -> str:
    """The URL of the session's rescue repository (see RESCUE_REPO)."""
    return f"{URL_PREFIX}{session}/{RESCUE_AREA}"


def session_backend(session: str) -> str:
    """The backend recorded when the session (an already validated name) was applied."""
    entry = index.read(session)
    backend = entry.backend if entry is not None else None
    return backend if isinstance(backend, str) and backend else DEFAULT_BACKEND


def git_env() -> dict[str, str]:
    """Environment for git commands that use the remote: git-remote-paude must be on PATH.

    It is installed beside the running interpreter, which may be a venv nobody activated."""
    scripts = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    return {"PATH": f"{scripts}{os.pathsep}{path}" if path else scripts}


# ---------------------------------------------------------------- the user's repository


# Every git paude runs on the host. The repository's own configuration may point hooks or
# the fsmonitor at files in the work tree (`core.hooksPath=.githooks` is common), which the
# agent writes: paude's git runs neither, and never the ext:: transport.
HOST_GIT = ("git", "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false",
            "-c", "protocol.ext.allow=never")


def _git(repo: Path, *args: str, check: bool = True, env: dict[str, str] | None = None,
         input: str | None = None) -> CommandResult:
    return proc.run([*HOST_GIT, "-C", str(repo), *args], check=check, env=env, input=input)


def git_bytes(repo: Path, *args: str, input: bytes = b"") -> bytes:
    """A host git command whose output is file contents (bytes, not text)."""
    return proc.run_bytes([*HOST_GIT, "-C", str(repo), *args], input=input)


def _is_no_repo(result: CommandResult) -> bool:
    return any(text in result.stderr.lower() for text in _NO_REPO)


def require_repo(repo: Path) -> Path:
    """The repository's common git folder (the one that holds its config, shared by its
    worktrees); a PaudeError with a fix unless repo is inside a git repository."""
    result = _git(repo, "rev-parse", "--git-common-dir", check=False)
    if result.ok:
        return (repo / result.stdout.strip()).resolve()  # relative to repo, or absolute
    if _is_no_repo(result):
        raise PaudeError(f"not a git repository: {repo}",
                         hint="run paude inside your repository, or make this one with `git init`")
    raise proc.classify_failure(result)


def is_repo(path: Path) -> bool:
    """True when path is inside a git repository."""
    try:
        require_repo(path)
    except PaudeError:
        return False
    return True


def _head_branch(repo: Path) -> str:
    result = _git(repo, "symbolic-ref", "--quiet", "--short", "HEAD", check=False)
    if not result.ok:
        raise PaudeError(f"HEAD is detached in {repo}: paude pushes a branch",
                         hint="check out a branch first, e.g. `git switch -c work`")
    return result.stdout.strip()


def current_branch(repo: Path) -> str:
    """The checked-out branch, which must have a commit to push."""
    require_repo(repo)
    branch = _head_branch(repo)
    if not _git(repo, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", check=False).ok:
        raise PaudeError(f"branch {branch} in {repo} has no commits yet",
                         hint='commit first, e.g. `git add -A && git commit -m "initial"`')
    return branch


def _remotes(repo: Path) -> list[str]:
    return _git(repo, "remote").stdout.split()


def has_remote(repo: Path, session: str) -> bool:
    """True when the repository has the session's remote."""
    return remote_name(session) in _remotes(repo)


@contextlib.contextmanager
def _config_writer(repo: Path) -> Iterator[None]:
    """Write the repository's git config alone among paude processes: git refuses to while
    another writer holds its lock (two applies of one repository, or an apply beside
    `paude remote`), from whichever folder or worktree of the repository each was run."""
    with locks.serialized(paude_home(), f"git-config {require_repo(repo)}"):
        yield


def add_remote(repo: Path, session: str) -> bool:
    """Add the session's remote, or correct its URL; True when anything changed."""
    with _config_writer(repo):
        return _add_remote(repo, session)


def _add_remote(repo: Path, session: str) -> bool:
    name, url = remote_name(session), remote_url(session)
    if name not in _remotes(repo):
        _git(repo, "remote", "add", name, url)
        return True
    current = _git(repo, "config", "--get", f"remote.{name}.url", check=False).stdout.strip()
    if current == url:
        return False
    _git(repo, "remote", "set-url", name, url)
    return True


def remove_remote(repo: Path, session: str) -> bool:
    """Remove the session's remote and its remote-tracking branches; False if absent."""
    with _config_writer(repo):
        return _remove_remote(repo, session)


def _remove_remote(repo: Path, session: str) -> bool:
    name = remote_name(session)
    if name not in _remotes(repo):
        return False
    if _only_on_tracking_refs(repo, name):
        # `git remote remove` deletes the remote-tracking refs too: commits fetched but not
        # yet merged would be left unreferenced (and later pruned). Keep those refs.
        _git(repo, "config", "--remove-section", f"remote.{name}")
    else:
        _git(repo, "remote", "remove", name)
    return True


def _only_on_tracking_refs(repo: Path, remote: str) -> bool:
    """True when the remote's tracking refs hold commits no branch, tag or other remote has."""
    result = _git(repo, "rev-list", "--count", f"--remotes={remote}/*", "--not", "--branches",
                  "--tags", f"--exclude={remote}/*", "--remotes", check=False)
    # Unsure (an odd repository): keep the refs, which costs nothing.
    return not result.ok or result.stdout.strip() != "0"


def list_remotes(repo: Path) -> list[tuple[str, str]]:
    """(name, url) of every remote served by paude, sorted by name."""
    require_repo(repo)
    # Exit 1 means no remote has a URL.
    result = _git(repo, "config", "--get-regexp", r"^remote\..*\.url$", check=False)
    if result.returncode not in (0, 1):
        raise proc.classify_failure(result)
    found = []
    for line in result.stdout.splitlines():
        key, _, url = line.partition(" ")
        if url.startswith(URL_PREFIX):
            found.append((key.removeprefix("remote.").removesuffix(".url"), url))
    return sorted(found)


def push(repo: Path, session: str, branch: str) -> CommandResult:
    """Push HEAD to the session's branch; the container's work tree follows (updateInstead)."""
    remote = remote_name(session)
    result = _git(repo, "push", remote, f"HEAD:refs/heads/{branch}", env=git_env(), check=False)
    if result.ok:
        return result
    stderr = result.stderr.lower()
    hint = None
    if "uncommitted" in stderr or "unstaged" in stderr or "would be overwritten" in stderr:
        hint = (f"the session's {WORKSPACE} has changes the agent has not committed; commit "
                "them inside the session, then push again")
    elif "rejected" in stderr:
        hint = f"the session has commits you have not pulled: `git pull {remote} {branch}` first"
    failure = proc.classify_failure(result)
    if hint and not isinstance(failure, SessionNotFoundError):
        failure.hint = hint
    raise failure


_push = push  # remote_add's `push` flag shadows the function's name


# ---------------------------------------------------------------- inside the session


def _exec(backend: Backend, session: str, argv: Sequence[str], *, input: str | None = None,
          check: bool = True) -> CommandResult:
    """Run argv in the agent container; a missing or stopped container is always an error."""
    result = proc.run(backend.exec_argv(session=session, argv=argv, stdin=input is not None),
                      input=input, check=False)
    if result.ok:
        return result
    failure = proc.classify_failure(result)
    if isinstance(failure, SessionNotFoundError):
        raise failure
    if _NOT_RUNNING.search(result.stderr):
        raise PaudeError(f"the agent container of session {session} is not running",
                         hint=f"start it with `paude start {session}`, then try again")
    if check:
        raise failure
    return result


def init_workspace(backend: Backend, session: str, branch: str) -> None:
    """Make the session's workspace a repository that accepts pushes to its checked-out branch."""
    _exec(backend, session, ["sh", "-c", _INIT_SCRIPT, "sh", WORKSPACE, branch,
                             FALLBACK_NAME, FALLBACK_EMAIL])


def unfetched(repo: Path, backend: Backend, session: str) -> list[BranchLag]:
    """Branches in the session whose head the host lacks, with the commits it lacks on each
    (paude.work reports all the other kinds of work too).

    Raises a PaudeError when the agent container is missing or stopped."""
    from paude import work  # paude.work builds on this module

    found = work.report(repo, backend, session)
    return [BranchLag(ref.name, ref.commits, ref.tip) for ref in found.of_kind("branch")]


# ---------------------------------------------------------------- orchestration


def remote_add(repo: Path, session: str, *, push: bool, backend: Backend) -> RemoteAddResult:
    """Prepare the session's workspace, add its remote here and, with push, push HEAD."""
    require_repo(repo)  # before anything in the session changes
    branch = current_branch(repo) if push else _head_branch(repo)
    init_workspace(backend, session, branch)
    changed = add_remote(repo, session)
    if push:
        _push(repo, session, branch)
    return RemoteAddResult(remote_name(session), remote_url(session), branch, push, changed)
