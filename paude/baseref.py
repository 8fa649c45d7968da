"""The base side of a pull-request plan: which commit it is, and its files, read from git
objects with the host's git (gitsync.HOST_GIT). Nothing is checked out and nothing of the
repository runs: the files at the base commit are written, as plain data, into a private
temporary folder that the same loaders as the working tree's then read.

Both the ref and the tree are untrusted: the ref may come from a CI variable, the tree
from the agent's commits. The ref must look like one (never an option for git), the tree
is bounded (limits.MAX_TREE_FILES / MAX_TREE_BYTES), its paths must stay inside the
folder, files are never made executable and symlinks are written as links, so the
loaders' symlink rules judge them exactly as in the working tree."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from paude import gitsync
from paude.errors import CommandFailedError, PaudeError
from paude.limits import MAX_TREE_BYTES, MAX_TREE_FILES
from paude.provenance import printable
from paude.results import BaseCommit as Base

AUTO = "auto"
# What a branch, tag or commit (with ~N, ^N, @{...} suffixes) may be spelt with; never
# `:` (REF:PATH names a file), whitespace or control characters.
_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/@{}^~+-]*")
_SHA = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
_REF_HINT = ("give a branch, tag or commit (--base origin/main), or --base auto in CI to "
             "take it from GITHUB_BASE_REF, CI_MERGE_REQUEST_DIFF_BASE_SHA / "
             "CI_MERGE_REQUEST_TARGET_BRANCH_NAME or origin's default branch")


def check_ref(value: str) -> str:
    """`value` when it can only be read as a ref, else a PaudeError (`-x` would be an
    option to git, `a..b` a range, `REF:path` a file)."""
    if (len(value) > 255 or not _REF.fullmatch(value) or ".." in value
            or value.endswith((".lock", "/", ".")) or "//" in value):
        raise PaudeError(f"--base {printable(value, 80)!r} is not a git ref", hint=_REF_HINT)
    return value


def _verify(root: Path, ref: str) -> str | None:
    check_ref(ref)
    result = gitsync._git(root, "rev-parse", "--verify", "--quiet", "--end-of-options",
                          f"{ref}^{{commit}}", check=False)
    sha = result.stdout.strip()
    return sha if result.ok and _SHA.fullmatch(sha) else None


def resolve(root: Path, ref: str, env: Mapping[str, str] | None = None) -> Base:
    """The commit `ref` names in the repository at `root`; `auto` finds the base of the
    pull or merge request from the CI's variables."""
    gitsync.require_repo(root)
    if ref == AUTO:
        return _auto(root, os.environ if env is None else env)
    sha = _verify(root, ref)
    if sha is None:
        raise PaudeError(f"--base {ref}: no such commit in this repository",
                         hint="fetch it first (`git fetch origin main`; in CI check out with "
                              "the full history: fetch-depth: 0 / GIT_DEPTH: 0)")
    return Base(ref, sha)


def _auto(root: Path, env: Mapping[str, str]) -> Base:
    tried: list[str] = []

    def first(*refs: str) -> Base | None:
        for ref in refs:
            tried.append(ref)
            sha = _verify(root, ref)
            if sha is not None:
                return Base(ref, sha)
        return None

    found: Base | None = None
    if env.get("GITHUB_BASE_REF"):
        branch = check_ref(env["GITHUB_BASE_REF"])
        found = first(f"origin/{branch}", branch)
    elif env.get("CI_MERGE_REQUEST_DIFF_BASE_SHA") or env.get(
            "CI_MERGE_REQUEST_TARGET_BRANCH_NAME"):
        candidates = []
        if env.get("CI_MERGE_REQUEST_DIFF_BASE_SHA"):
            candidates.append(check_ref(env["CI_MERGE_REQUEST_DIFF_BASE_SHA"]))
        if env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME"):
            branch = check_ref(env["CI_MERGE_REQUEST_TARGET_BRANCH_NAME"])
            candidates += [f"origin/{branch}", branch]
        found = first(*candidates)
    else:
        found = _merge_base(root, tried)
    if found is None:
        raise PaudeError(f"--base auto: none of {', '.join(tried) or 'origin/HEAD'} is a "
                         "commit here", hint="fetch the base branch (in CI: fetch-depth: 0 / "
                         "GIT_DEPTH: 0), or " + _REF_HINT.split(", or ")[0])
    return found


def _merge_base(root: Path, tried: list[str]) -> Base | None:
    """Where HEAD left origin's default branch."""
    head = gitsync._git(root, "symbolic-ref", "--quiet", "refs/remotes/origin/HEAD",
                        check=False).stdout.strip()
    names = [head.removeprefix("refs/remotes/")] if head.startswith("refs/remotes/origin/") \
        else ["origin/main", "origin/master"]
    for name in names:
        tried.append(name)
        tip = _verify(root, name)
        if tip is None:
            continue
        result = gitsync._git(root, "merge-base", "HEAD", tip, check=False)
        sha = result.stdout.strip()
        if result.ok and _SHA.fullmatch(sha):
            return Base(f"merge-base HEAD {name}", sha)
    return None


# ---------------------------------------------------------------- the files at the base


@dataclass(frozen=True)
class Entry:
    """One blob of the base tree, relative to the project root."""

    mode: str  # 100644 | 100755 | 120000 (a symlink)
    sha: str
    size: int
    path: str


def entries(root: Path, commit: str) -> list[Entry]:
    """The files of `commit` under the project root (the folder of paude.yaml); submodules
    are left out, as a checkout without them would."""
    if not _SHA.fullmatch(commit):
        raise PaudeError(f"not a commit id: {printable(commit, 80)}")
    # Run from the project root without --full-tree: paths are relative to it.
    raw = gitsync.git_bytes(root, "ls-tree", "-r", "-z", "-l", commit)
    out = []
    for record in raw.split(b"\0"):
        if not record:
            continue
        meta, _, name = record.partition(b"\t")
        mode, kind, sha, size = meta.decode("ascii", "replace").split()
        if kind != "blob":
            continue
        out.append(Entry(mode, sha, int(size), os.fsdecode(name)))
    return out


def _blobs(root: Path, shas: list[str]) -> dict[str, bytes]:
    if not shas:
        return {}
    raw = gitsync.git_bytes(root, "cat-file", "--batch", input="\n".join(shas).encode() + b"\n")
    out: dict[str, bytes] = {}
    pos = 0
    for _ in shas:
        end = raw.index(b"\n", pos)
        sha, kind, size = raw[pos:end].decode("ascii").split()
        start = end + 1
        if kind != "blob":
            raise PaudeError(f"git object {sha} is a {kind}, not a file")
        out[sha] = raw[start:start + int(size)]
        pos = start + int(size) + 1
    return out


def _safe(path: str) -> bool:
    parts = path.split("/")
    return not path.startswith("/") and all(
        p not in ("", ".", "..") and p.lower() != ".git" and "\0" not in p for p in parts)


def materialise(root: Path, commit: str, dest: Path,
                select: Callable[[str], bool] = lambda _path: True) -> int:
    """Write the selected files of `commit` into the empty folder `dest`; the number
    written. Regular files get mode 0644, symlinks keep their link text."""
    chosen = [e for e in entries(root, commit) if select(e.path)]
    if len(chosen) > MAX_TREE_FILES:
        raise PaudeError(f"the base commit has {len(chosen)} files, more than "
                         f"{MAX_TREE_FILES}", hint="plan against a smaller repository, or "
                         "use the live plan (`paude plan NAME`) on your machine")
    total = sum(e.size for e in chosen)
    if total > MAX_TREE_BYTES:
        raise PaudeError(f"the base commit's files take {total} bytes, more than "
                         f"{MAX_TREE_BYTES}", hint="plan against a smaller repository, or "
                         "use the live plan (`paude plan NAME`) on your machine")
    bad = [e.path for e in chosen if not _safe(e.path)]
    if bad:
        raise PaudeError(f"the base commit holds paths git would never check out: "
                         f"{printable(bad[0], 120)}", hint="the base commit is malformed")
    dest_real = Path(os.path.realpath(dest))
    contents = _blobs(root, sorted({e.sha for e in chosen}))
    for entry in chosen:
        target = _folder_for(dest_real, entry.path) / entry.path.rsplit("/", 1)[-1]
        data = contents[entry.sha]
        try:
            if entry.mode == "120000":
                os.symlink(os.fsdecode(data), target)
                continue
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                         stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IROTH)
        except FileExistsError:
            raise _malformed(entry.path, "twice") from None
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
    return len(chosen)


def _folder_for(dest: Path, path: str) -> Path:
    """The folder a file of the tree goes in, made one level at a time: a symlink written
    earlier (a crafted tree may hold `a` as a link and `a/b` as a file) must not carry a
    later file, or a folder made for it, out of `dest`."""
    folder = dest
    for part in path.split("/")[:-1]:
        folder = folder / part
        if folder.is_symlink():
            raise _malformed(path, "through a symlink")
        if not folder.is_dir():
            try:
                folder.mkdir()
            except FileExistsError:  # a file of that name
                raise _malformed(path, "inside a file") from None
    return folder


def _malformed(path: str, how: str) -> PaudeError:
    return PaudeError(f"the base commit writes {printable(path, 120)} {how}",
                      hint="the base commit is malformed; plan against another one")


def read_error(exc: CommandFailedError, base: Base) -> PaudeError:
    """A failed git read of the base, said in the terms of the plan."""
    return PaudeError(f"cannot read the files of {base.label}: {exc.message}",
                      hint="check that the commit exists here with `git show "
                           f"{base.commit[:12]}`")
