"""`paude rescue`: copy everything a session's workspace holds into the host repository,
under refs/paude/NAME/, without changing the agent's working tree, index or branches.

Refs arrive as they are (heads/, tags/, stash, HEAD, other/); uncommitted and untracked
files become a commit on refs/paude/NAME/worktree (and staged changes that differ from
both HEAD and the files, one on refs/paude/NAME/index), made inside the container from
copies of the index. A workspace that is not a repository is committed from a scratch
repository outside it (gitsync.RESCUE_REPO), fetched through paude::NAME/rescue. Ignored
files are not saved: they are usually build output (see work.WorkReport.ignored)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from paude import gitsync, proc, work
from paude.backends.base import WORKSPACE, Backend
from paude.errors import PaudeError
from paude.work_parse import Observed, printable

_RESCUED = {"worktree": "uncommitted and untracked files (the working tree)",
            "index": "staged changes (the index as it differs from HEAD and the files)"}


@dataclass(frozen=True)
class SavedRef:
    """A ref the rescue wrote in the host repository, and what it holds."""

    ref: str  # printable
    what: str


@dataclass(frozen=True)
class RescueResult:
    """What `paude rescue` saved, and what the host still lacks afterwards."""

    session: str
    repo: Path
    saved: tuple[SavedRef, ...]
    remaining: work.WorkReport

    @property
    def namespace(self) -> str:
        """Where the saved refs live."""
        return namespace(self.session)


def namespace(session: str) -> str:
    """The host refs of a session's rescue."""
    return f"refs/paude/{session}"


def refspecs(seen: Observed, session: str) -> tuple[list[str], list[SavedRef]]:
    """The fetch refspecs that copy every ref of an observed workspace repository, and
    what each destination will hold."""
    ns = namespace(session)
    specs: list[str] = []
    saved: list[SavedRef] = []
    refs = [ref for ref, _, _ in seen.refs]
    for area, kind in (("heads", "branch"), ("tags", "tag")):
        names = [r.removeprefix(f"refs/{area}/") for r in refs if r.startswith(f"refs/{area}/")]
        if names:
            specs.append(f"+refs/{area}/*:{ns}/{area}/*")
            saved += [SavedRef(_show(f"{ns}/{area}/{n}"), f"{kind} {_show(n)}") for n in names]
    state = seen.head[0]
    if state != "unborn":
        specs.append(f"+HEAD:{ns}/HEAD")
        saved.append(SavedRef(f"{ns}/HEAD", "HEAD, detached" if state == "detached"
                              else "HEAD (the checked-out branch)"))
    if "refs/stash" in refs:
        specs.append(f"+refs/stash:{ns}/stash")
        saved.append(SavedRef(f"{ns}/stash", "stash@{0}"))
    for name, _ in seen.rescued:
        specs.append(f"+refs/paude-rescue/{name}:{ns}/{name}")
        what = _RESCUED.get(name) or f"stash@{{{name.removeprefix('stash-')}}}"
        saved.append(SavedRef(f"{ns}/{name}", what))
    for ref in refs:
        if not ref.startswith(("refs/heads/", "refs/tags/", "refs/paude-rescue/")) and (
                ref != "refs/stash"):
            dest = f"{ns}/other/{ref.removeprefix('refs/')}"
            specs.append(f"+{ref}:{dest}")
            saved.append(SavedRef(_show(dest), f"ref {_show(ref)}"))
    return specs, saved


def rescue(repo: Path, backend: Backend, session: str) -> RescueResult:
    """Save every ref and the working files of a running session under refs/paude/NAME/."""
    gitsync.require_repo(repo)
    seen = work.observe(repo, backend, session, mode="rescue")
    if seen.git:
        specs, saved = refspecs(seen, session)
        if specs:
            _fetch(repo, gitsync.remote_url(session), specs, session)
    else:
        saved, ns = [], namespace(session)
        if seen.rescued:
            try:
                _fetch(repo, gitsync.rescue_url(session),
                       [f"+refs/paude-rescue/worktree:{ns}/worktree"], session)
            finally:
                # A copy left in the container's /tmp is harmless; the fetch's error matters.
                with contextlib.suppress(PaudeError):
                    gitsync._exec(backend, session, ["rm", "-rf", gitsync.RESCUE_REPO])
            saved = [SavedRef(f"{ns}/worktree",
                              f"the files of {WORKSPACE} (not a git repository)")]
    remaining = work.report(repo, backend, session)
    return RescueResult(session, repo, tuple(saved), remaining)


def _fetch(repo: Path, url: str, specs: list[str], session: str) -> None:
    # --no-prune: refs saved by an earlier rescue stay, even if the agent deleted them since.
    # --no-tags: nothing of the agent's lands in the user's own refs/tags.
    result = gitsync._git(repo, "fetch", "--quiet", "--no-tags", "--no-prune",
                          "--no-recurse-submodules", "--no-write-fetch-head", url, *specs,
                          env=gitsync.git_env(), check=False)
    if not result.ok:
        failure = proc.classify_failure(result)
        raise PaudeError(f"could not fetch session {session}'s refs into {repo}: "
                         f"{failure.message}",
                         hint="nothing in the session was lost; fix the cause and "
                              f"run `paude rescue {session}` again")


def _show(ref: str) -> str:
    return printable(os.fsencode(ref))
