"""The base of a pull-request plan: refs that are refs, CI variables, and the base tree
written out as data."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from paude import baseref
from paude.baseref import Entry
from paude.errors import PaudeError

ENV = {"GIT_AUTHOR_NAME": "Dev", "GIT_AUTHOR_EMAIL": "d@example.com",
       "GIT_COMMITTER_NAME": "Dev", "GIT_COMMITTER_EMAIL": "d@example.com",
       "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent", "PATH": os.environ["PATH"]}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, env=ENV, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    (root / "paude.yaml").write_text("version: 1\n", encoding="utf-8")
    (root / "sub").mkdir()
    (root / "sub" / "tool.sh").write_text("echo hi\n", encoding="utf-8")
    (root / "sub" / "tool.sh").chmod(0o755)
    (root / "link").symlink_to("sub/tool.sh")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    git(root, "checkout", "-q", "-b", "pr")
    git(root, "commit", "-q", "--allow-empty", "-m", "head")
    return root


@pytest.mark.parametrize("ref", ["main", "origin/main", "v1.2.3", "HEAD~1", "HEAD^2",
                                 "main@{1}", "1a2b3c4d", "release-2026.01", "a+b"])
def test_refs_that_are_refs(ref: str) -> None:
    assert baseref.check_ref(ref) == ref


@pytest.mark.parametrize("ref", ["-h", "--output=/tmp/x", "--end-of-options", "main:paude.yaml",
                                 "main..pr", "main...pr", "a b", "main\n", "", "/abs", "a//b",
                                 "x.lock", "ma\x1bin", "é", "a" * 300, "main/"])
def test_values_that_are_not_refs_are_refused(ref: str) -> None:
    with pytest.raises(PaudeError, match="is not a git ref"):
        baseref.check_ref(ref)


def test_resolve_names_the_commit(repo: Path) -> None:
    base = baseref.resolve(repo, "main")
    assert base.commit == git(repo, "rev-parse", "main")
    assert base.label == f"base main ({base.commit[:8]})"
    with pytest.raises(PaudeError, match="no such commit"):
        baseref.resolve(repo, "nosuch")
    # A tree or blob is not a commit to plan against.
    tree = git(repo, "rev-parse", "main^{tree}")
    with pytest.raises(PaudeError, match="no such commit"):
        baseref.resolve(repo, tree)


def test_auto_reads_the_ci_variables(repo: Path) -> None:
    main = git(repo, "rev-parse", "main")
    assert baseref.resolve(repo, "auto", {"GITHUB_BASE_REF": "main"}).commit == main
    gitlab = {"CI_MERGE_REQUEST_DIFF_BASE_SHA": main,
              "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "nosuch"}
    assert baseref.resolve(repo, "auto", gitlab) == baseref.Base(main, main)
    target = baseref.resolve(repo, "auto", {"CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main"})
    assert target.commit == main
    with pytest.raises(PaudeError, match="is not a git ref"):
        baseref.resolve(repo, "auto", {"GITHUB_BASE_REF": "--upload-pack=x"})
    # No variables: the merge base with origin's default branch.
    with pytest.raises(PaudeError, match="origin/main, origin/master"):
        baseref.resolve(repo, "auto", {})
    git(repo, "update-ref", "refs/remotes/origin/main", main)
    found = baseref.resolve(repo, "auto", {})
    assert found.commit == main and found.ref == "merge-base HEAD origin/main"


def test_the_tree_is_written_as_data(repo: Path, tmp_path: Path) -> None:
    base = baseref.resolve(repo, "main")
    dest = tmp_path / "out"
    dest.mkdir()
    assert baseref.materialise(repo, base.commit, dest) == 3
    assert (dest / "paude.yaml").read_text(encoding="utf-8") == "version: 1\n"
    tool = dest / "sub" / "tool.sh"
    assert tool.read_bytes() == b"echo hi\n"
    assert not os.access(tool, os.X_OK)  # nothing of the base is made runnable
    assert os.readlink(dest / "link") == "sub/tool.sh"
    only = tmp_path / "only"
    only.mkdir()
    assert baseref.materialise(repo, base.commit, only, lambda p: p == "paude.yaml") == 1
    assert sorted(os.listdir(only)) == ["paude.yaml"]


def crafted(monkeypatch: pytest.MonkeyPatch, entries: list[Entry],
            blobs: dict[str, bytes]) -> None:
    monkeypatch.setattr(baseref, "entries", lambda _root, _commit: entries)
    monkeypatch.setattr(baseref, "_blobs", lambda _root, shas: {s: blobs[s] for s in shas})


def test_a_file_through_a_symlinked_folder_is_refused(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    crafted(monkeypatch, [Entry("120000", "l", 10, "a"), Entry("100644", "f", 1, "a/b/c")],
            {"l": str(outside).encode(), "f": b"x"})
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(PaudeError, match="through a symlink"):
        baseref.materialise(tmp_path, "0" * 40, dest)
    assert list(outside.iterdir()) == []  # not even a folder was made out there
    # Control: the same file without the link is written.
    crafted(monkeypatch, [Entry("100644", "f", 1, "a/b/c")], {"f": b"x"})
    ok = tmp_path / "ok"
    ok.mkdir()
    assert baseref.materialise(tmp_path, "0" * 40, ok) == 1


@pytest.mark.parametrize("path", ["../escape", "a/../../escape", "/etc/passwd", ".git/config",
                                  "sub/.GIT/hooks/x", "a//b", "./a"])
def test_paths_git_would_never_check_out_are_refused(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path, path: str) -> None:
    crafted(monkeypatch, [Entry("100644", "f", 1, path)], {"f": b"x"})
    with pytest.raises(PaudeError, match="never check out"):
        baseref.materialise(tmp_path, "0" * 40, tmp_path)


def test_a_path_written_twice_is_refused(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    crafted(monkeypatch, [Entry("120000", "l", 3, "x"), Entry("100644", "f", 1, "x")],
            {"l": b"/etc/passwd", "f": b"x"})
    with pytest.raises(PaudeError, match="twice"):
        baseref.materialise(tmp_path, "0" * 40, tmp_path)


def test_limits(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(baseref, "MAX_TREE_FILES", 2)
    crafted(monkeypatch, [Entry("100644", "f", 1, f"f{i}") for i in range(3)], {"f": b"x"})
    with pytest.raises(PaudeError, match="more than 2"):
        baseref.materialise(tmp_path, "0" * 40, tmp_path)
    monkeypatch.setattr(baseref, "MAX_TREE_BYTES", 10)
    crafted(monkeypatch, [Entry("100644", "f", 11, "big")], {"f": b"x" * 11})
    with pytest.raises(PaudeError, match="more than 10"):
        baseref.materialise(tmp_path, "0" * 40, tmp_path)
