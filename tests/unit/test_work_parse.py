"""The workspace report parser: names from the agent may hold any byte; anything that does
not parse is an error, never "no work"."""

from __future__ import annotations

import pytest

from paude.work import RefWork
from paude.work_parse import Observed, Paths, WorkReportError, decode, parse, printable

A, B = "a" * 40, "b" * 40


def od(data: bytes) -> str:
    """What `od -An -v -tx1` prints for data: 16 bytes a line."""
    rows = [data[i:i + 16] for i in range(0, len(data), 16)]
    return "".join(" " + " ".join(f"{b:02x}" for b in row) + "\n" for row in rows)


def stream(*fields: bytes | str) -> bytes:
    """Header, the fields NUL-terminated, and the end record."""
    raw = [f if isinstance(f, bytes) else f.encode() for f in fields]
    return b"".join(f + b"\0" for f in [b"paude-work", b"1", *raw, b"end", b"ok"])


def test_od_hex_round_trips() -> None:
    data = stream("git", "yes") + b"\xff\n\x00"
    assert decode(od(data)) == data


def test_a_clean_repository() -> None:
    seen = parse(stream("git", "yes", "head", f"branch {A} 0", "tree", f"head {B}",
                        "tree", f"index {B}", "tree", f"worktree {B}",
                        "changed", "0", "0", "untracked", "0", "0", "ignored", "0", "0",
                        "embedded", "0", "0"))
    assert seen == Observed(
        git=True, head=("branch", A, 0), trees={"head": B, "index": B, "worktree": B},
        paths={k: Paths() for k in ("changed", "untracked", "ignored", "embedded")})


def test_refs_head_stash_and_rescued_refs() -> None:
    seen = parse(stream("git", "yes", "ref", f"{A} 3 refs/heads/main",
                        "ref", f"{B} - refs/tags/blob-tag", "head", f"detached {B} 2",
                        "stash", f"0 {A} 2", "stash", f"1 {B} 3",
                        "tree", "worktree -", "rescued", f"worktree {A}",
                        "rescued", f"stash-1 {B}"))
    assert seen.refs == (("refs/heads/main", A, 3), ("refs/tags/blob-tag", B, None))
    assert seen.head == ("detached", B, 2)
    assert seen.stash == ((A, 2), (B, 3))
    assert seen.trees == {"worktree": None}
    assert seen.rescued == (("worktree", A), ("stash-1", B))


def test_the_setup_state_rides_along_and_is_checked() -> None:
    seen = parse(stream("git", "no", "setup", "0 state=done\nexit=0\nchanged=no"))
    assert seen.setup == (0, "state=done\nexit=0\nchanged=no")
    assert parse(stream("git", "no", "setup", "127 sh: paude-setup: not found")).setup == (
        127, "sh: paude-setup: not found")
    assert parse(stream("git", "no")).setup is None
    with pytest.raises(WorkReportError, match="setup exit code"):
        parse(stream("git", "no", "setup", "x0 state=done"))


def test_hostile_names_arrive_intact_and_print_safely() -> None:
    latin1 = b"refs/heads/caf\xe9"
    seen = parse(stream("git", "yes", "ref", b"%s 1 %s" % (A.encode(), latin1),
                        "untracked", "4", "3", b"with space", b"new\nline", b"\xff\xfe.txt",
                        "changed", "2", "2", b" M a file", b"MM \x1b[31mred",
                        "files", "0", "0"))
    ref = seen.refs[0][0]
    assert ref.encode("utf-8", "surrogateescape") == latin1  # exact bytes for a refspec
    assert RefWork(ref, "branch", A, 1).name == "caf\\xe9"
    assert seen.paths["untracked"] == Paths(4, ("with space", "new\\nline", "\\xff\\xfe.txt"))
    assert seen.paths["changed"] == Paths(2, ("a file", "\\x1b[31mred"))


def test_long_names_are_cut_for_display() -> None:
    shown = printable(b"x" * 5000)
    assert len(shown) == 120 and shown.endswith("...")


def test_a_workspace_without_git() -> None:
    seen = parse(stream("git", "no", "tree", f"worktree {A}", "files", "7", "2", "a", "b",
                        "embedded", "1", "1", "vendor/lib", "rescued", f"files {B}"))
    assert not seen.git
    assert seen.paths["files"] == Paths(7, ("a", "b"))
    assert seen.paths["embedded"] == Paths(1, ("vendor/lib",))
    assert seen.rescued == (("files", B),)


@pytest.mark.parametrize(("data", "message"), [
    (b"", "the answer is empty"),
    (b"paude-work\x001\x00git\x00yes", "does not end with a complete record"),
    (b"paude-work\x002\x00end\x00ok\x00", "version-1 header"),
    (b"hello\x00", "version-1 header"),
    (b"paude-work\x001\x00git\x00yes\x00", "ends early"),
    (stream("git", "yes") + b"more\0", "goes on after its end"),
    (stream("git", "perhaps"), "unknown workspace kind"),
    (stream("secret", "x"), "unknown record"),
    (stream("ref", "nothex 1 refs/heads/main"), "not an object id"),
    (stream("ref", f"{A} 1"), "fields, not 3"),
    (stream("ref", f"{A} many refs/heads/main"), "not a count"),
    (stream("ref", f"{A} -1 refs/heads/main"), "not a count"),
    (stream("ref", f"{A} 99999999999 refs/heads/main"), "not a count"),
    (stream("ref", f"{A} 1 HEAD"), "not a ref name"),
    (stream("ref", f"{A} 1 refs/heads/a:b"), "not a ref name"),
    (stream("ref", f"{A} 1 refs/heads/x y"), "not a ref name"),
    (stream("head", f"sideways {A} 0"), "unknown HEAD state"),
    (stream("stash", f"1 {A} 1"), "stash entries out of order"),
    (stream("tree", f"other {A}"), "unknown tree"),
    (stream("rescued", f"heads/main {A}"), "unknown rescued ref"),
    (stream("untracked", "1", "2", "a", "b"), "inconsistent counts"),
    (stream("untracked", "9", "6", *"abcdef"), "inconsistent counts"),
    (stream("untracked", "x", "0"), "not a count"),
    (stream("changed", "1", "1", "M"), "a status line has no path"),
    (stream("untracked", "3", "3", "a", "b"), "ends early"),
])
def test_garbage_is_an_error(data: bytes, message: str) -> None:
    with pytest.raises(WorkReportError) as exc:
        parse(data)
    assert message in exc.value.message


@pytest.mark.parametrize("text", ["zz", "0", "paude-work"])
def test_not_hex_is_an_error(text: str) -> None:
    with pytest.raises(WorkReportError, match="not hex"):
        decode(text)
