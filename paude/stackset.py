"""Bare `paude plan`, `apply` and `destroy`: the repository's sessions taken together, the way
`terraform plan/apply/destroy` act on a directory. Returns results, never prints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from paude import engine, index, sessions
from paude.errors import AbortedError, PaudeError
from paude.guard import guard_unfetched
from paude.results import ApplyResult, DestroyResult, PlanResult


@dataclass(frozen=True)
class Targets:
    """The sessions a bare command acts on, in name order."""

    names: tuple[str, ...]
    defined: tuple[str, ...]  # the sessions paude.yaml defines

    @property
    def single(self) -> str | None:
        """The one session, when the command acts on exactly one."""
        return self.names[0] if len(self.names) == 1 else None


class PlanChangedError(PaudeError):
    """What `apply` would do now differs from the combined plan that was confirmed."""


def plan_targets(*, cwd: Path | None = None) -> Targets:
    """Every session paude.yaml defines; none is an error (there is nothing to plan)."""
    project = sessions.open_project(cwd)
    defined = tuple(sorted(project.file.sessions))
    if not defined:
        raise PaudeError("paude.yaml defines no sessions",
                         hint="add one with `paude create NAME`")
    return Targets(defined, defined)


def destroy_targets(*, cwd: Path | None = None) -> Targets:
    """The sessions this repository applied (the local index, whether or not paude.yaml
    still defines them), or paude.yaml's only session; each checked to be this
    repository's before anything is asked or removed."""
    project = sessions.open_project(cwd)
    defined = tuple(sorted(project.file.sessions))
    applied = {e.name for e in index.read_all() if e.owner == project.owner}
    names = sorted(applied | set(defined)) if len(defined) == 1 and not applied - set(defined) \
        else sorted(applied)
    for name in names:
        sessions.require_owner(project.root, name)
    return Targets(tuple(names), defined)


def check_unfetched(names: tuple[str, ...], *, cwd: Path | None = None) -> None:
    """Refuse --delete-data for all sessions if any holds work the host lacks: checked for
    every session before the first is destroyed, so a refusal changes nothing."""
    project = sessions.open_project(cwd)
    for name in names:
        entry = index.read(name)
        backend = entry.backend if entry is not None else _declared(project, name)
        guard_unfetched(project.root, backend, name, container_expected=entry is not None)


def apply_planned(plans: list[PlanResult], *, cwd: Path | None = None, exact: bool = True,
                  on_progress: engine.OnProgress | None = None,
                  on_install: sessions.InstallProgress | None = None,
                  on_notice: sessions.Notice | None = None,
                  on_applied: Callable[[ApplyResult], None] | None = None
                  ) -> list[ApplyResult]:
    """Apply each planned session in turn. With `exact`, a session whose fresh plan differs
    from the one shown (someone changed it in between) stops the run before it changes."""
    blocked = [p.session for p in plans if p.blocked]
    if blocked:
        raise PaudeError(f"mandatory policy rules failed for: {', '.join(blocked)}; "
                         "nothing was applied",
                         hint="change paude.yaml as each finding's fix says, then plan again")
    project = sessions.open_project(cwd)
    done: list[ApplyResult] = []
    for shown in plans:
        confirm = _same_as(shown, [r.session for r in done]) if exact else None
        result = sessions.apply(shown.session, project=project, confirm=confirm,
                                on_progress=on_progress, on_install=on_install,
                                on_notice=on_notice)
        done.append(result)
        if on_applied is not None:
            on_applied(result)
    return done


def _same_as(shown: PlanResult, applied: list[str]) -> sessions.Confirm:
    def check(fresh: PlanResult) -> bool:
        if _steps(fresh) != _steps(shown):
            before = f"sessions applied before it: {', '.join(applied)}; " if applied else ""
            raise PlanChangedError(
                f"the plan of session {shown.session} changed after it was shown; "
                f"{before}nothing was changed in {shown.session} or after it",
                hint="run `paude apply` again to review the new plan")
        return True
    return check


def _steps(plan: PlanResult) -> set[tuple[object, ...]]:
    # The engine reports independent resources in the order they finish: compare sets.
    return {(c.name, c.type, c.op, frozenset(c.diff_keys), frozenset(c.replace_keys),
             c.retained) for c in plan.changes}


def destroy_all(names: tuple[str, ...], *, cwd: Path | None = None, delete_data: bool = False,
                force: bool = False, confirm: Callable[[str], bool] | None = None,
                on_progress: engine.OnProgress | None = None,
                on_install: sessions.InstallProgress | None = None,
                on_notice: sessions.Notice | None = None,
                on_destroyed: Callable[[DestroyResult], None] | None = None
                ) -> list[DestroyResult]:
    """Destroy the named sessions after one question naming them all (unless no confirm)."""
    if delete_data and not force:
        check_unfetched(names, cwd=cwd)
    if confirm is not None:
        what = "containers, networks" + (" AND workspace volumes (data)" if delete_data else "")
        if not confirm(f"destroy sessions {', '.join(names)}: remove their {what}?"):
            raise AbortedError("destroy cancelled; nothing was changed")
    done: list[DestroyResult] = []
    for name in names:
        result = sessions.destroy(name, cwd=cwd, delete_data=delete_data, force=force,
                                  on_progress=on_progress, on_install=on_install,
                                  on_notice=on_notice)
        done.append(result)
        if on_destroyed is not None:
            on_destroyed(result)
    return done


def _declared(project: sessions.Project, name: str) -> str:
    spec = project.file.sessions.get(name)
    return (spec.backend if spec and spec.backend else project.file.defaults.backend) or "podman"
