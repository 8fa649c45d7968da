"""`paude status NAME --verify`: the sandbox tested from inside the agent, not trusted.

The checks run in the agent container as the agent's user (templates/agent-verify.py):
non-root, no capabilities, no route out, no resolver, the proxy answers, a name the
running proxy allows passes and a made-up one is refused. The allowed name comes from the
configuration the proxy runs with, so the test follows what is live, not what paude.yaml
says now. Nothing is sent beyond the session's own proxy except that one allowed CONNECT.

The checks run where the agent rules: an agent that has taken over its container can make
them print anything. --verify catches a sandbox broken from outside (a network added by
hand, a stopped proxy); the plan's drift check, which reads podman from the host, is what
an agent cannot fake. Its output is shown escaped, never raw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from paude import proc
from paude.backends.base import Backend
from paude.errors import PaudeError, SessionNotFoundError
from paude.policies.rules import egress_of
from paude.provenance import printable
from paude.render import template_source

SCRIPT = "agent-verify.py"
# A name under .invalid (RFC 2606) can never be a real host: the proxy must refuse it.
BLOCKED_NAME = "paude-verify-blocked.invalid"
CHECKS = ("non-root", "no capabilities", "no route out", "no resolver", "proxy answers",
          "allowed name passes", "blocked name refused")


@dataclass(frozen=True)
class Check:
    """One self-test result."""

    name: str
    ok: bool
    detail: str

    def to_json(self) -> dict[str, object]:
        """The stable JSON form."""
        return {"check": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class VerifyResult:
    """Every check, in order; a check the script never reached counts as failed."""

    session: str
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(c.ok for c in self.checks)

    def to_json(self) -> dict[str, object]:
        """`paude status NAME --verify --json`."""
        return {"session": self.session, "ok": self.ok,
                "checks": [c.to_json() for c in self.checks]}


def verify(backend: Backend, name: str) -> VerifyResult:
    """Run the self-test in the session's agent."""
    if not backend.status(session=name).agent_running:
        raise SessionNotFoundError(f"session {name} is not running: there is nothing to verify",
                                   hint=f"`paude start {name}`, then verify again")
    try:
        allowed, unread = allowed_name(backend.proxy_config(session=name)), None
    except PaudeError as exc:  # a stopped or broken proxy: the checks below say more
        allowed, unread = "", exc.message
    result = proc.run(backend.exec_argv(session=name, argv=[
        "python3", "-c", template_source(SCRIPT), allowed, BLOCKED_NAME]), check=False,
        timeout=120)
    if result.returncode == 127 or ("python3" in result.stderr and "not found" in result.stderr):
        raise PaudeError(f"session {name}: the agent image has no python3, which the "
                         "self-test runs with", hint="add python3 to image.packages")
    checks = parse(result.stdout, result.stderr)
    if unread is not None:
        checks = tuple(Check(c.name, False, f"the proxy's configuration could not be read: "
                                            f"{unread}") if c.name == "allowed name passes"
                       else c for c in checks)
    return VerifyResult(name, checks)


def allowed_name(conf: str) -> str:
    """An exact name the proxy allows ('' when it allows only suffixes or everything)."""
    egress = egress_of(conf)
    names = sorted(n for n in egress.names if not n.startswith("."))
    return "" if egress.unrestricted or not names else names[0]


def parse(stdout: str, stderr: str) -> tuple[Check, ...]:
    """The script's JSON lines; checks it did not report are failures, with its stderr."""
    found: dict[str, Check] = {}
    for line in stdout.splitlines():
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and data.get("check") in CHECKS:
            # What the agent's side prints is the agent's to write: no escape sequence of
            # it reaches the user's terminal.
            found[str(data["check"])] = Check(str(data["check"]), data.get("ok") is True,
                                              printable(str(data.get("detail", ""))))
    why = printable((stderr.strip().splitlines() or ["the self-test stopped before it"])[-1])
    return tuple(found.get(name) or Check(name, False, f"not run: {why}") for name in CHECKS)
