"""The seed's commands: create, start, stop, connect, list, status, delete."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from paude import lifecycle, naming, overview, placement, termguard
from paude.cli import flags, output
from paude.errors import PaudeError

if TYPE_CHECKING:
    from paude.gitseed import GitSeedResult

# The schema models and git are imported by the commands that use them: `paude list` and
# `paude --help` must not pay for them.

OptionalName = Annotated[str | None, typer.Argument(
    help="Session name; defaults to the current repository's session, or the only one.",
    show_default=False)]
GithubToken = Annotated[str | None, typer.Option(
    "--github-token", show_default=False, metavar="TOKEN",
    help="Give the session's credential gateway a GitHub token (default: "
    "$PAUDE_GITHUB_TOKEN): the agent's git reads github.com through it, read-only, and "
    "never sees the token. The session must allow github.")]
# create takes the flag only: a PAUDE_GITHUB_TOKEN set for start must not make every
# create of a session without github fail after it was made.
CreateToken = Annotated[str | None, typer.Option(
    "--github-token", show_default=False, metavar="TOKEN",
    help="After the apply, as `paude start --github-token` (the session must allow github).")]


def create(
    name: Annotated[str | None, typer.Argument(
        help="Session name; defaults to the repository folder's name.", show_default=False)] = None,
    yolo: Annotated[bool, typer.Option("--yolo", help=(
        "Run claude with --dangerously-skip-permissions (egress stays filtered)."))] = False,
    backend: Annotated[str | None, typer.Option("--backend", help="podman or openshift.")] = None,
    allowed_domains: Annotated[list[str] | None, typer.Option(
        "--allowed-domains", help="Egress allowlist entry (repeatable): default, all, vertexai, "
        "pypi, claude, github, a host name or a .suffix.")] = None,
    args: Annotated[str | None, typer.Option(
        "--args", "-a", help="Arguments for claude, quoted as in a shell; -p PROMPT runs "
        "headless, once.")] = None,
    pvc_size: Annotated[str | None, typer.Option("--pvc-size", help="OpenShift PVC size.")] = None,
    storage_class: Annotated[str | None, typer.Option(
        "--storage-class", help="OpenShift storage class.")] = None,
    rebuild: Annotated[bool, typer.Option(
        "--rebuild", help="Rebuild the images without podman's cache.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the definition and the plan; change nothing.")] = False,
    git: Annotated[bool, typer.Option(
        "--git", help="Then add the paude-NAME remote, push the current branch and tags, and "
        "set origin inside to this repository's origin URL (credentials left out).")] = False,
    github_token: CreateToken = None,
    openshift_context: flags.OpenShiftContext = None,
    openshift_namespace: flags.OpenShiftNamespace = None,
    platform: Annotated[str | None, typer.Option(
        "--platform", help="Build the agent's image for linux/amd64 or linux/arm64 (written "
        "into paude.yaml); another platform than the host's needs qemu-user-static.",
        show_default=False)] = None,
) -> int:
    """Define a session in paude.yaml from the flags, then apply it.

    Examples:\n
      paude create --yolo my-project\n
      paude create --yolo --git my-project\n
      paude create --allowed-domains default --allowed-domains .example.com\n
      paude create --yolo my-project -a '-p "refactor the auth module"'\n
      paude create --dry-run
    """
    from paude.definition import CreateFlags

    if github_token is not None:
        flags.github_token(github_token)
    flags.alone("--github-token", bool(github_token), dry_run=dry_run)
    # --rebuild changes how images are built, which a dry run never does.
    flags.one_of(dry_run=dry_run, rebuild=rebuild)
    flags.one_of(dry_run=dry_run, git=git)  # a dry run pushes nothing
    where = placement.parse(openshift_context, openshift_namespace)
    placement.not_podman(where, flags.backend(backend))
    flags.platform(platform, dry_run=dry_run)
    wanted = CreateFlags(yolo=yolo or None, backend=backend,
                        allowed_domains=tuple(allowed_domains) if allowed_domains else None,
                        args=args, pvc_size=pvc_size, storage_class=storage_class,
                        openshift_context=where.context, openshift_namespace=where.namespace,
                        platform=platform)
    result = lifecycle.create(name, wanted, dry_run=dry_run, rebuild=rebuild,
                              on_progress=output.progress, on_warning=output.warn,
                              on_notice=output.warn, git=git)
    from paude.cli import planview  # the plan's words; status and start never need them

    if dry_run:
        output.text(f"# paude.yaml{' (unchanged)' if not result.definition.changed else ''}")
        output.text(result.definition.text.rstrip("\n"))
        output.text("")
        if result.plan is not None:
            output.text(planview.plan_text(result.plan).rstrip("\n"))
        output.text("Dry run: nothing was written or changed.")
        return 0
    if result.definition.changed:
        output.info(f"paude.yaml: {'added' if result.definition.new_session else 'updated'} "
                    f"session {result.name}")
    if result.applied is not None:
        output.text(planview.apply_text(result.applied).rstrip("\n"))
    if result.git is not None:
        _seeded(result.name, result.git)
        if github_token:
            _give_token(result.name, github_token, created=True)
        output.text(f"Next: `paude start {result.name}`.")
        return 0
    if github_token:
        _give_token(result.name, github_token, created=True)
    output.text(f"Next: `paude start {result.name}`, then in a second terminal "
                f"`paude remote add --push {result.name}`.")
    return 0


def _give_token(session: str, token: str, *, created: bool = False) -> None:
    from paude import github_token

    try:
        if created:  # the definition the check reads exists only now
            github_token.check(session, token)
        given = github_token.give(session, token)
    except PaudeError as exc:
        if created:
            exc.message = f"session {session} was created, but the GitHub token was not " \
                          f"given: {exc.message}"
        raise
    output.info(f"GitHub: session {session}'s gateway holds your token; the agent's git "
                f"reaches github.com through it ({given.url}), read-only")


def _seeded(name: str, seeded: GitSeedResult) -> None:
    tags = f" and {seeded.tags} tag{'s' if seeded.tags != 1 else ''}" if seeded.tags else ""
    output.text(f"remote {seeded.remote.remote} ({seeded.remote.url}); pushed "
                f"{seeded.remote.branch}{tags} to session {name}")
    if seeded.origin is None:
        output.info("this repository has no origin; the session's has none either")
        return
    output.text(f"origin in the session: {seeded.origin.url}")
    if seeded.origin.stripped:
        output.warn(f"left out of the origin URL: {' and '.join(seeded.origin.stripped)} "
                    "(they never enter the session)")


def start(
    name: OptionalName = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show each step.")] = False,
    attach: Annotated[bool, typer.Option(
        "--attach/--no-attach", help="Attach to the agent's tmux session.")] = True,
    github_token: GithubToken = None,
    openshift_context: flags.OpenShiftContext = None,
    openshift_namespace: flags.OpenShiftNamespace = None,
) -> int:
    """Start the session's containers and attach to the agent (Ctrl+b d detaches).

    Examples:\n
      paude start my-project\n
      paude start --no-attach
    """
    wanted = flags.github_token(github_token)
    where = placement.parse(openshift_context, openshift_namespace)
    session = lifecycle.resolve_name(name)
    placement.require_recorded(session, where)
    from paude import github_token as tokens

    token = _usable_token(session, *wanted)  # before anything starts
    if verbose:
        output.info(f"starting the proxy and the agent of session {session}...")
    argv = lifecycle.start(session)
    if token:
        _give_token(session, token)
    elif tokens.take_back(session).removed:
        output.info(f"GitHub: the token an earlier start gave session {session} was removed")
    if verbose:
        output.info(f"session {session} is running")
    if not attach or not sys.stdin.isatty():
        output.text(f"Session {session} is running. Attach with `paude connect {session}`.")
        return 0
    return _attach(argv)


def stop(name: OptionalName = None, openshift_context: flags.OpenShiftContext = None,
         openshift_namespace: flags.OpenShiftNamespace = None) -> int:
    """Stop the session's containers. Everything is kept; `paude start` resumes.

    Examples:\n
      paude stop my-project
    """
    where = placement.parse(openshift_context, openshift_namespace)
    session = lifecycle.resolve_name(name)
    placement.require_recorded(session, where)
    lifecycle.stop(session)
    output.text(f"Session {session} stopped; its workspace and the agent's state are kept.")
    return 0


def connect(name: OptionalName = None, github_token: GithubToken = None,
            openshift_context: flags.OpenShiftContext = None,
            openshift_namespace: flags.OpenShiftNamespace = None) -> int:
    """Attach to the agent's tmux session. Ctrl+b d detaches; the agent keeps running.

    Examples:\n
      paude connect my-project
    """
    wanted = flags.github_token(github_token)
    where = placement.parse(openshift_context, openshift_namespace)
    session = lifecycle.resolve_name(name)
    placement.require_recorded(session, where)
    token = _usable_token(session, *wanted)
    argv = lifecycle.attach_argv(session)
    if token:
        _give_token(session, token)
    from paude import workspace_setup

    setup = workspace_setup.notice(session)
    if setup:
        output.info(setup)
    return _attach(argv)


def _usable_token(session: str, token: str | None, source: str) -> str | None:
    """The token to give the session: one given on the command line must be usable; one
    only in the environment is left out, with a warning, where the session cannot use it."""
    if not token:
        return None
    from paude import github_token as tokens

    try:
        tokens.check(session, token)
    except tokens.NoGithubRouteError as exc:
        if source == "--github-token":
            raise
        output.warn(f"{source} is not used for session {session}: {exc.message}")
        return None
    return token


def _attach(argv: list[str]) -> int:
    attached = termguard.attach(argv)
    if attached.dropped:
        output.info(f"paude kept {attached.dropped} escape sequence(s) from the agent's "
                    "terminal off yours (clipboard writes, passthrough; see docs/security.md)")
    return attached.exit_code


def list_(as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
          backend: Annotated[str | None, typer.Option(
              "--backend", help="Only the sessions on this backend: podman or openshift.",
              show_default=False)] = None,
          openshift_context: flags.OpenShiftContext = None,
          openshift_namespace: flags.OpenShiftNamespace = None) -> int:
    """List sessions: NAME, BACKEND, STATUS, WORKSPACE (no engine run: fast).

    Examples:\n
      paude list\n
      paude list --backend=podman\n
      paude list --json | jq -r '.[] | select(.status == "running") | .name'
    """
    where = placement.parse(openshift_context, openshift_namespace)
    placement.not_podman(where, flags.backend(backend))
    rows = overview.list_sessions(backend, where)
    if as_json:
        output.text(json.dumps([r.to_json() for r in rows], indent=2))
        return 0
    if not rows:
        output.text(f"No sessions{f' on {backend}' if backend else ''}. Create one with "
                    "`paude create NAME`.")
        return 0
    width = max(4, *(len(r.name) for r in rows))
    output.text(f"{'NAME':<{width}}  {'BACKEND':<9}  {'STATUS':<8}  WORKSPACE")
    for r in rows:
        output.text(f"{r.name:<{width}}  {r.backend:<9}  {r.status:<8}  {r.workspace}")
    return 0


def status(
    name: OptionalName = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
    verify: Annotated[bool, typer.Option(
        "--verify", help="Test the sandbox from inside the agent: exit 1 if any check "
                         "fails.")] = False,
    openshift_context: flags.OpenShiftContext = None,
    openshift_namespace: flags.OpenShiftNamespace = None,
) -> int:
    """Show a session's state, agent and proxy health, and the work the host lacks: commits
    on any ref, uncommitted, untracked and ignored files. With --verify, test the sandbox
    from inside the agent instead: non-root, no capabilities, no route out, no resolver,
    the proxy answers, an allowed name passes and a made-up one is refused.

    Examples:\n
      paude status my-project\n
      paude status my-project --json | jq .work.blocking\n
      paude status my-project --verify
    """
    where = placement.parse(openshift_context, openshift_namespace)
    name = lifecycle.resolve_name(name)
    placement.require_recorded(name, where)
    if verify:
        checked = lifecycle.verify(lifecycle.resolve_name(name))
        if as_json:
            output.text(json.dumps(checked.to_json(), indent=2))
        else:
            for check in checked.checks:
                output.text(f"{'ok  ' if check.ok else 'FAIL'}  {check.name:<21} {check.detail}")
            output.text(f"Session {checked.session}: sandbox "
                        f"{'verified' if checked.ok else 'NOT verified'}.")
        return 0 if checked.ok else 1
    result = overview.status(lifecycle.resolve_name(name))
    if as_json:
        output.text(json.dumps(result.to_json(), indent=2))
        return 0
    unfetched = "unknown (not running)" if result.unfetched is None else str(result.unfetched)
    output.text(f"Session {result.name} ({result.backend}): {result.state}")
    output.text(f"  agent alive:       {'yes' if result.agent_alive else 'no'}")
    output.text(f"  proxy alive:       {'yes' if result.proxy_alive else 'no'}")
    if result.oom_killed:
        output.text("  memory:            the agent's container ENDED at its memory limit; "
                    f"`paude start {result.name}` restarts it (raise resources.memory in "
                    "paude.yaml if the work needs more)")
    elif result.memory_kills:
        output.text(f"  memory:            {result.memory_kills} process(es) killed at the "
                    "agent's memory limit; the session kept running (raise resources.memory "
                    "in paude.yaml if the work needs more)")
    if result.setup is not None:
        output.text(f"  setup:             {result.setup.describe(result.name)}")
    output.text(f"  unfetched commits: {unfetched}")
    for branch, count in sorted(result.branches.items()):
        output.text(f"    {branch}: {count}  (git pull {naming.git_remote(result.name)} {branch})")
    for line in _work_lines(result):
        output.text(line)
    return 0


def _work_lines(result: overview.SessionStatus) -> list[str]:
    """The `unfetched work` part of status: every kind but branches (shown above)."""
    from paude import work

    if result.report is None:
        why = result.work_error or "not running"
        return [f"  unfetched work:    unknown ({why})"]
    items = [k for k in work.kinds(result.report, result.name) if k.kind != "branches"]
    verdict = ("`paude delete` refuses until it is fetched or rescued"
               if result.report.blocking else "none")
    lines = [f"  unfetched work:    {verdict}"]
    for item in items:
        lines.append(f"    {item.kind}: {item.headline}")
        lines += [f"      {detail}" for detail in item.details]
        if item.fix:
            lines.append(f"      bring it back: {item.fix}")
    return lines


def delete(
    name: Annotated[str, typer.Argument(help="Session name.", show_default=False)],
    confirm: Annotated[bool, typer.Option(
        "--confirm", help="Required: delete the session and its workspace.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Delete even if the session holds work you have not fetched.")] = False,
    openshift_context: flags.OpenShiftContext = None,
    openshift_namespace: flags.OpenShiftNamespace = None,
) -> int:
    """Destroy a session with its data. Refuses while the session holds work the host lacks
    (commits on any ref, uncommitted or untracked files); `paude rescue` saves it all.

    Examples:\n
      paude delete my-project --confirm\n
      paude delete my-project --confirm --force
    """
    name = flags.name(name)  # a bad NAME is reported before --confirm is asked for
    where = placement.parse(openshift_context, openshift_namespace)
    placement.require_recorded(name, where)
    if not confirm:
        output.error(f"deleting removes session {name} and its workspace; "
                     f"run `paude delete {name} --confirm`")
        return 1
    session = lifecycle.resolve_name(name)
    result = lifecycle.delete(session, force=force, on_progress=output.progress,
                              on_notice=output.warn)
    output.text(f"Session {session} deleted in {result.seconds:.1f}s"
                f"{', workspace included' if result.data_deleted else ''}.")
    return 0


def register(app: typer.Typer) -> None:
    """Add the lifecycle commands."""
    app.command()(create)
    app.command()(start)
    app.command()(stop)
    app.command()(connect)
    app.command("list")(list_)
    app.command()(status)
    app.command()(delete)
