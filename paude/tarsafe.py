"""Extracting a tar archive an agent made, as Python's `data` extraction filter does.

The filter (PEP 706) arrived in Python 3.11.4; Debian bookworm's python3 is 3.11.2, where
`extract(..., filter="data")` is a TypeError. There the same rules are applied here, before
tarfile writes anything: leading slashes stripped, nothing outside the destination, no links
pointing outside it or at absolute paths, no device files or pipes; no set-id or sticky
bits, no group or other write, and the archive's owners are not applied (paude may run as
root, and an agent's uid is nobody's on the host)."""

from __future__ import annotations

import copy
import os
import stat
import tarfile
from pathlib import Path


class _Refused(tarfile.TarError):
    """A member the data filter refuses (tarfile.FilterError where Python has it)."""


FilterError: type[tarfile.TarError] = getattr(tarfile, "FilterError", _Refused)
_NATIVE = hasattr(tarfile, "data_filter")


def extract(archive: tarfile.TarFile, member: tarfile.TarInfo, dest: Path) -> None:
    """Extract one member into `dest` under the data filter's rules; FilterError if refused."""
    if _NATIVE:
        archive.extract(member, dest, filter="data")
        return
    archive.extract(checked(member, dest), dest)


def checked(member: tarfile.TarInfo, dest: Path) -> tarfile.TarInfo:
    """The member as the data filter would extract it, or FilterError."""
    root = os.path.realpath(dest)
    name = member.name.lstrip("/")  # as Python's filter: "/a" lands at DEST/a
    if os.path.isabs(name):
        raise FilterError(f"member {name!r} has an absolute path")
    if not _inside(root, os.path.join(root, name)):
        raise FilterError(f"{name!r} would be extracted outside the destination")
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        raise FilterError(f"{name!r} is a special file")
    if member.issym() or member.islnk():
        link = member.linkname
        if os.path.isabs(link):
            raise FilterError(f"{name!r} is a link to an absolute path")
        # A symlink resolves beside itself, a hard link names a member of the archive.
        base = os.path.dirname(os.path.join(root, name)) if member.issym() else root
        if not _inside(root, os.path.join(base, link)):
            raise FilterError(f"{name!r} would link to {link!r}, which is outside the "
                              "destination")
    safe = copy.copy(member)
    safe.name = name
    mode = member.mode & ~(stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX) & ~0o022
    if member.isreg() or member.islnk():
        mode |= stat.S_IRUSR | stat.S_IWUSR
        if not mode & stat.S_IXUSR:
            mode &= ~(stat.S_IXGRP | stat.S_IXOTH)
    elif member.isdir():
        mode |= stat.S_IRWXU  # later members go into it
    safe.mode = mode
    # -1 leaves the owner as extraction made it (os.chown's "no change").
    safe.uid = safe.gid = -1
    safe.uname = safe.gname = ""
    return safe


def _inside(root: str, path: str) -> bool:
    resolved = os.path.realpath(path)
    return os.path.commonpath([root, resolved]) == root
