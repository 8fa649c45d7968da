"""The pull-request plan (`paude plan --base REF`): the working tree's definitions against
the definitions at a base commit, with no engine, state, container or cluster.

Each side's sessions run through the same stack programs as `paude apply`, under Pulumi
mocks (paude/mockrun.py), so nothing is built or touched; the resource inputs of the two
sides are then compared (paude/basediff.py) and summarised by the same statements as the
live plan (paude/summary.py). Images are compared by their build inputs: the rendered
Containerfiles and the digests of the build contexts. Both sides are read with the live
path's loaders and their limits; the base side's files come from git objects
(paude/baseref.py) into a private temporary folder."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from paude import basediff, baseref, policy
from paude.config import PAUDE_FILE, find_project_root, load_paude_file, session_from
from paude.credentials import AgentIdentity
from paude.errors import CommandFailedError, ConfigError, ConfigProblem, PaudeError
from paude.image_sources import IMAGE_SOURCES
from paude.mockrun import Declared, declare
from paude.models import PaudeFile, Session
from paude.policies.resources import Resource
from paude.policies.settings import PackConfig
from paude.results import BaseCommit, PlanResult, PolicyFinding, ResourceChange, SummaryItem
from paude.sessions import Project, check_name, session_of
from paude.summary import summarize

HEAD_LABEL = "working tree"
# What the definitions are read from before anything else: the files a session's
# definition and its policy levels live in.
_DEFINITION_FILES = (PAUDE_FILE, policy.POLICY_FILE, *IMAGE_SOURCES)


@dataclass(frozen=True)
class _Side:
    """One side of the comparison: where its files are and what they define."""

    label: str  # "working tree", or the base's label
    root: Path  # the folder its files are read from
    file: PaudeFile | None  # None: no paude.yaml on this side
    config: PackConfig


def plan(ref: str, *, name: str | None = None, cwd: Path | None = None,
         env: Mapping[str, str] | None = None) -> list[PlanResult]:
    """Plan every session (or NAME) of the working tree against the definitions at `ref`."""
    if name is not None:
        name = check_name(name)
    root = find_project_root((cwd or Path.cwd()).resolve()).resolve()
    base = baseref.resolve(root, ref, env)
    head = _head(root)
    with tempfile.TemporaryDirectory(prefix="paude-base-") as tmp:
        old = _base(root, base, Path(tmp).resolve(), head_config=head.config)
        names = sorted(set(_names(head)) | set(_names(old)))
        if name is not None:
            if name not in names:
                raise PaudeError(f"no session {name} in paude.yaml, in the {HEAD_LABEL} or "
                                 f"at {base.label}", hint="`paude list` shows the sessions")
            names = [name]
        if not names:
            raise PaudeError(f"paude.yaml defines no sessions, in the {HEAD_LABEL} or at "
                             f"{base.label}", hint="add one with `paude create NAME`")
        return [_session(n, old, head, base) for n in names]


def _names(side: _Side) -> list[str]:
    return list(side.file.sessions) if side.file is not None else []


def _head(root: Path) -> _Side:
    path = root / PAUDE_FILE
    file = None
    if path.exists() or path.is_symlink():
        file = _labelled(HEAD_LABEL, root, lambda: load_paude_file(path))
    config = _labelled(HEAD_LABEL, root, lambda: policy.load(root))
    return _Side(HEAD_LABEL, root, file, config)


def _base(root: Path, base: BaseCommit, tmp: Path, *, head_config: PackConfig) -> _Side:
    try:
        baseref.materialise(root, base.commit, tmp, lambda p: p in _DEFINITION_FILES)
        # A definition file that links to another file of the tree needs that file, and a
        # Dockerfile's build context is hashed file by file: then the base commit's whole
        # tree is written out, within the limits.
        whole = any((tmp / name).is_symlink() for name in _DEFINITION_FILES)
        if whole:
            _rewrite(root, base, tmp)
        path = tmp / PAUDE_FILE
        file = None
        if path.exists() or path.is_symlink():
            file = _labelled(base.label, tmp, lambda: load_paude_file(path))
        if not whole and _needs_tree(file, tmp):
            _rewrite(root, base, tmp)
    except CommandFailedError as exc:
        raise baseref.read_error(exc, base) from exc
    config = _labelled(base.label, tmp, lambda: policy.load(tmp))
    # Organisation rules with code are the machine's, the same on both sides; they were
    # checked against the real repository when the working tree's policy was read.
    config = config.model_copy(update={"custom": head_config.custom,
                                       "untrusted": head_config.untrusted})
    return _Side(base.label, tmp, file, config)


def _rewrite(root: Path, base: BaseCommit, tmp: Path) -> None:
    for child in tmp.iterdir():
        _remove(child)
    baseref.materialise(root, base.commit, tmp)


def _needs_tree(file: PaudeFile | None, tmp: Path) -> bool:
    if file is None:
        return False
    for name in file.sessions:
        try:
            session, _ = session_from(file, tmp, name)
        except PaudeError:
            return True  # reported with its side when the session is planned
        if session.image.dockerfile is not None:
            return True
    return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            _remove(child)
        path.rmdir()
    else:
        path.unlink()


T = TypeVar("T")


def _labelled(label: str, root: Path, load: Callable[[], T]) -> T:
    """Run a loader; a definition error names its side and the file relative to the
    repository (the base side's files live in a temporary folder)."""
    try:
        return load()
    except ConfigError as exc:
        raise ConfigError(_relabel(exc.file, label, root),
                          [ConfigProblem(p.path, _relabel(p.message, label, root, bare=True),
                                         p.line) for p in exc.problems],
                          hint=exc.hint, what=exc.what) from None


def _relabel(text: str, label: str, root: Path, *, bare: bool = False) -> str:
    prefix = str(root) + "/"
    if bare:
        return text.replace(prefix, "").replace(str(root), "the repository")
    if text.startswith(prefix):
        return f"{label}: {text[len(prefix):]}"
    return f"{label}: {text}"


def _program(session: Session, owner: Path, files: Path) -> Callable[[], None]:
    # No identity: the agent's credentials are the machine's, not the definition's, and a
    # CI runner has none to read. Files are read from `files`; paths are recorded (and
    # image tags hashed) under the repository's own folder on both sides.
    identity = AgentIdentity((), (), {}, {})
    where = None if files == owner else files
    if session.backend == "podman":
        from paude.stacks.podman.program import make_program

        program: Callable[[], None] = make_program(session, str(owner), identity, files=where)
        return program
    from paude.stacks.openshift.program import make_program as cluster_program

    program = cluster_program(session, str(owner), identity, source=where)
    return program


def _declare(side: _Side, name: str, owner: Path) -> tuple[Session | None, list[str],
                                                            dict[str, Declared]]:
    if side.file is None or name not in side.file.sessions:
        return None, [], {}
    file = side.file

    def build() -> tuple[Session, list[str], dict[str, Declared]]:
        session, warnings = session_of(Project(side.root, file), name)
        return session, warnings, declare(_program(session, owner, side.root))

    session, warnings, declared = _labelled(side.label, side.root, build)
    if side.root != owner:
        # The base side ran from its temporary folder; both sides belong to one repository.
        declared = {k: replace(v, inputs=_moved(v.inputs, str(side.root), str(owner)))
                    for k, v in declared.items()}
    return session, warnings, declared


def _moved(value: Any, old: str, new: str) -> Any:
    if isinstance(value, str):
        return new + value[len(old):] if value == old or value.startswith(old + "/") else value
    if isinstance(value, Mapping):
        return {k: _moved(v, old, new) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_moved(v, old, new) for v in value]
    return value


def _session(name: str, old: _Side, head: _Side, base: BaseCommit) -> PlanResult:
    _, _, before = _declare(old, name, head.root)
    session, warnings, after = _declare(head, name, head.root)
    changes = basediff.changes(before, after)
    if session is None:  # removed in the working tree
        summary: tuple[SummaryItem, ...] = (SummaryItem(
            "session-removed", f"session removed from paude.yaml: its {len(before)} "
            f"resources stay until `paude destroy {name}`"),)
        return PlanResult(name, _backend(before), changes, summary, warnings=(),
                          base=base, removed_session=True)
    new_session = not before
    summary = _workspace_note(summarize(changes, new_session=new_session), changes, before)
    findings = _findings(head.config, after)
    if before:
        earlier = {(f.rule, f.resource, f.level) for f in _findings(old.config, before)}
    else:
        earlier = set()
    policy_found = tuple(replace(f, new=(f.rule, f.resource, f.level) not in earlier)
                         for f in findings)
    return PlanResult(name, session.backend, changes, summary, new_session, tuple(warnings),
                      policy_found, base=base)


def _backend(declared: Mapping[str, Declared]) -> str:
    types = {d.type for d in declared.values()}
    return "podman" if any("dynamic/podman:" in t for t in types) else "openshift"


def _workspace_note(summary: tuple[SummaryItem, ...], changes: Sequence[ResourceChange],
                    before: Mapping[str, Declared]) -> tuple[SummaryItem, ...]:
    """A replaced workspace is protected: `paude apply` refuses it, and the session would
    start on an empty one. Said as loudly as a live plan says data loss."""
    workspace = next((c for c in changes if c.name == "workspace"), None)
    if workspace is None or workspace.op != "replace" or not before["workspace"].protect:
        return summary
    keys = ", ".join(workspace.replace_keys)
    item = SummaryItem("workspace-replaced", f"workspace will be replaced ({keys}): the "
                       "session starts on an EMPTY workspace; `paude apply` refuses while it "
                       "is protected, and the old one is kept", security=True, data_loss=True)
    rest = tuple(i for i in summary if not i.kind.startswith("workspace-"))
    return (item, *rest)


def _findings(config: PackConfig, declared: Mapping[str, Declared]) -> tuple[PolicyFinding,
                                                                              ...]:
    """The policy pack's rules over one side's resources, as the engine would report them."""
    from paude.policies.pack import load_custom
    from paude.policies.rules import BUILTIN

    resources = [Resource(d.type, d.name, basediff.plain(d.inputs), d.protect,
                          f"urn:paude::{d.name}") for d in declared.values()]
    checks = [(r.id, config.levels.get(r.id, r.level), r.fix, r.check,
               config.params.get(r.id, r.params)) for r in BUILTIN if not r.host]
    checks += [(c.id, c.level, c.fix, load_custom(c, config.untrusted), {})
               for c in config.custom]
    out: list[PolicyFinding] = []
    for rule, level, fix, check, params in checks:
        if level == "disabled":
            continue
        try:
            found = [(v.resource.name if v.resource else "", v.detail)
                     for v in check(resources, params)]
        except Exception as exc:  # a broken rule fails closed, as in the pack
            found = [("", f"the rule could not run: {type(exc).__name__}: {exc}")]
        out += [PolicyFinding(rule, "mandatory" if level == "mandatory" else "advisory",
                              where, _detail(detail), fix) for where, detail in found]
    return tuple(out)


def _detail(text: str) -> str:
    # As engine_text.finding reads a violation back from the engine's event.
    return " ".join(line for line in text.strip().splitlines() if line.strip())
