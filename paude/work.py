"""All the work a session's workspace holds that the host lacks: commits on any ref (branches,
tags, a detached HEAD, the stash, other refs), uncommitted and untracked files, or files in a
workspace that is not a repository. One exec of templates/workspace-work.sh reads it all;
the host then checks which of the commits and trees it has. Returns results, never prints."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from paude import gitsync, proc
from paude.backends.base import WORKSPACE, Backend
from paude.render import template_source
from paude.work_parse import (
    SHA,
    Observed,
    Paths,
    WorkReportError,
    decode,
    parse,
    printable,
)

SCRIPT = "workspace-work.sh"
NONE = Paths()


@dataclass(frozen=True)
class RefWork:
    """A ref in the session whose tip the host does not have."""

    ref: str  # refs/heads/main, HEAD, stash@{1}; raw bytes kept (os.fsdecode)
    kind: str  # branch | tag | head | stash | other
    tip: str
    commits: int  # commits on it the host lacks (0: only a tag object or a non-commit)

    @property
    def name(self) -> str:
        """The short, printable name: main, v1, HEAD, stash@{1}, refs/notes/commits."""
        short = self.ref
        for prefix in ("refs/heads/", "refs/tags/"):
            short = short.removeprefix(prefix)
        return printable(os.fsencode(short))

    def to_json(self) -> dict[str, object]:
        """The JSON form."""
        return {"ref": printable(os.fsencode(self.ref)), "kind": self.kind,
                "commits": self.commits, "tip": self.tip}


@dataclass(frozen=True)
class WorkReport:
    """Everything in a session's workspace that the host does not have."""

    git: bool  # the workspace is a git repository
    refs: tuple[RefWork, ...] = ()
    changed: Paths = NONE  # tracked files with staged or unstaged changes
    untracked: Paths = NONE  # untracked, not ignored (a new folder counts once)
    ignored: Paths = NONE  # reported, never blocks: usually build output
    files: Paths = NONE  # files of a workspace that is not a repository
    embedded: Paths = NONE  # repositories inside the workspace: their commits stay there
    files_saved: bool = True  # the host has the working files as they are now (a rescue)

    @property
    def commits(self) -> int:
        """Commits the host lacks, summed over branches (the old `unfetched_commits`)."""
        return sum(r.commits for r in self.refs if r.kind == "branch")

    @property
    def unsaved_files(self) -> bool:
        """Uncommitted, untracked or non-repository files the host has no copy of."""
        return bool(self.changed.count or self.untracked.count or self.files.count) and (
            not self.files_saved)

    @property
    def blocking(self) -> bool:
        """Deleting the workspace now would lose work (ignored files do not count)."""
        return bool(self.refs) or self.unsaved_files or self.embedded.count > 0

    def of_kind(self, kind: str) -> tuple[RefWork, ...]:
        """The refs of one kind."""
        return tuple(r for r in self.refs if r.kind == kind)

    def to_json(self) -> dict[str, object]:
        """The JSON form of `paude status --json`'s `work`."""
        return {"git": self.git, "blocking": self.blocking,
                "refs": [r.to_json() for r in self.refs],
                "changed": self.changed.to_json(), "untracked": self.untracked.to_json(),
                "ignored": self.ignored.to_json(), "files": self.files.to_json(),
                "embedded": self.embedded.to_json(), "files_saved": self.files_saved}


# ---------------------------------------------------------------- the host's side


def observe(repo: Path, backend: Backend, session: str, *, mode: str = "report",
            known: Sequence[str] | None = None) -> Observed:
    """Run the script in the session (one exec) with the host's commits (known: read
    already) on stdin."""
    known = host_tips(repo) if known is None else known
    result = gitsync._exec(
        backend, session,
        ["sh", "-c", template_source(SCRIPT), "sh", WORKSPACE, mode, gitsync.RESCUE_REPO],
        input="".join(f"{sha}\n" for sha in known))
    try:
        return parse(decode(result.stdout))
    except WorkReportError as exc:
        stderr = result.stderr.strip().splitlines()[-3:]
        detail = ("\n    " + "\n    ".join(stderr)) if stderr else ""
        raise WorkReportError(
            f"cannot tell what work session {session} holds: {exc.message}{detail}",
            hint=f"`paude connect {session}` to look inside; `paude delete {session} "
                 "--confirm --force` deletes the session without this check") from None


def host_tips(repo: Path) -> list[str]:
    """Every commit (and peeled tag) the host's refs point at; none outside a repository."""
    result = gitsync._git(repo, "for-each-ref", "--format=%(objectname) %(*objectname)",
                          check=False)
    if not result.ok:
        return []
    head = gitsync._git(repo, "rev-parse", "-q", "--verify", "HEAD", check=False)
    tips = set(result.stdout.split()) | set(head.stdout.split() if head.ok else [])
    return sorted(t for t in tips if SHA.fullmatch(t))


def host_objects(repo: Path, ids: Iterable[str]) -> dict[str, str]:
    """The type of each of ids that the host repository has (commit, tree, tag, blob)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    result = gitsync._git(repo, "cat-file", "--batch-check=%(objectname) %(objecttype)",
                          check=False, input="".join(f"{i}\n" for i in wanted))
    if not result.ok:
        if gitsync._is_no_repo(result):
            return {}
        raise proc.classify_failure(result)
    found = {}
    for line in result.stdout.splitlines():
        sha, _, kind = line.partition(" ")
        if sha in wanted and kind in ("commit", "tree", "blob", "tag"):
            found[sha] = kind
    return found


def judge(repo: Path, seen: Observed) -> WorkReport:
    """What of the observed work the host lacks."""
    stash_refs = [(f"stash@{{{n}}}", tip, commits) for n, (tip, commits) in enumerate(seen.stash)]
    refs = [(ref, tip, c) for ref, tip, c in seen.refs
            if not (ref == "refs/stash" and stash_refs)]
    if seen.head[0] == "detached" and seen.head[1]:
        refs.append(("HEAD", seen.head[1], seen.head[2]))
    trees = {t for t in seen.trees.values() if t}
    have = host_objects(repo, [tip for _, tip, _ in [*refs, *stash_refs]] + sorted(trees))
    missing = tuple(RefWork(ref, _kind(ref), tip, commits or 0)
                    for ref, tip, commits in [*refs, *stash_refs] if tip not in have)
    paths = seen.paths
    return WorkReport(seen.git, missing, paths.get("changed", NONE),
                      paths.get("untracked", NONE), paths.get("ignored", NONE),
                      paths.get("files", NONE), paths.get("embedded", NONE),
                      _files_saved(seen.trees, have))


def _files_saved(trees: dict[str, str | None], have: dict[str, str]) -> bool:
    """The host has the working tree's files and any staged state apart from them."""
    worktree, index = trees.get("worktree"), trees.get("index")
    if worktree is None or have.get(worktree) != "tree":
        return False
    return index in (None, worktree, trees.get("head")) or have.get(index or "") == "tree"


def _kind(ref: str) -> str:
    if ref.startswith("refs/heads/"):
        return "branch"
    if ref.startswith("refs/tags/"):
        return "tag"
    if ref == "HEAD":
        return "head"
    return "stash" if ref.startswith("stash@{") else "other"


def report(repo: Path, backend: Backend, session: str) -> WorkReport:
    """Everything in the session's workspace the host lacks (the agent must be running)."""
    return judge(repo, observe(repo, backend, session))


def report_with_setup(repo: Path, backend: Backend, session: str, *,
                      known: Sequence[str] | None = None,
                      ) -> tuple[WorkReport, tuple[int, str] | None]:
    """The report and, from the same exec, paude-setup's state answer (exit code, output)."""
    seen = observe(repo, backend, session, mode="status", known=known)
    return judge(repo, seen), seen.setup


# ---------------------------------------------------------------- telling the user


@dataclass(frozen=True)
class KindSummary:
    """One kind of work the host lacks, with the exact command that brings it back."""

    kind: str  # branches, tags, detached HEAD, stash, other refs, uncommitted changes, ...
    headline: str
    details: tuple[str, ...]
    fix: str  # empty when nothing needs doing
    blocking: bool


def kinds(found: WorkReport, session: str) -> list[KindSummary]:
    """The report kind by kind, in the order a user would act on it."""
    remote, rescue = gitsync.remote_name(session), f"`paude rescue {session}`"
    out = []
    branches = found.of_kind("branch")
    if branches:
        first = shlex.quote(branches[0].name)
        out.append(KindSummary(
            "branches", f"{plural(found.commits, 'commit')} on "
            f"{plural(len(branches), 'branch', 'branches')}", _tips(branches),
            f"`git fetch {remote}`, or `git pull {remote} {first}`", True))
    head = found.of_kind("head")
    for kind, refs, headline, fix in (
            ("tags", found.of_kind("tag"), plural(len(found.of_kind("tag")), "tag"),
             f"`git fetch {remote} 'refs/tags/*:refs/tags/*'`"),
            ("detached HEAD", head, plural(sum(r.commits for r in head), "commit")
             + " on no branch", f"`git fetch {remote} +HEAD:refs/paude/{session}/HEAD`"),
            ("stash", found.of_kind("stash"), plural(len(found.of_kind("stash")),
                                                     "stash entry", "stash entries"),
             f"{rescue} (saves them as refs/paude/{session}/stash, stash-1, ...)"),
            ("other refs", found.of_kind("other"), plural(len(found.of_kind("other")), "ref"),
             f"{rescue} (saves them under refs/paude/{session}/other/)")):
        if refs:
            out.append(KindSummary(kind, headline, _tips(refs), fix, True))
    files_fix = f"`paude connect {session}` and commit them there, or {rescue}"
    saved = found.files_saved
    for label, paths, what in (("uncommitted changes", found.changed, "changed tracked file"),
                               ("untracked files", found.untracked, "untracked path")):
        if paths.count:
            out.append(KindSummary(label, _paths(paths, what) + (
                " (saved on the host by paude rescue)" if saved else ""), (),
                "" if saved else files_fix, not saved))
    if found.files.count:
        out.append(KindSummary(
            "files outside git", f"{WORKSPACE} is not a git repository; "
            + _paths(found.files, "file") + (" (saved on the host by paude rescue)"
                                             if saved else ""), (),
            "" if saved else rescue, not saved))
    if found.embedded.count:
        out.append(KindSummary(
            "repositories inside the workspace", _paths(found.embedded, "repository",
                                                        "repositories"), (),
            f"`paude connect {session}` and bring their commits out by hand (e.g. push "
            f"them to a branch of {WORKSPACE}); paude rescue saves only a link to them", True))
    if found.ignored.count:
        out.append(KindSummary(
            "ignored files", _paths(found.ignored, "ignored path") + ": usually build "
            "output, so they do not block a delete and paude rescue does not save them",
            (), "", False))
    return out


def describe(found: WorkReport, session: str) -> str:
    """The refusal: what the session holds that the host lacks, and how to bring each back."""
    lines = [f"session {session} holds work the host does not have:"]
    items = kinds(found, session)
    for item in items:
        lines.append(f"  {item.kind}: {item.headline}")
        lines += [f"    {detail}" for detail in item.details]
        if item.fix:
            lines.append(f"    bring it back: {item.fix}")
    remote = gitsync.remote_name(session)
    if any(f"git fetch {remote}" in item.fix for item in items):
        lines.append(f"(no remote {remote} in your repository? `paude remote add {session}` "
                     "adds it)")
    return "\n".join(lines)


def refusal_hint(session: str) -> str:
    """What to do about a refusal."""
    return (f"bring each kind back as shown, or save all of it under refs/paude/{session}/ "
            f"with `paude rescue {session}`; --force deletes it anyway")


def plural(count: int, one: str, many: str | None = None) -> str:
    """`1 commit`, `3 commits`."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


def _tips(refs: Iterable[RefWork]) -> tuple[str, ...]:
    # A stash entry is two or three commits (work tree, index, untracked): not worth counting.
    return tuple(f"{r.name} (at {r.tip[:12]})" if r.kind == "stash" else
                 f"{r.name}: " + (plural(r.commits, "commit") if r.commits else "no new commit")
                 + f" (at {r.tip[:12]})" for r in refs)


def _paths(paths: Paths, one: str, many: str | None = None) -> str:
    more = ", ..." if paths.count > len(paths.sample) else ""
    return plural(paths.count, one, many) + (
        f" ({', '.join(paths.sample)}{more})" if paths.sample else "")
