"""`paude cp` on real podman: both directions, and what a hostile agent can put in the
stream it hands back (links out of DEST, `../` names, a link and then a file through
it, a tar of its own making). Every refusal is paired with a copy that goes through."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.helpers import Paude, podman

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

# Stands in for the container's tar on a compromised agent: whatever paude asks for, it
# writes the archive /tmp/evil-kind names (built by python3's tarfile, so the names are exact).
FAKE_TAR = r'''#!/usr/bin/python3
import io, sys, tarfile
kind = open("/tmp/evil-kind").read().strip()
out = io.BytesIO()
with tarfile.open(fileobj=out, mode="w") as tar:
    def add(name, data=b"owned\n", link=None):
        info = tarfile.TarInfo(name)
        if link is not None:
            info.type, info.linkname = tarfile.SYMTYPE, link
            tar.addfile(info)
        else:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    if kind == "dotdot":
        add("x/../../escaped.txt")
    elif kind == "absolute":
        add("/tmp/paude-cp-absolute.txt")
    elif kind == "link-then-file":
        dirinfo = tarfile.TarInfo("x"); dirinfo.type = tarfile.DIRTYPE; tar.addfile(dirinfo)
        add("x/hop", link="/HOSTDIR")
        add("x/hop/planted.txt")
    elif kind == "other-name":
        add("not-what-you-asked.txt")
sys.stdout.buffer.write(out.getvalue())
'''


def in_agent(paude: Paude, script: str, *, user: str | None = None) -> str:
    args = ["exec", *(["--user", user] if user else []), f"paude-{paude.session}-agent",
            "sh", "-c", script]
    return podman(*args).stdout


def refused(paude: Paude, *args: str, says: str) -> None:
    result = paude.run("cp", *args)
    assert result.returncode == 1, result.stdout + result.stderr
    assert says in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".paude-cp-"))


def test_copy_in_and_out_and_what_a_hostile_agent_cannot_make_it_write(
        paude: Paude, tmp_path: Path) -> None:
    paude.ok("apply", paude.session, "--yes")
    repo, name = paude.repo, paude.session

    # host -> session, by name and as the current session; a folder; relative to /workspace.
    (repo / "notes.md").write_text("from the host\n")
    (repo / "data").mkdir()
    (repo / "data" / "a.txt").write_text("a\n")
    (repo / "data" / "sub").mkdir()
    (repo / "data" / "sub" / "b.txt").write_text("b\n")
    in_agent(paude, "mkdir -p /workspace/docs")
    paude.ok("cp", "notes.md", f"{name}:docs/")
    paude.ok("cp", "data", ":incoming")
    assert in_agent(paude, "cat /workspace/docs/notes.md /workspace/incoming/sub/b.txt") \
        == "from the host\nb\n"
    # A link in the repository goes in as a link: the host file it names stays out.
    secret = tmp_path / "host-secret"
    secret.write_text("host secret\n")
    (repo / "leak").symlink_to(secret)
    paude.ok("cp", "leak", ":leak")
    assert in_agent(paude, "readlink /workspace/leak; cat /workspace/leak 2>&1 || true") \
        .startswith(f"{secret}\n")
    assert "host secret" not in in_agent(paude, "cat /workspace/leak 2>/dev/null || true")
    # SRC through a folder the agent linked out of the repository (`conf -> ~`): refused,
    # and the host file never enters the session.
    (repo / "conf").symlink_to(tmp_path)
    refused(paude, "conf/host-secret", ":stolen", says="does not read through links")
    assert in_agent(paude, "test -e /workspace/stolen && echo there || echo gone") == "gone\n"
    # Control: the same file, named by its own path, is the user's choice and is copied.
    paude.ok("cp", str(secret), ":stolen")
    assert in_agent(paude, "cat /workspace/stolen") == "host secret\n"
    refused(paude, "notes.md", ":docs/notes.md", says="exists in the session")
    paude.ok("cp", "notes.md", ":docs/notes.md", "--force")

    # session -> host: a file, a folder; existing files need --force.
    in_agent(paude, "printf 'agent work\\n' > /workspace/out.txt; mkdir -p /workspace/outdir/"
                    "deep; printf 'deep\\n' > /workspace/outdir/deep/d.txt; "
                    "ln -s deep/d.txt /workspace/outdir/inside-link")
    got = tmp_path / "got"
    got.mkdir()
    paude.ok("cp", ":out.txt", str(got / "out.txt"))
    paude.ok("cp", f"{name}:outdir", str(got))
    assert (got / "out.txt").read_text() == "agent work\n"
    assert (got / "outdir" / "deep" / "d.txt").read_text() == "deep\n"
    assert (got / "outdir" / "inside-link").read_text() == "deep\n"  # a link within: kept
    (got / "out.txt").write_text("mine\n")
    refused(paude, ":out.txt", str(got / "out.txt"), says="exists on the host")
    assert (got / "out.txt").read_text() == "mine\n"
    paude.ok("cp", ":out.txt", str(got / "out.txt"), "--force")
    assert (got / "out.txt").read_text() == "agent work\n"
    refused(paude, ":outdir", str(got), says="existing folder on the host")
    refused(paude, ":no-such-file", str(got / "x"), says="no such file or folder in the session")
    assert not (got / "x").exists()

    # Links in the container that point at /etc, or at a host path: refused, nothing written.
    target = tmp_path / "host-target"
    target.write_text("untouched\n")
    in_agent(paude, f"ln -s /etc /workspace/etc-link; ln -s {target} /workspace/host-link; "
                    "mkdir -p /workspace/bad; ln -s /etc/passwd /workspace/bad/passwd")
    out = tmp_path / "out"
    out.mkdir()
    for source in (":etc-link", ":host-link", ":bad"):
        refused(paude, source, str(out), says="link to an absolute path")
        assert sorted(out.iterdir()) == [] and target.read_text() == "untouched\n"
    # Relative links that stay inside the unpacking folder but not inside the copy: once in
    # place they would point at the user's files beside DEST.
    in_agent(paude, "ln -s .bashrc /workspace/sibling-link; mkdir -p /workspace/loop; "
                    "ln -s . /workspace/loop/q; ln -s q/.. /workspace/loop/p")
    (out / ".bashrc").write_text("the user's\n")
    for source in (":sibling-link", ":loop"):
        refused(paude, source, str(out), says="leads outside what was copied")
        assert sorted(p.name for p in out.iterdir()) == [".bashrc"]
    (out / ".bashrc").unlink()
    paude.ok("cp", ":out.txt", str(out))  # control: the same DEST takes a plain file
    assert (out / "out.txt").read_text() == "agent work\n"

    # DEST through a link in the repository (one the agent could have committed): refused.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (repo / "docs").symlink_to(elsewhere)
    refused(paude, ":out.txt", "docs/", says="symbolic link")
    refused(paude, ":out.txt", "docs/new.txt", says="symbolic link")
    assert list(elsewhere.iterdir()) == []
    (repo / "real").mkdir()
    paude.ok("cp", ":out.txt", "real/")  # control: a real folder in the repository
    assert (repo / "real" / "out.txt").read_text() == "agent work\n"

    # The agent replaces tar: crafted archives are refused as a whole.
    fake = tmp_path / "tar"
    fake.write_text(FAKE_TAR.replace("/HOSTDIR", str(tmp_path / "hostdir")))
    fake.chmod(0o755)
    (tmp_path / "hostdir").mkdir()
    podman("cp", str(fake), f"paude-{name}-agent:/usr/local/bin/tar")
    land = tmp_path / "land"
    land.mkdir()
    for kind, says in (("dotdot", "outside the destination"), ("absolute", "outside x"),
                       ("link-then-file", "link to an absolute path"),
                       ("other-name", "outside x")):
        in_agent(paude, f"echo {kind} > /tmp/evil-kind")
        refused(paude, ":x", str(land), says=says)
        assert sorted(land.iterdir()) == [] and leftovers(land) == []
        assert not (tmp_path / "escaped.txt").exists()
        assert list((tmp_path / "hostdir").iterdir()) == []
        assert not Path("/tmp/paude-cp-absolute.txt").exists()
    podman("exec", "--user", "root", f"paude-{name}-agent", "rm", "/usr/local/bin/tar")
    paude.ok("cp", ":out.txt", str(land))  # control: the real tar again, the same DEST
    assert (land / "out.txt").read_text() == "agent work\n"
