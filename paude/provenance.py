"""Where a session's definition came from: the files that define it, their digests at the
last apply, and the commits from a session that changed them since.

The agent can commit to the files that define its own sandbox, and `git pull paude-NAME
main` brings those commits to the host by design: the plan names them, so a reviewer sees
the agent's edit before it reshapes the agent's sandbox. Files are read without following
symlinks (a symlink counts by its link text); every git call goes through gitsync's `_git`.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import secrets
import shlex
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from paude import gitsync, index
from paude.config import PAUDE_FILE
from paude.errors import ToolNotFoundError
from paude.image_sources import IMAGE_SOURCES
from paude.models import Session
from paude.policies.rules import BY_ID, DEFINITION_CHANGED
from paude.policies.settings import PackConfig
from paude.policy import POLICY_FILE
from paude.results import DefinitionChange, DefinitionCommit, PolicyFinding
from paude.stacks.podman.images import context_files, dockerfile_paths

MAX_COMMITS = 50  # commits named per file
# Without a recorded apply there is no starting point: only this many of the newest
# commits that touched the definition are examined.
SCAN_LIMIT = 200
_PATHSPEC_LIMIT = 128  # more changed files than this: scan every commit, filter here
_SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")


@dataclass(frozen=True)
class Snapshot:
    """The definition's files with their digests, and the commit checked out ("" outside
    git or before the first commit)."""

    inputs: Mapping[str, str]
    head: str = ""


@dataclass(frozen=True)
class Review:
    """What the plan says about the definition: what changed, from where, and the finding
    of the definition-changed-by-session rule (None when it has nothing to say)."""

    snapshot: Snapshot
    changes: tuple[DefinitionChange, ...] = ()
    finding: PolicyFinding | None = None


# ---------------------------------------------------------------- the definition's files


def _digest(path: Path) -> str | None:
    """sha256 of a regular file, or of a symlink's text; None for anything else."""
    try:
        info = path.lstat()
    except OSError:
        return None
    if stat.S_ISLNK(info.st_mode):
        return "symlink:" + hashlib.sha256(os.fsencode(os.readlink(path))).hexdigest()
    if not stat.S_ISREG(info.st_mode):
        return None
    digest = hashlib.sha256()
    try:
        # O_NOFOLLOW: the file must still be the regular file lstat saw, never a link.
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        return f"unreadable:{exc.errno}"
    return "sha256:" + digest.hexdigest()


def _inside(root: Path, rel: str) -> tuple[str, bool] | None:
    """rel normalised, or the first symlinked folder on the way to it (True); None when it
    points outside the repository."""
    rel = posixpath.normpath(rel.replace(os.sep, "/"))
    if posixpath.isabs(rel) or rel == ".." or rel.startswith("../"):
        return None
    parts = rel.split("/")
    for end in range(1, len(parts)):
        prefix = "/".join(parts[:end])
        if (root / prefix).is_symlink():
            return prefix, True
    return rel, False


def _add_file(root: Path, rel: str, out: dict[str, str]) -> None:
    found = _inside(root, rel)
    if found is None or found[0] == ".":
        return
    digest = _digest(root / found[0])
    if digest is not None:
        out[found[0]] = digest


def _add_tree(root: Path, rel: str, out: dict[str, str], dockerfile: str = "") -> None:
    """Every file of a build context, by the listing the image build hashes (with the
    ignore file that build uses, which may sit beside its Dockerfile)."""
    found = _inside(root, rel)
    if found is None:
        return
    key, linked = found
    folder = root if key == "." else root / key
    if linked or folder.is_symlink():
        _add_file(root, key, out)  # the link itself, not what it points at
        return
    if not folder.is_dir():
        return
    for sub, path in context_files(folder, root / dockerfile if dockerfile else None):
        digest = _digest(path)
        if digest is not None:
            out[sub if key == "." else f"{key}/{sub}"] = digest


def _words(command: str | None) -> list[str]:
    """The words of a setup command that could name a file of the repository."""
    if not command:
        return []
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    return [w for w in words if w and not w.startswith("-")]


def inputs(root: Path, session: Session, config: PackConfig | None = None) -> dict[str, str]:
    """The session's definition files (relative to root) with their digests: paude.yaml,
    paude-policy.yaml, the image source in use, the Dockerfile and its build context,
    local devcontainer features, and files the setup commands name."""
    out: dict[str, str] = {}
    _add_file(root, PAUDE_FILE, out)
    _add_file(root, POLICY_FILE, out)
    if session.image_source in IMAGE_SOURCES:
        _add_file(root, session.image_source, out)
    dockerfile, context = dockerfile_paths(session)
    if dockerfile:
        for name in (dockerfile, f"{dockerfile}.containerignore", f"{dockerfile}.dockerignore"):
            _add_file(root, name, out)
        _add_tree(root, context, out, dockerfile)
    for word in _words(session.image.setup) + _words(session.setup):
        _add_file(root, word, out)
    for ref in (r for r in session.image.features if r.startswith("./") and r.strip("./")):
        _add_tree(root, ref[2:].rstrip("/"), out)  # its install.sh runs in the build
    # Custom rules' code is never part of it: a repository's policy file holds no code
    # (paude/policy.py), and PAUDE_HOME's files are outside the repository's history.
    del config
    return dict(sorted(out.items()))


def snapshot(root: Path, session: Session, config: PackConfig | None = None) -> Snapshot:
    """The definition as it is now, with the commit checked out: what an apply records."""
    try:
        result = gitsync._git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}",
                              check=False)
        head = result.stdout.strip() if result.ok else ""
    except ToolNotFoundError:  # no git: the files are still compared
        head = ""
    return Snapshot(inputs(root, session, config), head if _SHA.match(head) else "")


# ---------------------------------------------------------------- what changed, from where


def _differences(current: Mapping[str, str], recorded: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for path in sorted(set(current) | set(recorded)):
        old, new = recorded.get(path), current.get(path)
        if old != new:
            out[path] = "added" if old is None else "removed" if new is None else "modified"
    return out


def changes(root: Path, current: Snapshot, recorded: Snapshot | None
            ) -> tuple[DefinitionChange, ...]:
    """Files that differ from the recorded definition, each with the commits from a session
    that touched it since the recorded HEAD. Without a record, only files whose recent
    commits came from a session are reported (there is nothing else to compare with)."""
    if recorded is None:
        changed = dict.fromkeys(current.inputs, "unrecorded")
    else:
        changed = _differences(current.inputs, recorded.inputs)
    if not changed:
        return ()
    since = recorded.head if recorded is not None else ""
    found = session_commits(root, changed, since) if current.head else {}
    out = []
    for path, kind in changed.items():
        commits = tuple(found.get(path, ()))
        if recorded is None and not commits:
            continue
        out.append(DefinitionChange(path, kind, commits, bool(commits)))
    return tuple(out)


def session_commits(root: Path, paths: Iterable[str], since: str = ""
                    ) -> dict[str, list[DefinitionCommit]]:
    """For each of `paths`, the commits (newest first, at most MAX_COMMITS) that touched it
    in since..HEAD and are reachable from a session: a `refs/remotes/paude-*` ref or a
    rescue ref under `refs/paude/`, and were not made in this repository (the user's own
    commits, pushed into a session, did not come from it). At most five git calls, whatever
    the number of commits."""
    tips = _session_tips(root)
    if not tips:
        return {}
    wanted = set(paths)
    base = since if since and _is_commit(root, since) else ""
    touched = _touching(root, sorted(wanted), base)
    if not touched:
        return {}
    arrived = _reachable(root, tips, base)
    local: set[str] | None = None
    picked: dict[str, list[str]] = {}
    for sha, files in touched:
        if sha not in arrived:
            continue
        if local is None:
            local = _made_here(root)
        if sha in local:
            continue
        for name in files:
            if name in wanted and len(picked.setdefault(name, [])) < MAX_COMMITS:
                picked[name].append(sha)
    if not picked:
        return {}
    described = _describe(root, sorted({s for shas in picked.values() for s in shas}),
                          arrived)
    return {name: [described[s] for s in shas] for name, shas in picked.items()}


def _is_commit(root: Path, sha: str) -> bool:
    if not _SHA.match(sha):
        return False
    return gitsync._git(root, "rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}",
                        check=False).ok


def _session_tips(root: Path) -> dict[str, str]:
    """commit -> where it came from (paude-NAME, or refs/paude/...) for every session ref.
    Only three components of a name are read: the rest are the agent's branch names."""
    result = gitsync._git(
        root, "for-each-ref", "--format=%(objecttype) %(objectname) %(*objecttype) "
        "%(*objectname) %(refname:rstrip=-3)", "refs/remotes/", "refs/paude/")
    tips: dict[str, str] = {}
    for line in result.stdout.splitlines():
        kind, sha, peeled_kind, peeled, label = (line.split(" ", 4) + [""] * 5)[:5]
        if not label.startswith(("refs/remotes/paude-", "refs/paude/")):
            continue
        if kind == "tag" and peeled_kind == "commit":
            sha = peeled
        elif kind != "commit":
            continue
        tips.setdefault(sha, label.removeprefix("refs/remotes/"))
    return tips


def _made_here(root: Path) -> set[str]:
    """Commits `git commit` created in this repository, from the reflogs of HEAD and the
    branches. The agent's commits are made in the session, never here; a reflog that is
    gone or unreadable only makes the plan louder."""
    try:
        result = gitsync._git(root, "log", "--walk-reflogs", "--format=%H %<(8,trunc)%gs",
                              "--branches", "HEAD", check=False)
    except UnicodeDecodeError:
        return set()
    made = set()
    for line in result.stdout.splitlines() if result.ok else ():
        sha, _, message = line.partition(" ")
        if message.startswith("commit"):  # commit, commit (initial|amend|merge)
            made.add(sha)
    return made


def _touching(root: Path, paths: Sequence[str], base: str) -> list[tuple[str, list[str]]]:
    """(commit, files) of the commits in base..HEAD that touched any of `paths`, newest
    first. Names come quoted in ASCII (core.quotePath): the agent names files."""
    marker = secrets.token_hex(16)  # unguessable: no file name can fake a record
    args = ["-c", "core.quotePath=true", "--literal-pathspecs", "log", "--no-show-signature",
            f"--format={marker}%H", "--name-only", "--relative", "--no-renames",
            "--diff-merges=first-parent"]
    if not base:
        args.append(f"--max-count={SCAN_LIMIT}")
    args.append(f"{base}..HEAD" if base else "HEAD")
    if len(paths) <= _PATHSPEC_LIMIT:
        args += ["--", *paths]
    out = []
    for chunk in gitsync._git(root, *args).stdout.split(marker)[1:]:
        sha, *names = chunk.split("\n")
        out.append((sha.strip(), [_unquote(n) for n in names if n]))
    return out


def _reachable(root: Path, tips: Mapping[str, str], base: str) -> dict[str, str]:
    """Every commit reachable from a session ref but not from base -> the ref's source.

    Walked from the session refs down, never the other way: commit dates are the agent's
    to choose, and only this direction cannot be cut short by them."""
    lines = [*sorted(tips), *([f"^{base}"] if base else [])]
    result = gitsync._git(root, "log", "--no-show-signature", "--stdin", "--source",
                          "--format=%H %S", input="\n".join(lines) + "\n")
    out = {}
    for line in result.stdout.splitlines():
        sha, _, source = line.partition(" ")
        out[sha] = tips.get(source, source)
    return out


def _describe(root: Path, shas: Sequence[str], sources: Mapping[str, str]
              ) -> dict[str, DefinitionCommit]:
    """Short sha, subject and author of each commit, made printable."""
    try:
        return _describe_all(root, shas, sources)
    except UnicodeDecodeError:  # not UTF-8: one by one, so the others keep their subjects
        out = {}
        for sha in shas:
            try:
                out.update(_describe_all(root, [sha], sources))
            except UnicodeDecodeError:
                out[sha] = DefinitionCommit(sha, sha[:7], "(subject is not valid UTF-8)", "?",
                                            sources.get(sha, ""))
        return out


def _describe_all(root: Path, shas: Sequence[str], sources: Mapping[str, str]
                  ) -> dict[str, DefinitionCommit]:
    record, sep = f"{secrets.token_hex(8)}R", f"{secrets.token_hex(8)}F"
    result = gitsync._git(root, "log", "--no-show-signature", "--no-walk=unsorted", "--stdin",
                          f"--format={record}%H{sep}%h{sep}%an{sep}%s",
                          input="".join(f"{s}\n" for s in shas))
    out = {}
    for chunk in result.stdout.split(record)[1:]:
        fields = chunk.rstrip("\n").split(sep)
        if len(fields) != 4:
            continue
        sha, short, author, subject = fields
        out[sha] = DefinitionCommit(sha, short, printable(subject, 100), printable(author, 60),
                                    sources.get(sha, ""))
    for sha in shas:  # never drop a commit, even one git described oddly
        out.setdefault(sha, DefinitionCommit(sha, sha[:7], "?", "?", sources.get(sha, "")))
    return out


def _unquote(name: str) -> str:
    """A path as git prints it with core.quotePath ("a\\303\\251b": C escapes, octal bytes)."""
    if len(name) < 2 or not (name.startswith('"') and name.endswith('"')):
        return name
    raw = name[1:-1].encode("ascii").decode("unicode_escape").encode("latin-1")
    return os.fsdecode(raw)


def printable(text: str, limit: int = 200) -> str:
    """Text the agent wrote, safe for a terminal: control characters become '?'."""
    clean = "".join(c if c.isprintable() else "?" for c in text.strip())
    return clean if len(clean) <= limit else clean[:limit - 3] + "..."


# ---------------------------------------------------------------- the policy rule


def finding(found: Sequence[DefinitionChange], level: str) -> PolicyFinding | None:
    """The definition-changed-by-session rule, evaluated here: the policy pack runs in the
    engine and sees only resources, not where the definition came from."""
    arrived = [c for c in found if c.from_session]
    if level == "disabled" or not arrived:
        return None
    rule = BY_ID[DEFINITION_CHANGED]
    parts = [f"{printable(c.file)} ("
             + ", ".join(f"{x.short} from {x.source}" for x in c.commits[:3])
             + (", ..." if len(c.commits) > 3 else "") + ")" for c in arrived[:5]]
    more = f"; and {len(arrived) - 5} more files" if len(arrived) > 5 else ""
    return PolicyFinding(DEFINITION_CHANGED, "mandatory" if level == "mandatory" else "advisory",
                         "", "the session's definition changed in commits that came from a "
                         f"session: {'; '.join(parts)}{more}", str(rule.fix))


def recorded(name: str, owner: str) -> Snapshot | None:
    """The definition the last apply of session NAME from this repository recorded."""
    entry = index.read(name)
    if entry is None or entry.owner != owner or not entry.definition_inputs:
        return None
    return Snapshot(dict(entry.definition_inputs), entry.definition_head)


def review(root: Path, session: Session, config: PackConfig, recorded: Snapshot | None
           ) -> Review:
    """Snapshot the definition, compare it with the one the last apply recorded, and
    evaluate the rule at the level the policy files give it."""
    current = snapshot(root, session, config)
    found = changes(root, current, recorded)
    level = str(config.levels.get(DEFINITION_CHANGED, BY_ID[DEFINITION_CHANGED].level))
    return Review(current, found, finding(found, level))
