"""`git-remote-paude`: git's remote helper for `paude::NAME` URLs (see gitremote-helpers(7)).

git runs `git-remote-paude REMOTE NAME`. The helper offers one capability, `connect`,
and on `connect git-upload-pack|git-receive-pack` replaces itself with the backend's exec
of that service in the session's workspace, so the pack data flows straight between
git and the container. Unlike an `ext::` remote it needs no `protocol.ext.allow`, and it
changes no git configuration.

`paude::NAME/rescue` serves, for fetching only, the repository `paude rescue` makes inside
the container from a workspace that is not a git repository (gitsync.RESCUE_REPO).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from paude import proc
from paude.backends import get_backend
from paude.backends.base import WORKSPACE
from paude.errors import PaudeError
from paude.fields import validate_session_name  # light import; the same as paude.models'
from paude.gitsync import RESCUE_AREA, RESCUE_REPO, session_backend

SERVICES = ("git-upload-pack", "git-receive-pack")
EXIT_FATAL = 128  # what git itself exits with on fatal errors
_MAX_LINE = 4096


class HelperError(Exception):
    """A request the helper refuses; git shows the message and gives up."""


def read_line(fd: int) -> str | None:
    """One command line from git, without its newline; None at end of input.

    Reads a byte at a time: after `connect` the rest of the input is pack data that
    belongs to the process this one becomes, so nothing past the newline may be read."""
    line = bytearray()
    while True:
        byte = os.read(fd, 1)
        if not byte:
            return line.decode("utf-8", "replace") if line else None
        if byte == b"\n":
            return line.decode("utf-8", "replace")
        line += byte
        if len(line) > _MAX_LINE:
            raise HelperError("command line from git is too long")


def serve(session: str, *, stdin_fd: int = 0, stdout_fd: int = 1, rescue: bool = False) -> int:
    """Answer git's commands until it is done, or become the requested git service."""
    backend = get_backend(session_backend(session), session)
    while True:
        line = read_line(stdin_fd)
        if not line:  # an empty line or end of input: git has nothing more to ask
            return 0
        if line == "capabilities":
            os.write(stdout_fd, b"connect\n\n")
            continue
        command, _, service = line.partition(" ")
        if command != "connect":
            raise HelperError(f"unsupported command {line!r}: this helper only connects")
        if service not in SERVICES:
            raise HelperError(f"unsupported service {service!r}: use {' or '.join(SERVICES)}")
        if rescue and service != "git-upload-pack":
            raise HelperError(f"paude::{session}/{RESCUE_AREA} is only for fetching")
        protocol = os.environ.get("GIT_PROTOCOL")
        where = RESCUE_REPO if rescue else WORKSPACE
        argv = backend.exec_argv(session=session, argv=[service, where], stdin=True,
                                 env={"GIT_PROTOCOL": protocol} if protocol else None)
        os.write(stdout_fd, b"\n")  # ready: from here on the streams belong to the service
        proc.exec_replace(argv)


def main(argv: Sequence[str] | None = None, *, stdin_fd: int = 0, stdout_fd: int = 1) -> int:
    """Entry point of `git-remote-paude REMOTE NAME`; exits 128 on any refusal, like git."""
    if os.environ.get("PAUDE_DEBUG") == "1":
        logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if len(args) != 2:
            raise HelperError("usage: git-remote-paude REMOTE SESSION[/rescue] (git runs it "
                              "for paude::SESSION remote URLs)")
        name, slash, area = args[1].partition("/")
        rescue = bool(slash) and area == RESCUE_AREA
        try:
            session = validate_session_name(name if rescue else args[1])
        except ValueError as exc:
            raise HelperError(f"remote URL paude::{args[1]}: {exc}") from None
        return serve(session, stdin_fd=stdin_fd, stdout_fd=stdout_fd, rescue=rescue)
    except HelperError as exc:
        _fail(str(exc))
    except PaudeError as exc:
        _fail(exc.render())
    return EXIT_FATAL


def _fail(message: str) -> None:
    sys.stderr.write(f"paude: {message}\n")
    sys.stderr.flush()
