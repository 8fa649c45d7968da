"""`--openshift-context` and `--openshift-namespace` on the session commands.

On `create` they are written into the definition (sessions.NAME.openshift). Elsewhere
they cannot move a session for one run: its stack state and objects are in the
namespace it was applied to, and a command aimed at another one would plan the session
as new there, or act on a namesake. So they are a check: a session recorded (or, for
plan and apply, defined) elsewhere is refused before anything runs. `list` takes them as
a filter."""

from __future__ import annotations

import re
from dataclasses import dataclass

from paude import index
from paude.errors import ConfigError, ConfigProblem, PaudeError, UsageError

_DNS_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Placement:
    """Where the command line says the session is (None: not said)."""

    context: str | None = None
    namespace: str | None = None

    @property
    def given(self) -> bool:
        """True when either flag was given."""
        return self.context is not None or self.namespace is not None

    def flags(self) -> str:
        """The flags as given, for messages."""
        return " ".join(f"--openshift-{k} {v}" for k, v in (
            ("context", self.context), ("namespace", self.namespace)) if v is not None)


def parse(context: str | None, namespace: str | None) -> Placement:
    """The two flags, validated like paude.yaml's openshift.context and .namespace."""
    problems = []
    if namespace is not None and not _DNS_LABEL.match(namespace):
        problems.append(ConfigProblem("--openshift-namespace", f"{namespace!r} is not a "
                                      "namespace name: a DNS label of at most 63 characters"))
    if context is not None and (not context or _CONTROL.search(context)
                                or context.startswith("-") or context != context.strip()):
        problems.append(ConfigProblem("--openshift-context",
                                      f"{context!r} is not a valid context name"))
    if problems:
        raise ConfigError("command line", problems,
                          hint="give the kubeconfig context and namespace as `oc` shows them")
    return Placement(context, namespace)


def needs_name(where: Placement, name: str | None) -> None:
    """The flags check one session: without a NAME there is none to check."""
    if where.given and name is None:
        raise UsageError(f"{where.flags()} goes with a session NAME",
                         hint="add the session NAME, or leave out the --openshift-* flags")


def not_podman(where: Placement, backend: str | None) -> None:
    """`--backend podman` with an --openshift-* flag contradicts itself."""
    if where.given and backend == "podman":
        raise UsageError(f"--backend podman and {where.flags()} do not go together",
                         hint="give --backend openshift, or leave out the --openshift-* flags")


def require_recorded(name: str, where: Placement) -> None:
    """Refuse when the applied session is not where the flags say (a session not applied
    here is left to the command, which reports that itself)."""
    if not where.given:
        return
    entry = index.read(name)
    if entry is not None:
        _compare(name, where, entry.backend, entry.context, entry.namespace, "was applied")


def require_declared(name: str, where: Placement, backend: str, context: str | None,
                     namespace: str | None) -> None:
    """Refuse when paude.yaml puts the session elsewhere (plan, apply), or it was applied
    elsewhere."""
    if not where.given:
        return
    _compare(name, where, backend, context, namespace, "is defined in paude.yaml")
    require_recorded(name, where)


def matches(where: Placement, backend: str, context: str | None,
            namespace: str | None) -> bool:
    """For `list`: the session is where the flags say."""
    if not where.given:
        return True
    return backend == "openshift" and where.context in (None, context) \
        and where.namespace in (None, namespace)


def _compare(name: str, where: Placement, backend: str, context: str | None,
             namespace: str | None, how: str) -> None:
    if backend != "openshift":
        raise PaudeError(f"session {name} runs on {backend}: {where.flags()} is for "
                         "openshift sessions", hint="leave out the --openshift-* flags")
    for flag, wanted, have in (("context", where.context, context),
                               ("namespace", where.namespace, namespace)):
        if wanted is None or wanted == have:
            continue
        place = f"{flag} {have}" if have else f"the kubeconfig's current {flag}"
        raise PaudeError(
            f"session {name} {how} with {place}, not {wanted} (--openshift-{flag})",
            hint=f"its stack and objects are there, so the flag cannot move it for one run: "
                 f"to move it, set sessions.{name}.openshift.{flag} in paude.yaml, then "
                 f"`paude destroy {name}` and `paude apply {name}`")


def require_defined(name: str, where: Placement) -> None:
    """require_declared for the session as paude.yaml here defines it (plan, apply)."""
    if not where.given:
        return
    from paude import sessions

    session, _ = sessions.session_of(sessions.open_project(), name)
    require_declared(name, where, session.backend, session.openshift.context,
                     session.openshift.namespace)
