"""The session's setup inside the agent container (paude-setup, templates/agent-setup.sh):
its state for `paude status`, its log, and running it again on request.

Everything read here was written in the container, where the agent can change it: values
are checked against what paude-setup writes, and log text loses its control characters
before it reaches a terminal."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from paude import index, ownership, proc
from paude.backends import get_backend
from paude.backends.base import Backend
from paude.errors import PaudeError, SessionNotFoundError

STATES = ("none", "pending", "running", "done", "failed")
LOG = "/paude/setup/log"
_LOG_BYTES = 16384
_MISSING = re.compile(r"paude-setup: (not found|No such file)|executable file .* not found|"
                      r"exec: \"?paude-setup", re.I)
# Keep newlines and tabs; every other control character (escape sequences) becomes '?'.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class SetupStatus:
    """Where the session's setup stands."""

    state: str  # none (nothing configured) | pending | running | done | failed | unknown
    exit_code: int | None = None
    changed: bool = False  # setup or venv changed since it last ran
    log: str = LOG
    detail: str = ""  # why the state is unknown
    tail: tuple[str, ...] = ()  # the log's last lines, when asked for

    @property
    def finished(self) -> bool:
        """The setup ran to its end (or there is none)."""
        return self.state in ("none", "done", "failed")

    def describe(self, session: str) -> str:
        """One line for `paude status` and `paude setup`."""
        if self.state == "unknown":
            return f"unknown ({self.detail})"
        if self.state == "none":
            return "none configured"
        words = {"pending": "pending (runs after the first push)", "running": "running",
                 "done": "done", "failed": f"FAILED (exit {self.exit_code})"}[self.state]
        note = (f"; setup or venv changed since: `paude setup {session} --rerun`"
                if self.changed else "")
        return f"{words}; log {self.log} (tmux window `setup`){note}"

    def to_json(self) -> dict[str, object]:
        """The JSON form (`paude status --json`'s setup, `paude setup --json`)."""
        return {"state": self.state, "exit_code": self.exit_code, "changed": self.changed,
                "log": self.log, "detail": self.detail or None, "tail": list(self.tail)}


def parse_state(text: str) -> SetupStatus:
    """paude-setup's `state` output; anything it would not write makes the state unknown."""
    values: dict[str, str] = {}
    for line in text.splitlines()[:8]:
        key, sep, value = line.partition("=")
        if sep:
            values[key] = value
    state = values.get("state", "")
    exit_text = values.get("exit", "")
    if state not in STATES or (exit_text and not re.fullmatch(r"-?\d{1,3}", exit_text)):
        return SetupStatus("unknown", detail="the session's setup state is unreadable")
    return SetupStatus(state, int(exit_text) if exit_text else None,
                       values.get("changed") == "yes")


def from_answer(code: int, text: str, session: str) -> SetupStatus:
    """The state from `paude-setup state`'s exit code and output (read by its own exec or
    within `paude status`'s work report)."""
    if code != 0:
        if _MISSING.search(text):
            return SetupStatus("unknown", detail="the session's image predates setup: "
                                                 f"`paude apply {session}` rebuilds it")
        return SetupStatus("unknown", detail="the agent container did not answer")
    return parse_state(text)


def clean(text: str) -> str:
    """Log text safe for a terminal."""
    return _CONTROL.sub("?", text.replace("\r\n", "\n"))


def _exec(backend: Backend, session: str, argv: list[str]) -> proc.CommandResult:
    result = proc.run(backend.exec_argv(session=session, argv=argv), check=False)
    if not result.ok:
        failure = proc.classify_failure(result)
        if isinstance(failure, SessionNotFoundError):
            raise failure
    return result


def state(backend: Backend, session: str, *, tail: int = 0) -> SetupStatus:
    """The setup's state, read in the running agent container; with `tail`, the log's last
    lines too."""
    result = _exec(backend, session, ["paude-setup", "state"])
    found = from_answer(result.returncode, result.stdout + result.stderr, session)
    if tail and found.state not in ("none", "unknown"):
        log = _exec(backend, session, ["tail", "-c", str(_LOG_BYTES), LOG])
        lines = clean(log.stdout).splitlines()[-tail:] if log.ok else []
        found = SetupStatus(found.state, found.exit_code, found.changed, found.log,
                            found.detail, tuple(lines))
    return found


def rerun(backend: Backend, session: str) -> None:
    """Start the setup again now, in the session's tmux window `setup`."""
    before = state(backend, session)
    if before.state == "unknown":
        raise PaudeError(f"cannot run the setup of session {session}: {before.detail}")
    if before.state == "none":
        raise PaudeError(f"session {session} has no setup or venv to run",
                         hint="set `setup:` (or `venv:`) in paude.yaml, then "
                              f"`paude apply {session}`")
    result = _exec(backend, session, ["paude-setup", "start"])
    if not result.ok:
        raise proc.classify_failure(result)


def wait(backend: Backend, session: str, *, timeout: float,
         clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep) -> SetupStatus:
    """Poll until the setup finished (or timeout seconds passed)."""
    deadline = clock() + timeout
    while True:
        found = state(backend, session)
        if found.finished or found.state == "unknown" or clock() >= deadline:
            return found
        sleep(0.5)


def running_backend(name: str, cwd: Path | None = None) -> Backend:
    """The applied session's backend, once the repository here owns it and its agent runs."""
    entry = index.read(name)
    if entry is None:
        raise SessionNotFoundError(f"session {name} is not applied on this machine",
                                   hint=f"create it with `paude create {name}` "
                                        f"(or `paude apply {name}`)")
    backend = get_backend(entry.backend, name)
    ownership.require(name, cwd=cwd, backend=backend)
    if not backend.status(session=name).agent_running:
        raise PaudeError(f"the agent container of session {name} is not running",
                         hint=f"start it with `paude start {name}`, then try again")
    return backend


def notice(name: str) -> str | None:
    """A line for `paude connect` while the setup runs, failed or changed (None otherwise,
    or when it cannot be told: connecting matters more)."""
    entry = index.read(name)
    if entry is None:
        return None
    try:
        found = state(get_backend(entry.backend, name), name)
    except PaudeError:
        return None
    if found.state == "running":
        return "the session's setup is running: its output is in tmux window `setup` (Ctrl+b n)"
    if found.state == "failed":
        return (f"the session's setup FAILED (exit {found.exit_code}): see tmux window `setup` "
                f"or `paude setup {name}`; `paude setup {name} --rerun` runs it again")
    if found.changed:
        return (f"setup or venv changed since the setup ran: `paude setup {name} --rerun` "
                "runs it again")
    return None
