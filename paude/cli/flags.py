"""Command-line checks that run before any engine, podman or prompt: flags that do not go
together, and names, so a mistyped command fails at once and changes nothing."""

from __future__ import annotations

from itertools import combinations
from typing import Annotated

import typer

from paude.errors import UsageError
from paude.naming import check_session_name as check_name

OpenShiftContext = Annotated[str | None, typer.Option(
    "--openshift-context", help="OpenShift: the kubeconfig context the session is in (on "
    "create: written into paude.yaml; elsewhere: refused if the session is not there).",
    show_default=False)]
OpenShiftNamespace = Annotated[str | None, typer.Option(
    "--openshift-namespace", help="OpenShift: the namespace the session is in (on create: "
    "written into paude.yaml; elsewhere: refused if the session is not there).",
    show_default=False)]


def one_of(**given: bool) -> None:
    """At most one of the flags (keyword: `--flag-name` spelled with underscores)."""
    chosen = [_flag(k) for k, on in given.items() if on]
    for first, second in combinations(chosen, 2):
        raise UsageError(f"{first} and {second} do not go together",
                         hint=f"give {first} or {second}, not both")


def alone(flag: str, given: bool, **others: bool) -> None:
    """`flag` goes with none of the others."""
    if given:
        for other, on in others.items():
            if on:
                raise UsageError(f"{flag} and {_flag(other)} do not go together",
                                 hint=f"give {flag} or {_flag(other)}, not both")


def needs(flag: str, given: bool, other: str, present: bool) -> None:
    """`flag` only means something together with `other`."""
    if given and not present:
        raise UsageError(f"{flag} only goes with {other}",
                         hint=f"add {other}, or leave out {flag}")


def name_or_all(name: str | None, all_sessions: bool) -> str | None:
    """A session NAME or --all, exactly one; the NAME validated."""
    if name is not None and all_sessions:
        raise UsageError(f"a session NAME ({name}) and --all do not go together",
                         hint="give a session NAME, or --all")
    if name is None and not all_sessions:
        raise UsageError("give a session NAME, or --all",
                         hint="add a session NAME, or --all for every session in paude.yaml")
    return check_name(name) if name is not None else None


def name(value: str) -> str:
    """A NAME given on the command line, validated."""
    return check_name(value)


BACKENDS = ("podman", "openshift")


def backend(value: str | None) -> str | None:
    """A --backend value: podman or openshift (None: not given)."""
    if value is not None and value not in BACKENDS:
        raise UsageError(f"--backend {value!r} is not a backend",
                         hint=f"give --backend {' or --backend '.join(BACKENDS)}")
    return value


def platform(value: str | None, *, dry_run: bool) -> None:
    """A --platform value: one paude builds for, and (unless only planned) one this machine
    can build and run."""
    if value is None:
        return
    from paude import arch

    if value not in arch.PLATFORMS:
        raise UsageError(f"--platform {value!r} is not a platform paude builds for",
                         hint=f"give --platform {' or --platform '.join(arch.PLATFORMS)}")
    why = arch.unavailable(value)
    if why is not None and not dry_run:
        raise UsageError(f"--platform {value}: {why}",
                         hint="add --dry-run to see the definition and plan without building")


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")
