"""tarsafe: the data extraction filter's rules where Python lacks it (3.11 before 3.11.4,
Debian bookworm's python3), checked against Python's own filter where it has one."""

from __future__ import annotations

import io
import stat
import tarfile
from pathlib import Path

import pytest

from paude import tarsafe


def member(name: str, kind: bytes = tarfile.REGTYPE, *, link: str = "",
           mode: int = 0o644) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode, info.uid, info.gid = kind, link, mode, 1000, 1000
    info.uname = info.gname = "agent"
    return info


HOSTILE = [
    member("out/../../escape"),
    member("out/link", tarfile.SYMTYPE, link="/etc/passwd"),
    member("out/link", tarfile.SYMTYPE, link="../../../etc/passwd"),
    member("out/hard", tarfile.LNKTYPE, link="../outside"),
    member("out/dev", tarfile.CHRTYPE),
    member("out/fifo", tarfile.FIFOTYPE),
]
FINE = [
    member("out"),
    member("out/a.txt"),
    member("out/sub/link", tarfile.SYMTYPE, link="../a.txt"),
    member("out/hard", tarfile.LNKTYPE, link="out/a.txt"),
    member("out/dir", tarfile.DIRTYPE, mode=0o000),
    member("/out/b.txt"),  # lands at DEST/out/b.txt, as with Python's filter
]


@pytest.mark.parametrize("info", HOSTILE, ids=lambda m: f"{m.name}->{m.linkname}")
def test_hostile_members_are_refused(info: tarfile.TarInfo, tmp_path: Path) -> None:
    with pytest.raises(tarsafe.FilterError):
        tarsafe.checked(info, tmp_path)


@pytest.mark.parametrize("info", FINE, ids=lambda m: m.name)
def test_members_inside_are_kept(info: tarfile.TarInfo, tmp_path: Path) -> None:
    safe = tarsafe.checked(info, tmp_path)
    assert safe.name == info.name.lstrip("/") and safe.linkname == info.linkname
    assert (safe.uid, safe.gid, safe.uname, safe.gname) == (-1, -1, "", "")


@pytest.mark.skipif(not hasattr(tarfile, "data_filter"), reason="Python lacks the filter")
@pytest.mark.parametrize("info", HOSTILE + FINE, ids=lambda m: f"{m.name}->{m.linkname}")
def test_the_same_verdict_as_pythons_own_filter(info: tarfile.TarInfo, tmp_path: Path) -> None:
    native = tarfile.data_filter
    try:
        theirs = native(info, str(tmp_path))
    except tarfile.FilterError:  # type: ignore[attr-defined]
        theirs = None
    try:
        ours = tarsafe.checked(info, tmp_path)
    except tarsafe.FilterError:
        ours = None
    assert (ours is None) == (theirs is None)
    if ours is not None and theirs is not None:
        assert ours.name == theirs.name
        if info.isreg():
            assert stat.S_IMODE(ours.mode) == stat.S_IMODE(theirs.mode)


@pytest.mark.skipif(not hasattr(tarfile, "data_filter"), reason="Python lacks the filter")
@pytest.mark.parametrize("mode", [0o4755, 0o2777, 0o070, 0o111, 0o644, 0o700, 0o1777])
def test_the_same_file_modes_as_pythons_own_filter(mode: int, tmp_path: Path) -> None:
    native = tarfile.data_filter
    info = member("f", mode=mode)
    assert stat.S_IMODE(tarsafe.checked(info, tmp_path).mode) == stat.S_IMODE(
        native(info, str(tmp_path)).mode)


@pytest.mark.parametrize(("mode", "expected"), [
    (0o4755, 0o755),   # set-uid dropped
    (0o2777, 0o755),   # set-gid and group/other write dropped
    (0o070, 0o640),    # the owner can always read and write; no one else executes
    (0o111, 0o711),
])
def test_file_modes_are_made_safe(mode: int, expected: int, tmp_path: Path) -> None:
    assert stat.S_IMODE(tarsafe.checked(member("f", mode=mode), tmp_path).mode) == expected


def archive(*members: tuple[tarfile.TarInfo, bytes]) -> tarfile.TarFile:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as out:
        for info, body in members:
            info.size = len(body)
            out.addfile(info, io.BytesIO(body) if info.isreg() else None)
    data.seek(0)
    return tarfile.open(fileobj=data, mode="r:")


@pytest.mark.parametrize("native", [True, False])
def test_extract_with_and_without_pythons_filter(native: bool, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    if native and not hasattr(tarfile, "data_filter"):
        pytest.skip("Python lacks the filter")
    monkeypatch.setattr(tarsafe, "_NATIVE", native)
    tar = archive((member("out", tarfile.DIRTYPE, mode=0o755), b""),
                  (member("out/run.sh", mode=0o4755), b"echo hi\n"),
                  (member("out/link", tarfile.SYMTYPE, link="run.sh"), b""))
    for info in tar:
        tarsafe.extract(tar, info, tmp_path)
    script = tmp_path / "out" / "run.sh"
    assert script.read_text() == "echo hi\n"
    assert not script.stat().st_mode & stat.S_ISUID
    assert (tmp_path / "out" / "link").readlink() == Path("run.sh")
    hostile = archive((member("out/x", tarfile.SYMTYPE, link="/etc/shadow"), b""))
    with pytest.raises(tarsafe.FilterError):
        for info in hostile:
            tarsafe.extract(hostile, info, tmp_path)
    assert not (tmp_path / "out" / "x").is_symlink()
