"""Typed results the service layer returns and the CLI renders (text, JSON, markdown)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Order in which operations are listed; riskiest first within a plan.
OP_ORDER = ("delete", "replace", "create", "update", "same")


def count_ops(changes: tuple[ResourceChange, ...]) -> dict[str, int]:
    """Number of resources per operation, every operation present."""
    out = dict.fromkeys(OP_ORDER, 0)
    for change in changes:
        out[change.op] = out.get(change.op, 0) + 1
    return out


@dataclass(frozen=True)
class ResourceChange:
    """One resource's planned or applied step."""

    name: str  # logical name in the stack: agent, proxy, workspace, ...
    type: str  # short type, e.g. podman:Container
    op: str  # create | update | replace | delete | same
    diff_keys: tuple[str, ...] = ()
    replace_keys: tuple[str, ...] = ()
    retained: bool = False  # deleted from the stack but kept on the machine
    old_inputs: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    new_inputs: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The stable JSON form (see docs/plan-json.md)."""
        return {"resource": self.name, "type": self.type, "action": self.op,
                "changed": list(self.diff_keys), "replace_because": list(self.replace_keys),
                "retained": self.retained}


@dataclass(frozen=True)
class SummaryItem:
    """A session-level statement about a plan, e.g. 'egress widened'."""

    kind: str  # new-session | image-rebuilt | egress-widened | egress-narrowed | ...
    text: str
    security: bool = False
    data_loss: bool = False
    details: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The stable JSON form."""
        return {"kind": self.kind, "text": self.text, "security_relevant": self.security,
                "data_loss": self.data_loss, "details": list(self.details)}


@dataclass(frozen=True)
class PolicyFinding:
    """One policy violation the engine reported: which rule, on what, and how to fix it."""

    rule: str
    level: str  # mandatory | advisory
    resource: str  # logical resource name, or "" for the whole session
    message: str
    fix: str = ""
    # Plans against a base commit: True when the base side did not have this finding.
    new: bool | None = None

    @property
    def blocking(self) -> bool:
        """Mandatory findings stop the plan and any apply."""
        return self.level == "mandatory"

    def to_json(self) -> dict[str, Any]:
        """The stable JSON form."""
        out: dict[str, Any] = {"rule": self.rule, "level": self.level,
                               "resource": self.resource, "message": self.message,
                               "fix": self.fix}
        if self.new is not None:
            out["new"] = self.new
        return out


@dataclass(frozen=True)
class DefinitionCommit:
    """A commit that changed a definition file and arrived from a session."""

    sha: str
    short: str
    subject: str  # printable, shortened: the agent writes it
    author: str
    source: str  # the session remote (paude-NAME) or rescue ref it is reachable from

    def to_json(self) -> dict[str, Any]:
        """The stable JSON form."""
        return {"sha": self.sha, "short": self.short, "subject": self.subject,
                "author": self.author, "source": self.source}


@dataclass(frozen=True)
class DefinitionChange:
    """A file of the session's definition that differs from what the last apply used."""

    file: str  # relative to the repository (the folder of paude.yaml)
    change: str  # added | modified | removed | unrecorded (no earlier apply recorded it)
    commits: tuple[DefinitionCommit, ...] = ()  # the session commits that touched it
    from_session: bool = False

    def to_json(self) -> dict[str, Any]:
        """The stable JSON form (see docs/plan-json.md)."""
        return {"file": self.file, "change": self.change, "from_session": self.from_session,
                "commits": [c.to_json() for c in self.commits]}


@dataclass(frozen=True)
class BaseCommit:
    """The commit a pull-request plan compares with: what was asked for and what it named."""

    ref: str
    commit: str

    @property
    def label(self) -> str:
        """How plans and errors name the side: `base origin/main (1a2b3c4d)`."""
        return f"base {self.ref} ({self.commit[:8]})"

    def to_json(self) -> dict[str, str]:
        """The stable JSON form."""
        return {"ref": self.ref, "commit": self.commit}


@dataclass(frozen=True)
class PlanResult:
    """What `paude plan` found: the summary and every resource step."""

    session: str
    backend: str
    changes: tuple[ResourceChange, ...]
    summary: tuple[SummaryItem, ...] = ()
    new_session: bool = False
    warnings: tuple[str, ...] = ()
    policy: tuple[PolicyFinding, ...] = ()
    # Not resources: a plan with only these has no changes for --detailed-exitcode.
    definition_changes: tuple[DefinitionChange, ...] = ()
    # A plan against a base commit (paude plan --base): which one, and whether the working
    # tree dropped the session.
    base: BaseCommit | None = None
    removed_session: bool = False

    @property
    def blocked(self) -> bool:
        """True when a mandatory policy rule forbids applying this plan."""
        return any(f.blocking for f in self.policy)

    @property
    def has_changes(self) -> bool:
        """True when applying would change anything."""
        return any(c.op != "same" for c in self.changes)

    def counts(self) -> dict[str, int]:
        """Number of resources per operation."""
        return count_ops(self.changes)


@dataclass(frozen=True)
class ApplyResult:
    """What `paude apply` did."""

    session: str
    changes: tuple[ResourceChange, ...]
    outputs: dict[str, Any]
    seconds: float
    summary: tuple[SummaryItem, ...] = ()
    policy: tuple[PolicyFinding, ...] = ()

    def counts(self) -> dict[str, int]:
        """Number of resources per operation."""
        return count_ops(self.changes)


@dataclass(frozen=True)
class DestroyResult:
    """What `paude destroy` removed and kept."""

    session: str
    deleted: tuple[str, ...]
    kept: tuple[str, ...]
    data_deleted: bool
    seconds: float


@dataclass(frozen=True)
class ProgressEvent:
    """A resource step starting or finishing while the engine runs."""

    resource: str
    op: str
    phase: str  # start | done | failed
    seconds: float | None = None
    message: str | None = None
