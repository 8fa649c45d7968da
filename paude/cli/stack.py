"""`paude plan`, `paude apply` and `paude destroy`: sessions as stacks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from paude import naming, placement
from paude.cli import flags, output, planview
from paude.errors import AbortedError, UsageError

if TYPE_CHECKING:
    from paude.results import ApplyResult, DestroyResult, PlanResult

# Service modules are imported by each command, not here: `paude --help` and `paude list`
# must not pay for pulumi and the schema models.

OptionalName = Annotated[str | None, typer.Argument(
    help="Session name, as defined in paude.yaml; without it, the repository's sessions.",
    show_default=False)]
AllFlag = Annotated[bool, typer.Option("--all", help="Every session of the repository.")]


def plan(
    name: OptionalName = None,
    all_sessions: AllFlag = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the versioned JSON plan.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a PR comment.")] = False,
    detailed_exitcode: Annotated[bool, typer.Option(
        "--detailed-exitcode", help="Exit 0 with no changes, 2 with changes, 1 on error.")] = False,
    render: Annotated[Path | None, typer.Option(
        "--render", help="OpenShift / Kubernetes: write the manifests to this folder instead "
        "of contacting a cluster.", show_default=False)] = None,
    base: Annotated[str | None, typer.Option(
        "--base", metavar="REF", help="Plan against the definitions at a branch, tag or "
        "commit instead of the live session (a pull request's plan: no engine, containers "
        "or secrets). `auto` takes the base from the CI's variables.",
        show_default=False)] = None,
    openshift_context: flags.OpenShiftContext = None,
    openshift_namespace: flags.OpenShiftNamespace = None,
) -> int:
    """Show what `paude apply NAME` would change, against the live objects.

    Without NAME: paude.yaml's only session, or every session (as --all).

    Examples:\n
      paude plan\n
      paude plan demo\n
      paude plan demo --json | jq .summary\n
      paude plan demo --detailed-exitcode || echo "drift or pending changes"\n
      paude plan cluster-session --render manifests/\n
      paude plan --all --markdown > plan-comment.md\n
      paude plan --all --base origin/main --markdown\n
      paude plan --all --base auto --json    # in CI, for a pull request
    """
    # Every contradiction is reported before the engine starts or git is read.
    flags.one_of(json=as_json, markdown=markdown)
    flags.alone("--render", render is not None, base=base is not None, all=all_sessions,
                json=as_json, markdown=markdown, detailed_exitcode=detailed_exitcode)
    name = flags.name_or_all(name, all_sessions)
    where = placement.parse(openshift_context, openshift_namespace)
    placement.needs_name(where, name)
    if name is not None:
        placement.require_defined(name, where)
    if base is not None:
        from paude import baseplan

        # Without NAME, as with --all: the sessions on either side, added and removed too.
        plans = baseplan.plan(base, name=name)
        return _show(plans, as_json, markdown, detailed_exitcode, single=name is not None)
    if name is None and not all_sessions:
        name = _only_session(render is not None)
    if name is None:
        return _plan_all(as_json, markdown, detailed_exitcode)
    from paude import sessions

    if render is not None:
        from paude import inspection

        written = inspection.render(name, render)
        for path in written:
            output.text(str(path))
        output.info(f"{len(written)} manifests written to {render}; nothing was applied")
        return 0
    result = sessions.plan(name, on_install=output.download, on_notice=output.warn)
    if as_json:
        output.text(planview.plan_json_text(result).rstrip("\n"))
    elif markdown:
        output.text(planview.plan_markdown(result).rstrip("\n"))
    else:
        output.text(planview.plan_text(result).rstrip("\n"))
    if detailed_exitcode and result.has_changes:
        return 2
    return 0


def _only_session(render: bool) -> str | None:
    """paude.yaml's only session, or None when it defines several (plan them all)."""
    from paude import stackset

    single = stackset.plan_targets().single
    if render and single is None:
        raise UsageError("--render writes one session's manifests and paude.yaml defines "
                         "several", hint="give --render a session NAME")
    return single


def _plan_all(as_json: bool, markdown: bool, detailed_exitcode: bool) -> int:
    from paude import sessions

    plans = sessions.plan_all(on_install=output.download, on_notice=output.warn)
    return _show(plans, as_json, markdown, detailed_exitcode)


def _show(plans: list[PlanResult], as_json: bool, markdown: bool, detailed_exitcode: bool, *,
          single: bool = False) -> int:
    if single:
        plan = plans[0]
        text = planview.plan_json_text(plan) if as_json else planview.plan_markdown(plan) \
            if markdown else planview.plan_text(plan)
        output.text(text.rstrip("\n"))
    elif as_json:
        output.text(json.dumps(planview.plans_json(plans), indent=2, sort_keys=True))
    elif markdown:
        output.text(f"\n{planview.SPLIT_MARKER}\n".join(planview.plans_markdown(plans)))
    else:
        output.text("\n".join(planview.plan_text(p) for p in plans).rstrip("\n"))
    if any(p.blocked for p in plans):
        blocked = ", ".join(p.session for p in plans if p.blocked)
        output.error(f"mandatory policy rules failed for: {blocked}; nothing was applied")
        return 1
    return 2 if detailed_exitcode and any(p.has_changes for p in plans) else 0


def apply(
    name: OptionalName = None,
    all_sessions: AllFlag = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    openshift_context: flags.OpenShiftContext = None,
    openshift_namespace: flags.OpenShiftNamespace = None,
) -> int:
    """Create or update the session's images, networks, volume and containers.

    Shows the plan and asks before changing anything, unless --yes. Without NAME:
    paude.yaml's only session, or every session with one combined plan and one question.

    Examples:\n
      paude apply demo\n
      paude apply demo --yes\n
      paude apply          # every session of paude.yaml
    """
    where = placement.parse(openshift_context, openshift_namespace)
    name = flags.name_or_all(name, all_sessions)
    placement.needs_name(where, name)
    if name is None:
        from paude import stackset

        name = None if all_sessions else stackset.plan_targets().single
        if name is None:
            return _apply_all(yes)
    else:
        placement.require_defined(name, where)
    from paude import sessions

    def ask(planned: PlanResult) -> bool:
        output.text(planview.plan_text(planned).rstrip("\n"))
        return output.confirm(f"Apply these changes to session {planned.session}?")

    result = sessions.apply(name, confirm=None if yes else ask, on_progress=output.progress,
                            on_install=output.download, on_warning=output.warn if yes else None,
                            on_notice=output.warn)
    _applied(result)
    return 0


def _applied(result: ApplyResult) -> None:
    for finding in result.policy:
        output.warn(f"policy {finding.rule} (advisory) on {finding.resource or 'the session'}: "
                    f"{finding.message}; fix: {finding.fix}")
    output.text(planview.apply_text(result).rstrip("\n"))


def _apply_all(yes: bool) -> int:
    """One combined plan, one question, then each session in turn."""
    from paude import sessions, stackset

    plans = sessions.plan_all(on_install=output.download, on_notice=output.warn)
    blocked = [p.session for p in plans if p.blocked]
    if yes and not blocked:
        for plan in plans:
            for warning in plan.warnings:
                output.warn(warning)  # the plan text, which carries them, is not shown
    else:
        output.text("\n".join(planview.plan_text(p) for p in plans).rstrip("\n"))
    if blocked:
        output.error(f"mandatory policy rules failed for: {', '.join(blocked)}; "
                     "nothing was applied")
        return 1
    changing = [p.session for p in plans if p.has_changes]
    if changing and not yes and not output.confirm(
            f"Apply these changes to sessions {', '.join(changing)}?"):
        raise AbortedError("apply cancelled; nothing was changed")
    # Confirmed: each session's fresh plan must be the one shown. With --yes there was
    # nothing shown to hold it to.
    stackset.apply_planned(plans, exact=not yes, on_progress=output.progress,
                           on_install=output.download, on_notice=output.warn,
                           on_applied=_applied)
    return 0


def destroy(
    name: OptionalName = None,
    all_sessions: AllFlag = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Destroy without asking.")] = False,
    delete_data: Annotated[bool, typer.Option(
        "--delete-data", help="Also remove the workspace volume (the agent's repository)."
    )] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="With --delete-data: even if the agent has unfetched commits.")] = False,
    openshift_context: flags.OpenShiftContext = None,
    openshift_namespace: flags.OpenShiftNamespace = None,
) -> int:
    """Remove the session's containers and networks; keep its workspace unless --delete-data.

    Without NAME: paude.yaml's only session, or every session this repository applied,
    named in one question.

    Examples:\n
      paude destroy demo --yes\n
      paude destroy demo --yes --delete-data\n
      paude destroy        # every session of this repository
    """
    name = flags.name_or_all(name, all_sessions)
    flags.needs("--force", force, "--delete-data", delete_data)
    where = placement.parse(openshift_context, openshift_namespace)
    placement.needs_name(where, name)
    if name is None:
        from paude import stackset

        targets = stackset.destroy_targets()
        if not targets.names:
            output.info("no session of this repository is applied; nothing to destroy")
            return 0
        name = None if all_sessions else targets.single
        if name is None:
            stackset.destroy_all(targets.names, delete_data=delete_data, force=force,
                                 confirm=None if yes else output.confirm,
                                 on_progress=output.progress, on_install=output.download,
                                 on_notice=output.warn, on_destroyed=_destroyed)
            return 0
    else:
        placement.require_recorded(name, where)
    from paude import sessions

    result = sessions.destroy(name, delete_data=delete_data, force=force,
                              confirm=None if yes else output.confirm,
                              on_progress=output.progress, on_install=output.download,
                              on_notice=output.warn)
    _destroyed(result)
    return 0


def _destroyed(result: DestroyResult) -> None:
    name = result.session
    output.text(f"Session {name} destroyed in {result.seconds:.1f}s.")
    if result.data_deleted:
        output.text("  workspace volume deleted.")
    elif "workspace" in result.kept:
        output.text(f"  workspace volume kept: {naming.PodmanNames(name).workspace} "
                    f"(`paude destroy {name} --delete-data` removes it)")


def register(app: typer.Typer) -> None:
    """Add the stack commands to the app."""
    app.command()(plan)
    app.command()(apply)
    app.command()(destroy)
