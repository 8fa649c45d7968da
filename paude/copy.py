"""`paude cp`: files between the host and a session's agent container, as tar streams
through the backend's exec (podman exec, or kubectl/oc exec on a cluster).

Copying out writes files the agent chose onto the host. The stream is untrusted: it is
unpacked with tarfile's `data` filter (no absolute or `../` names, no links leading out,
no devices, no set-id bits) into a fresh folder beside DEST, and only then moved into
place, so a refused stream leaves the host as it was. DEST itself is never reached
through a symbolic link inside the repository (a link the agent committed and the user
pulled), and an existing file is replaced only with --force."""

from __future__ import annotations

import io
import os
import posixpath
import re
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from paude import index, ownership, proc, tarsafe
from paude.backends import get_backend
from paude.backends.base import WORKSPACE, Backend
from paude.errors import CommandFailedError, PaudeError, SessionNotFoundError, UsageError
from paude.naming import check_session_name

# `NAME:path` or `:path`: a colon before any slash. `./a:b` and `/x:y` are host paths.
_REMOTE = re.compile(r"^([^/:]*):(.*)$", re.S)

# Run in the agent: what DEST names there (see _probe).
_PROBE = ('if [ -d "$1" ]; then echo dir; if [ -e "$1/$2" ] || [ -L "$1/$2" ]; then '
          'echo taken; fi; '
          'elif [ -e "$1" ] || [ -L "$1" ]; then echo file; '
          'elif [ -d "$(dirname -- "$1")" ]; then echo new; else echo missing; fi')


@dataclass(frozen=True)
class Endpoint:
    """One side of a copy: a host path, or a path in a session (session None: the
    current one, resolved later)."""

    path: str
    remote: bool = False
    session: str | None = None

    def describe(self, session: str | None = None) -> str:
        """How the endpoint is shown in messages."""
        return f"{session or self.session or ''}:{self.path}" if self.remote else self.path


@dataclass(frozen=True)
class CopyResult:
    """What `paude cp` copied."""

    session: str
    direction: str  # "in" (host to session) or "out" (session to host)
    source: str
    target: str  # where it landed (a host path, or a path in the container)
    files: int  # regular files in the stream
    bytes: int
    skipped_venvs: tuple[str, ...] = ()  # the host's virtual environments, left out


def parse(spec: str) -> Endpoint:
    """A command-line SRC or DEST: `NAME:path`, `:path` (the current session) or a host
    path."""
    if not spec:
        raise UsageError("an empty path was given", hint="give a host path, NAME:path or :path")
    match = _REMOTE.match(spec)
    if match is None:
        return Endpoint(spec)
    name: str | None = match.group(1) or None
    path = match.group(2)
    if name is not None:
        name = check_session_name(name)
    if not path:
        raise UsageError(f"{spec!r} names no path in the session",
                         hint=f"add a path after the colon ({spec}. for the workspace)")
    return Endpoint(path, remote=True, session=name)


def plan_endpoints(source: str, dest: str) -> tuple[Endpoint, Endpoint]:
    """Both sides parsed; exactly one must be in a session (checked before anything runs)."""
    src, dst = parse(source), parse(dest)
    if src.remote and dst.remote:
        raise UsageError(f"both {source} and {dest} are in sessions",
                         hint="give a host path on one side: paude cp copies between the "
                              "host and one session")
    if not src.remote and not dst.remote:
        raise UsageError(f"neither {source} nor {dest} names a session",
                         hint="add NAME: (or : for the current session) before the "
                              "session's side, e.g. `paude cp notes.md :docs/`; a host path "
                              "with a colon is written ./a:b")
    return src, dst


def container_path(path: str) -> str:
    """A session-side path: relative paths are under the workspace."""
    return posixpath.normpath(posixpath.join(WORKSPACE, path))


def copy(source: Endpoint, dest: Endpoint, session: str, *, force: bool = False,
         cwd: Path | None = None) -> CopyResult:
    """Copy between the host and the session's running agent container."""
    backend = _running(session, cwd)
    # A DEST ending in / (or naming . or ..) is a folder to copy into, as for cp: it must
    # exist, rather than become a file of that name.
    into = dest.path.endswith("/") or posixpath.basename(dest.path) in (".", "..")
    if source.remote:
        return _copy_out(backend, session, container_path(source.path), dest.path,
                         force=force, cwd=cwd, into=into)
    return _copy_in(backend, session, Path(source.path), container_path(dest.path),
                    force=force, into=into, cwd=cwd)


def _running(session: str, cwd: Path | None) -> Backend:
    entry = index.read(session)
    if entry is None:
        raise SessionNotFoundError(f"session {session} is not applied on this machine",
                                   hint="`paude list` shows the sessions; create one with "
                                        f"`paude create {session}`")
    backend = get_backend(entry.backend, session)
    ownership.require(session, cwd=cwd, backend=backend)
    if not backend.status(session=session).agent_running:
        raise PaudeError(f"session {session} is not running",
                         hint=f"start it with `paude start {session} --no-attach`, then copy")
    return backend


# -- host to session ---------------------------------------------------------------------

def _copy_in(backend: Backend, session: str, source: Path, dest: str, *,
             force: bool, into: bool = False, cwd: Path | None = None) -> CopyResult:
    if not source.exists() and not source.is_symlink():
        raise PaudeError(f"{source}: no such file or folder on the host",
                         hint="check the path (relative paths start in the current folder)")
    # SRC itself may be a link (it goes in as a link), but not a folder on its way to it.
    _refuse_links(source, cwd, itself=False, role="read")
    name = source.name or source.resolve().name
    kind, taken = _probe(backend, session, dest, name)
    if kind == "missing" or (into and kind != "dir"):
        where = dest if into else posixpath.dirname(dest)
        raise PaudeError(f"{session}:{where} is not a folder in the session",
                         hint="copy into an existing folder, or create it in the session first")
    if kind == "dir":
        folder, target_name = dest, name
    else:
        folder, target_name = posixpath.dirname(dest), posixpath.basename(dest)
        taken = kind == "file"
    target = posixpath.join(folder, target_name)
    if taken and not force:
        raise PaudeError(f"{session}:{target} exists in the session",
                         hint="add --force to replace it, or choose another DEST")
    # Links are archived as links, never followed: a link in the repository (the agent may
    # have committed it) must not carry a host file such as ~/.ssh/id_ed25519 into the
    # sandbox.
    buffer = io.BytesIO()
    files = size = 0
    skipped: list[str] = []
    try:
        with tarfile.open(fileobj=buffer, mode="w") as archive:
            for path, arcname in _walk(source, target_name, skipped):
                info = archive.gettarinfo(str(path), arcname)
                if info is None:  # a socket: nothing to copy
                    continue
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if info.isreg():
                    files, size = files + 1, size + info.size
                    with path.open("rb") as handle:
                        archive.addfile(info, handle)
                elif info.isdir() or info.issym():
                    archive.addfile(info)
    except OSError as exc:
        raise PaudeError(f"cannot read {exc.filename or source}: {exc.strerror}; nothing was "
                         "copied") from None
    argv = backend.exec_argv(session=session, argv=[
        "tar", "-x", "--no-same-owner", "-f", "-", "-C", folder],
        stdin=True)
    try:
        proc.run_bytes(argv, input=buffer.getvalue())
    except CommandFailedError as exc:
        raise PaudeError(f"copying into {session}:{target} failed: "
                         f"{_last_line(exc.stderr)}",
                         hint="check that the agent's user may write there") from None
    return CopyResult(session, "in", str(source), target, files, size, tuple(skipped))


def is_venv(path: Path) -> bool:
    """A Python virtual environment (the marker `python -m venv` and virtualenv write)."""
    return path.is_dir() and not path.is_symlink() and (path / "pyvenv.cfg").is_file()


def _walk(source: Path, arcname: str, skipped: list[str]) -> list[tuple[Path, str]]:
    """Every entry under source (itself first), without following links, and without the
    host's virtual environments (their names go to `skipped`): the session makes its own
    (`venv:`), and a host venv's interpreter links and paths are this machine's."""
    if is_venv(source):
        raise PaudeError(f"{source} is a Python virtual environment of this machine: paude "
                         "does not copy one into a session", hint="set `venv: auto` (or a list "
                         "of folders) in paude.yaml: the session creates its own")
    found = [(source, arcname)]
    if source.is_dir() and not source.is_symlink():
        for root, dirs, names in os.walk(source, followlinks=False):
            rel = Path(root).relative_to(source)
            venvs = {d for d in dirs if is_venv(Path(root) / d)}
            skipped += [posixpath.join(*rel.parts, d) for d in sorted(venvs)]
            dirs[:] = sorted(d for d in dirs if d not in venvs)
            for entry in dirs + sorted(names):
                found.append((Path(root) / entry, posixpath.join(arcname, *rel.parts, entry)))
    return found


def _probe(backend: Backend, session: str, dest: str, name: str) -> tuple[str, bool]:
    result = proc.run(backend.exec_argv(session=session, argv=["sh", "-c", _PROBE, "sh",
                                                               dest, name]))
    words = result.stdout.split()
    return (words[0] if words else "missing"), "taken" in words


# -- session to host ---------------------------------------------------------------------

def _copy_out(backend: Backend, session: str, source: str, dest: str, *, force: bool,
              cwd: Path | None, into: bool = False) -> CopyResult:
    if source == "/":
        raise UsageError(f"{session}:/ is the container's whole file system",
                         hint="copy a folder inside it, e.g. :. for the workspace")
    folder, name = posixpath.split(source)
    dest_path = Path(dest)
    _refuse_links(dest_path, cwd)
    if dest_path.is_dir():
        parent, target = dest_path, dest_path / name
    elif into:
        raise PaudeError(f"{dest} is not a folder on the host",
                         hint="create it first, or give a file name to copy to")
    else:
        parent, target = dest_path.parent, dest_path
        if not parent.is_dir():
            raise PaudeError(f"{dest}: the folder {parent} does not exist on the host",
                             hint="create it first, or copy into an existing folder")
    if target.is_symlink() or target.exists():
        if target.is_dir() and not target.is_symlink():
            raise PaudeError(f"{target} is an existing folder on the host",
                             hint="paude cp does not merge into folders: copy into an empty "
                                  "place, or remove it first")
        if not force:
            raise PaudeError(f"{target} exists on the host",
                             hint="add --force to replace it, or choose another DEST")
    argv = backend.exec_argv(session=session, argv=["tar", "-c", "-f", "-", "-C",
                                                    folder or "/", "--", name])
    try:
        stream = proc.run_bytes(argv)
    except CommandFailedError as exc:
        if "No such file" in exc.stderr or "Cannot stat" in exc.stderr:
            raise PaudeError(f"{session}:{source}: no such file or folder in the session",
                             hint="paths in the session are relative to "
                                  f"{WORKSPACE} unless absolute") from None
        raise PaudeError(f"reading {session}:{source} failed: {_last_line(exc.stderr)}") \
            from None
    files, size = _unpack(stream, parent, name, target, session)
    return CopyResult(session, "out", source, str(target), files, size)


def _unpack(stream: bytes, parent: Path, name: str, target: Path,
            session: str) -> tuple[int, int]:
    """Unpack into a private folder beside the target, then move the one top entry into
    place: a refused member leaves nothing behind."""
    staging = Path(tempfile.mkdtemp(prefix=".paude-cp-", dir=parent))
    try:
        files = size = 0
        try:
            with tarfile.open(fileobj=io.BytesIO(stream), mode="r:") as archive:
                for member in archive:
                    first = member.name.split("/", 1)[0]
                    if first != name:
                        raise PaudeError(f"the session's archive holds {member.name!r}, "
                                         f"outside {name}: nothing was copied")
                    if member.isreg():
                        files, size = files + 1, size + member.size
                    tarsafe.extract(archive, member, staging)
        except tarsafe.FilterError as exc:
            raise PaudeError(f"refused to copy from session {session}: {exc}; nothing was "
                             "copied",
                             hint="a link in the session points outside what was copied, or "
                                  "a name leads out of DEST; copy the file it points to "
                                  "instead") from None
        except tarfile.TarError as exc:
            raise PaudeError(f"the session's archive is unreadable ({exc}): nothing was "
                             "copied") from None
        _links_inside(staging / name, session)
        try:
            os.replace(staging / name, target)
        except OSError as exc:
            raise PaudeError(f"cannot put the copy at {target}: {exc.strerror}; nothing was "
                             "copied", hint="choose another DEST") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return files, size


def _links_inside(top: Path, session: str) -> None:
    """Every link in the copy leads into the copy. The data filter only keeps links inside
    the private folder, whose parent becomes DEST's: `report.txt -> .bashrc` at the top, or
    `a -> .` with `b -> a/..`, would point at the user's files once moved into place."""
    root = os.path.realpath(top)
    escaping = [top] if top.is_symlink() else []
    for folder, dirs, files in os.walk(top):
        for entry in (*dirs, *files):
            path = Path(folder) / entry
            real = os.path.realpath(path)
            if path.is_symlink() and real != root and not real.startswith(root + os.sep):
                escaping.append(path)
    if escaping:
        shown = ", ".join(f"{p.relative_to(top.parent)} -> {os.readlink(p)}"
                          for p in escaping[:3])
        raise PaudeError(f"refused to copy from session {session}: {shown} leads outside "
                         "what was copied; nothing was copied",
                         hint="copy the file the link points to instead")


def _refuse_links(path: Path, cwd: Path | None, *, itself: bool = True,
                  role: str = "write") -> None:
    """`path` (when `itself`) and every folder on its way, inside the current repository,
    must not be a symbolic link: the agent's commits can plant one there (`docs ->
    ~/.ssh`), and the host would then write (DEST) or read (SRC) outside the repository.

    Each step is judged where it really is (its parent resolved), so a DEST or SRC given
    through a linked path to the repository (`~/src -> /data/src`) is still checked."""
    here = ownership.current_repository(cwd) or (cwd or Path.cwd()).resolve()
    full = Path(os.path.abspath(path if path.is_absolute() else (cwd or Path.cwd()) / path))
    steps = [full, *full.parents] if itself else list(full.parents)
    for step in steps:
        if step == step.parent:
            continue
        real = Path(os.path.realpath(step.parent)) / step.name
        if real != here and real.is_relative_to(here) and real.is_symlink():
            raise PaudeError(f"{step} is a symbolic link (to {os.readlink(real)}): paude cp "
                             f"does not {role} through links in the repository",
                             hint="give the real path of the place to copy "
                                  + ("to" if role == "write" else "from"))


def _last_line(stderr: str) -> str:
    # tar ends with "Exiting with failure status"; the line naming the cause comes first.
    lines = [line for line in stderr.strip().splitlines()
             if "Exiting with failure" not in line and "not recoverable" not in line]
    return lines[0] if lines else (stderr.strip().splitlines() or ["no message"])[-1]
