"""paude.work and paude.rescue against real git: templates/workspace-work.sh runs (under
/bin/sh) in a local folder standing in for the agent container (see test_gitsync)."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from paude import gitsync, proc, rescue, work
from paude.errors import PaudeError
from paude.proc import CommandResult
from paude.work import Paths, RefWork
from paude.work_parse import WorkReportError
from tests.unit.gitworld import (
    SESSION,
    World,
    commit,
    container_commit,
    git,
    in_container,
    make_world,
    with_files,
)
from tests.unit.test_git_remote import Helper, Replaced


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return make_world(tmp_path, monkeypatch)


@pytest.fixture
def helper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Helper:
    """git-remote-paude's main with its final exec captured (see test_git_remote)."""
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GIT_PROTOCOL", raising=False)

    def fake_exec(argv: Sequence[str], *, env: Any = None) -> None:
        raise Replaced(argv, env)

    monkeypatch.setattr(proc, "exec_replace", fake_exec)
    return Helper()


@pytest.fixture
def pushed(world: World) -> World:
    """A session whose main (a.txt, b.txt) the host pushed and has."""
    with_files(world, "a.txt", "b.txt")
    gitsync.remote_add(world.host, SESSION, push=True, backend=world.backend)
    return world


def report(w: World) -> work.WorkReport:
    return work.report(w.host, w.backend, SESSION)


def host_git(w: World, *args: str) -> str:
    return git(w.host, *args, env=gitsync.git_env())


def fingerprint(w: World) -> tuple[str, str, str]:
    """The agent's index, status and branches: a rescue or a report must not change them."""
    # --no-optional-locks: a plain status may refresh the index's stat data itself (racily
    # clean entries on a loaded machine), which would read as a change by the rescue.
    index = (w.workspace / ".git" / "index").read_bytes()
    return (hashlib.sha256(index).hexdigest(),
            in_container(w, "--no-optional-locks", "status", "--porcelain"),
            in_container(w, "for-each-ref", "refs/heads", "refs/tags", "refs/stash"))


def test_a_clean_session_holds_nothing(pushed: World) -> None:
    found = report(pushed)
    assert found == work.WorkReport(git=True)
    assert not found.blocking
    assert work.kinds(found, SESSION) == []


def test_uncommitted_and_untracked_files_block_and_ignored_ones_do_not(pushed: World) -> None:
    ws = pushed.workspace
    (ws / ".gitignore").write_text("build/\n", encoding="utf-8")
    in_container(pushed, "add", ".gitignore")
    in_container(pushed, "commit", "-qm", "ignore build")
    host_git(pushed, "fetch", "-q", "paude-demo")
    (ws / "build").mkdir()
    (ws / "build" / "out.o").write_text("x", encoding="utf-8")
    found = report(pushed)
    assert found.ignored == Paths(1, ("build/",))
    assert not found.blocking  # ignored files alone do not block

    (ws / "a.txt").write_text("edited\n", encoding="utf-8")
    (ws / "b.txt").write_text("staged\n", encoding="utf-8")
    in_container(pushed, "add", "b.txt")
    (ws / "new file.txt").write_text("new\n", encoding="utf-8")
    (ws / "line\nbreak").write_text("odd\n", encoding="utf-8")
    (ws / b"caf\xe9".decode("utf-8", "surrogateescape")).write_text("latin-1\n")
    found = report(pushed)
    assert found.changed == Paths(2, ("a.txt", "b.txt"))
    assert found.untracked == Paths(3, ("caf\\xe9", "line\\nbreak", "new file.txt"))
    assert found.blocking and not found.files_saved and found.refs == ()
    text = work.describe(found, SESSION)
    assert "  uncommitted changes: 2 changed tracked files (a.txt, b.txt)\n" in text
    assert "  untracked files: 3 untracked paths (caf\\xe9, line\\nbreak, new file.txt)\n" in text
    assert ("    bring it back: `paude connect demo` and commit them there, or "
            "`paude rescue demo`\n") in text
    assert "  ignored files: 1 ignored path (build/): usually build output, so they do not " \
           "block a delete" in text


def test_a_report_writes_nothing_in_the_agent_s_repository(pushed: World) -> None:
    (pushed.workspace / "a.txt").write_text("edited\n", encoding="utf-8")
    (pushed.workspace / "new.txt").write_text("new\n", encoding="utf-8")
    objects = sorted((pushed.workspace / ".git" / "objects").rglob("*"))
    before = fingerprint(pushed)
    assert report(pushed).blocking
    assert fingerprint(pushed) == before
    assert sorted((pushed.workspace / ".git" / "objects").rglob("*")) == objects


def test_stash_detached_head_tag_and_other_refs(pushed: World) -> None:
    w = pushed
    (w.workspace / "a.txt").write_text("stashed once\n", encoding="utf-8")
    in_container(w, "stash", "-q")
    (w.workspace / "a.txt").write_text("stashed twice\n", encoding="utf-8")
    in_container(w, "stash", "-q")
    in_container(w, "switch", "-q", "--detach")
    tagged = container_commit(w, "tagged.txt")
    in_container(w, "tag", "v1")
    in_container(w, "tag", "-a", "-m", "annotated", "v0", "main")  # only a new tag object
    in_container(w, "notes", "add", "-m", "a note", "main")
    detached = container_commit(w, "detached.txt")
    found = report(w)
    assert [(r.kind, r.name, r.commits) for r in found.refs] == [
        ("other", "refs/notes/commits", 1), ("tag", "v0", 0), ("tag", "v1", 1),
        ("head", "HEAD", 2), ("stash", "stash@{0}", 2), ("stash", "stash@{1}", 2)]
    assert found.of_kind("head") == (RefWork("HEAD", "head", detached, 2),)
    assert found.of_kind("tag")[1].tip == tagged
    text = work.describe(found, SESSION)
    assert "  tags: 2 tags\n    v0: no new commit (at " in text
    assert "    bring it back: `git fetch paude-demo 'refs/tags/*:refs/tags/*'`\n" in text
    assert ("  detached HEAD: 2 commits on no branch\n    HEAD: 2 commits (at "
            f"{detached[:12]})\n    bring it back: `git fetch paude-demo "
            "+HEAD:refs/paude/demo/HEAD`\n") in text
    assert "  stash: 2 stash entries\n    stash@{0} (at " in text
    assert "  other refs: 1 ref\n    refs/notes/commits: 1 commit" in text

    # Each command the refusal names brings its kind back.
    host_git(w, "fetch", "-q", "paude-demo", "refs/tags/*:refs/tags/*")
    host_git(w, "fetch", "-q", "paude-demo", "+HEAD:refs/paude/demo/HEAD")
    assert [r.kind for r in report(w).refs] == ["other", "stash", "stash"]


def test_branch_commits_keep_the_old_message_and_unfetched(pushed: World) -> None:
    head = container_commit(pushed, "agent.txt")
    found = report(pushed)
    assert gitsync.unfetched(pushed.host, pushed.backend, SESSION) == [
        gitsync.BranchLag("main", 1, head)]
    text = work.describe(found, SESSION)
    assert text.startswith("session demo holds work the host does not have:\n"
                           "  branches: 1 commit on 1 branch\n"
                           f"    main: 1 commit (at {head[:12]})\n"
                           "    bring it back: `git fetch paude-demo`, or "
                           "`git pull paude-demo main`\n")
    assert text.endswith("(no remote paude-demo in your repository? `paude remote add demo` "
                         "adds it)")


def test_rescue_saves_everything_without_touching_the_agent_s_state(pushed: World) -> None:
    w = pushed
    in_container(w, "switch", "-qc", "idea")
    container_commit(w, "idea.txt")
    (w.workspace / "a.txt").write_text("stash me\n", encoding="utf-8")
    in_container(w, "stash", "-q")
    (w.workspace / "a.txt").write_text("stash me too\n", encoding="utf-8")
    in_container(w, "stash", "-q")
    in_container(w, "switch", "-q", "--detach")
    container_commit(w, "detached.txt")
    in_container(w, "tag", "v1")
    (w.workspace / "b.txt").write_text("staged\n", encoding="utf-8")
    in_container(w, "add", "b.txt")
    (w.workspace / "b.txt").write_text("staged, then edited\n", encoding="utf-8")
    (w.workspace / "a.txt").write_text("uncommitted\n", encoding="utf-8")
    (w.workspace / "new.txt").write_text("untracked\n", encoding="utf-8")
    before = fingerprint(w)

    result = rescue.rescue(w.host, w.backend, SESSION)
    assert fingerprint(w) == before
    ns = "refs/paude/demo"
    assert [(s.ref, s.what) for s in result.saved] == [
        (f"{ns}/heads/idea", "branch idea"), (f"{ns}/heads/main", "branch main"),
        (f"{ns}/tags/v1", "tag v1"), (f"{ns}/HEAD", "HEAD, detached"),
        (f"{ns}/stash", "stash@{0}"),
        (f"{ns}/worktree", "uncommitted and untracked files (the working tree)"),
        (f"{ns}/index", "staged changes (the index as it differs from HEAD and the files)"),
        (f"{ns}/stash-1", "stash@{1}")]
    assert not result.remaining.blocking
    # The guard counts it all as fetched now: a later report hashes the same working tree
    # (files written within the index's second included, see workspace-work.sh's cp -p).
    assert not report(w).blocking
    show = lambda spec: host_git(w, "show", spec)  # noqa: E731
    assert show(f"{ns}/worktree:a.txt") == "uncommitted\n"
    assert show(f"{ns}/worktree:new.txt") == "untracked\n"
    assert show(f"{ns}/worktree:b.txt") == "staged, then edited\n"
    assert show(f"{ns}/index:b.txt") == "staged\n"
    assert show(f"{ns}/stash-1:a.txt") == "stash me\n"
    assert show(f"{ns}/stash:a.txt") == "stash me too\n"
    assert show(f"{ns}/HEAD:detached.txt") == "x"
    assert host_git(w, "rev-parse", f"{ns}/worktree^") == host_git(w, "rev-parse", f"{ns}/HEAD")
    # The user's own refs are untouched: no agent tag lands in refs/tags.
    assert host_git(w, "tag") == ""

    # New work after the rescue blocks again; a second rescue keeps the first one's refs.
    (w.workspace / "a.txt").write_text("later\n", encoding="utf-8")
    assert report(w).unsaved_files
    in_container(w, "branch", "-D", "idea")
    rescue.rescue(w.host, w.backend, SESSION)
    assert show(f"{ns}/worktree:a.txt") == "later\n"
    assert host_git(w, "rev-parse", "--verify", "-q", f"{ns}/heads/idea").strip()
    assert not report(w).blocking


def test_a_workspace_without_git(world: World) -> None:
    (world.workspace / "notes.md").write_text("work without git\n", encoding="utf-8")
    (world.workspace / "src").mkdir()
    (world.workspace / "src" / "x.py").write_text("print(1)\n", encoding="utf-8")
    found = report(world)
    assert (found.git, found.files, found.blocking) == (False, Paths(2, ("notes.md",
                                                                         "src/x.py")), True)
    assert work.describe(found, SESSION).endswith(
        "  files outside git: /workspace is not a git repository; 2 files (notes.md, "
        "src/x.py)\n    bring it back: `paude rescue demo`")
    before = sorted(p.name for p in world.workspace.rglob("*"))

    result = rescue.rescue(world.host, world.backend, SESSION)
    assert [s.ref for s in result.saved] == ["refs/paude/demo/worktree"]
    assert not result.remaining.blocking
    assert git(world.host, "show", "refs/paude/demo/worktree:src/x.py") == "print(1)\n"
    assert sorted(p.name for p in world.workspace.rglob("*")) == before  # no .git appeared
    assert not (world.container / "rescue.git").exists()  # the scratch repository is gone
    (world.workspace / "notes.md").write_text("changed\n", encoding="utf-8")
    assert report(world).blocking


def test_an_empty_workspace_holds_nothing(world: World) -> None:
    assert not report(world).blocking
    assert rescue.rescue(world.host, world.backend, SESSION).saved == ()



def test_many_paths_are_all_counted_and_five_named(pushed: World) -> None:
    """The report names the first five paths of a kind and counts every one, including a
    name holding a line break (names end in NULs, never newlines)."""
    names = [f"new-{i:02}.txt" for i in range(12)] + ["z\nlast.txt"]
    for name in names:
        (pushed.workspace / name).write_text("x\n", encoding="utf-8")
    found = report(pushed)
    assert found.untracked == Paths(13, tuple(names[:5]))
    assert found.changed == Paths() and found.blocking
    (pushed.workspace / "new-00.txt").unlink()
    assert report(pushed).untracked == Paths(12, tuple(names[1:6]))


def test_many_files_of_a_workspace_without_git(world: World) -> None:
    for i in range(7):
        (world.workspace / f"f{i}").write_text("x\n", encoding="utf-8")
    found = report(world)
    assert found.files == Paths(7, ("f0", "f1", "f2", "f3", "f4"))
    for i in range(3):
        (world.workspace / f"f{i}").unlink()
    assert report(world).files == Paths(4, ("f3", "f4", "f5", "f6"))

def test_embedded_repositories_block_even_after_a_rescue(pushed: World) -> None:
    inner = pushed.workspace / "vendor" / "lib"
    inner.mkdir(parents=True)
    git(inner, "init", "-q")
    commit(inner, "lib.txt")
    found = report(pushed)
    assert found.embedded == Paths(1, ("vendor/lib",))
    rescue.rescue(pushed.host, pushed.backend, SESSION)
    after = report(pushed)
    assert after.blocking and after.files_saved and after.embedded.count == 1
    assert "paude rescue saves only a link to them" in work.describe(after, SESSION)


def test_outside_a_host_repository_every_commit_counts(pushed: World, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    found = work.report(plain, pushed.backend, SESSION)
    assert [(r.name, r.commits) for r in found.refs] == [("main", 2)]
    with pytest.raises(PaudeError, match="not a git repository"):
        rescue.rescue(plain, pushed.backend, SESSION)


# ---------------------------------------------------------------- exact commands, errors


def test_one_exec_with_the_host_s_commits_on_stdin(pushed: World,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[tuple[str, ...], str | None]] = []
    real = proc.run

    def spy(argv: Sequence[str], **kwargs: Any) -> CommandResult:
        calls.append((tuple(argv), kwargs.get("input")))
        return real(argv, **kwargs)

    monkeypatch.setattr(proc, "run", spy)
    report(pushed)
    execs = [(argv, stdin) for argv, stdin in calls if argv[0] == "podman"]
    assert len(execs) == 1
    argv, stdin = execs[0]
    assert argv[:6] == ("podman", "exec", "--interactive", "paude-demo-agent", "sh", "-c")
    assert argv[7:] == ("sh", "/workspace", "report", "/tmp/paude-rescue.git")
    main = host_git(pushed, "rev-parse", "main").strip()
    assert stdin == f"{main}\n"


def test_rescue_fetch_command(pushed: World, monkeypatch: pytest.MonkeyPatch) -> None:
    container_commit(pushed, "agent.txt")
    (pushed.workspace / "new.txt").write_text("n\n", encoding="utf-8")
    fetches: list[tuple[str, ...]] = []
    real = proc.run

    def spy(argv: Sequence[str], **kwargs: Any) -> CommandResult:
        if "fetch" in argv:
            fetches.append(tuple(argv))
        return real(argv, **kwargs)

    monkeypatch.setattr(proc, "run", spy)
    rescue.rescue(pushed.host, pushed.backend, SESSION)
    (argv,) = fetches
    assert argv[:len(gitsync.HOST_GIT) + 2] == (*gitsync.HOST_GIT, "-C",
                                               str(pushed.host))
    assert argv[argv.index("fetch"):] == (
        "fetch", "--quiet", "--no-tags", "--no-prune", "--no-recurse-submodules",
        "--no-write-fetch-head", "paude::demo", "+refs/heads/*:refs/paude/demo/heads/*",
        "+HEAD:refs/paude/demo/HEAD",
        "+refs/paude-rescue/worktree:refs/paude/demo/worktree")


def test_an_unreadable_answer_is_an_error_not_an_empty_report(
        pushed: World, monkeypatch: pytest.MonkeyPatch) -> None:
    real = proc.run

    def broken(argv: Sequence[str], **kwargs: Any) -> CommandResult:
        result = real(argv, **kwargs)
        if argv[0] == "podman":
            return CommandResult(result.argv, 0, result.stdout[: len(result.stdout) // 2],
                                 "sh: 1: od: not found\n")
        return result

    monkeypatch.setattr(proc, "run", broken)
    with pytest.raises(WorkReportError) as exc:
        report(pushed)
    assert exc.value.message.startswith("cannot tell what work session demo holds: ")
    assert "od: not found" in exc.value.message


def test_a_stopped_container_is_an_error(pushed: World) -> None:
    (pushed.container / "stopped").touch()
    with pytest.raises(PaudeError, match="agent container of session demo is not running"):
        report(pushed)


def test_the_rescue_url_serves_the_rescue_repository_for_fetches_only(
        helper: Helper, capsys: pytest.CaptureFixture[str]) -> None:
    replaced, out, _ = helper.run(["x", "demo/rescue"], b"connect git-upload-pack\n")
    assert isinstance(replaced, Replaced) and out == b"\n"
    assert replaced.argv == ["podman", "exec", "--interactive", "paude-demo-agent",
                             "git-upload-pack", "/tmp/paude-rescue.git"]
    code, out, _ = helper.run(["x", "demo/rescue"], b"connect git-receive-pack\n")
    assert (code, out) == (128, b"")
    assert capsys.readouterr().err == "paude: paude::demo/rescue is only for fetching\n"
    code, _, _ = helper.run(["x", "demo/other"], b"connect git-upload-pack\n")
    assert code == 128
    assert "paude::demo/other: invalid session name 'demo/other'" in capsys.readouterr().err


def test_refs_with_names_in_any_encoding_are_counted_and_rescued(pushed: World) -> None:
    head = container_commit(pushed, "agent.txt")
    latin1 = b"caf\xe9".decode("utf-8", "surrogateescape")
    in_container(pushed, "branch", latin1)
    in_container(pushed, "update-ref", f"refs/custom/{latin1}", head)
    found = report(pushed)
    assert [(r.kind, r.name) for r in found.refs] == [
        ("other", "refs/custom/caf\\xe9"), ("branch", "caf\\xe9"), ("branch", "main")]
    result = rescue.rescue(pushed.host, pushed.backend, SESSION)
    assert ("refs/paude/demo/other/custom/caf\\xe9", "ref refs/custom/caf\\xe9") in [
        (s.ref, s.what) for s in result.saved]
    listed = subprocess.run(["git", "-C", str(pushed.host), "for-each-ref",
                             "--format=%(refname)", "refs/paude/demo/"],
                            capture_output=True, check=True).stdout.split(b"\n")
    assert b"refs/paude/demo/other/custom/caf\xe9" in listed
    assert b"refs/paude/demo/heads/caf\xe9" in listed
    assert not report(pushed).blocking


def test_status_reads_the_setup_state_in_the_same_exec(pushed: World, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "paude-setup").write_text("#!/bin/sh\n[ \"$1\" = state ] || exit 2\n"
                                       "printf 'state=done\\nexit=0\\nchanged=no\\n'\n")
    (tools / "paude-setup").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    found, setup = work.report_with_setup(pushed.host, pushed.backend, SESSION)
    assert found == work.WorkReport(git=True)
    assert setup == (0, "state=done\nexit=0\nchanged=no")


def test_status_of_an_image_without_paude_setup(pushed: World) -> None:
    # The stand-in container is the host, which has no paude-setup (an image from before it).
    found, setup = work.report_with_setup(pushed.host, pushed.backend, SESSION)
    assert found == work.WorkReport(git=True)
    assert setup is not None and setup[0] == 127 and "not found" in setup[1]
