"""The error hierarchy: every failure a user can act on is a PaudeError with a fix."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class PaudeError(Exception):
    """Base of all errors paude reports to users; the CLI prints them and exits."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        """The text shown to the user: what is wrong, then what to do."""
        if self.hint:
            return f"{self.message}\n  fix: {self.hint}"
        return self.message


@dataclass(frozen=True)
class ConfigProblem:
    """One validation problem: where (a dotted field path, maybe a line) and what."""

    path: str
    message: str
    line: int | None = None


class ConfigError(PaudeError):
    """paude.yaml (or paude.json / devcontainer.json) is invalid."""

    def __init__(self, file: str, problems: Sequence[ConfigProblem], *, hint: str | None = None,
                 what: str = "session definition"):
        self.file = file
        self.problems = list(problems)
        self.what = what
        lines = [f"{file}: invalid {what}"]
        for p in self.problems[:15]:
            where = f"{file}:{p.line}" if p.line else file
            lines.append(f"  {where}: {p.path}: {p.message}")
        if len(self.problems) > 15:
            lines.append(f"  ... and {len(self.problems) - 15} more problems")
        super().__init__(
            "\n".join(lines),
            hint=hint or "edit the file and run the command again; docs/paude.schema.json "
            "lists every field",
        )


class SessionNotFoundError(PaudeError):
    """The named session is not defined or has no stack."""


class SessionBusyError(PaudeError):
    """Another paude (or pulumi) process is changing the same session."""


class OwnershipError(PaudeError):
    """The session's stack belongs to another repository."""


class UsageError(PaudeError):
    """The command line contradicts itself (flags that do not go together, a missing
    NAME); found before anything runs."""


class ToolNotFoundError(PaudeError):
    """A required executable (podman, git, pulumi) is missing."""


class CommandFailedError(PaudeError):
    """A subprocess exited non-zero."""

    def __init__(self, argv: Sequence[str], returncode: int, stderr: str, *,
                 hint: str | None = None) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        tail = stderr.strip().splitlines()[-5:]
        detail = ("\n    " + "\n    ".join(tail)) if tail else ""
        super().__init__(f"`{' '.join(self.argv[:4])}` failed with exit code {returncode}{detail}",
                         hint=hint)


class NamespaceRefusedError(PaudeError):
    """A cluster namespace's ResourceQuota or LimitRange refuses a session's objects."""


class EngineError(PaudeError):
    """The Pulumi engine failed; the message carries its diagnostics."""


class EngineMissingError(PaudeError):
    """No usable Pulumi CLI could be found or installed."""


class AbortedError(PaudeError):
    """The user declined a confirmation prompt."""

    exit_code = 1


class UnfetchedWorkError(PaudeError):
    """The agent has commits the host has not fetched; deleting would lose them."""


class PolicyViolationError(PaudeError):
    """A mandatory policy rule failed: nothing was (or will be) applied."""

    def __init__(self, session: str, findings: Sequence[Any], *, partial: Any = None) -> None:
        blocking = [f for f in findings if f.blocking]
        lines = [f"session {session} violates {len(blocking)} mandatory policy "
                 f"rule{'s' if len(blocking) != 1 else ''}; nothing was applied:"]
        for f in blocking:
            where = f"resource {f.resource}" if f.resource else "the session"
            lines.append(f"  [{f.rule}] {where}: {f.message}")
            if f.fix:
                lines.append(f"      fix: {f.fix}")
        super().__init__("\n".join(lines),
                         hint="change paude.yaml as each fix says; policy levels come from "
                              "paude-policy.yaml (see docs/policies.md)")
        self.session = session
        self.findings = tuple(findings)
        self.partial = partial  # the PlanResult up to the failure, for plan --all
