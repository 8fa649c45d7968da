"""`paude allowed-domains NAME --add/--remove/--replace`: edit sessions.NAME.allowed_domains
in paude.yaml (keeping the file's comments and layout), then apply a change that may touch
only the session's egress: the proxy, and the model gateway when a model route changes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from paude import definition, index, sessions
from paude.config import PAUDE_FILE, duplicate_keys, load_paude_file
from paude.errors import ConfigError, ConfigProblem, PaudeError, UsageError
from paude.limits import load_yaml
from paude.models import PaudeFile, SessionSpec
from paude.results import ApplyResult, PlanResult

Entry = Any  # a name (str) or a {host, methods, paths} rule, as written in paude.yaml

# The stack's resources an allowlist change may touch (podman, and a cluster's proxy and
# gateway objects): anything else pending in the plan is somebody else's change.
_EGRESS = ("proxy", "gateway")


@dataclass(frozen=True)
class DomainEdit:
    """paude.yaml with the session's new allowlist, not yet written."""

    path: Path
    name: str
    before: tuple[Entry, ...]  # the session's effective entries now
    after: tuple[Entry, ...]
    inherited: bool  # the entries came from defaults (or paude's own default) until now
    previous: str
    text: str
    file: PaudeFile
    applied: bool  # the session exists on this machine (an apply follows the edit)

    @property
    def changed(self) -> bool:
        """True when the allowlist (and so paude.yaml) changes."""
        return self.text != self.previous


def current(root: Path, name: str) -> tuple[list[str], list[str]]:
    """The session's allowlist as written (effective entries) and as the proxy enforces it
    (Allowlist.describe())."""
    from paude import domains

    project = sessions.Project(root, load_paude_file(root / PAUDE_FILE))
    session, _ = sessions.session_of(project, name)
    allow = domains.expand(session.allowed_domains, session.denied_requests)
    return ([_plain(e) if not isinstance(e, str) else e for e in session.allowed_domains],
            allow.describe() + allow.describe_routes())


def plan_edit(root: Path, name: str, *, add: Sequence[str] = (), remove: Sequence[str] = (),
              replace: Sequence[str] = ()) -> DomainEdit:
    """The new allowlist and paude.yaml's new text; refuses what the models refuse, naming
    the field path, before anything is written."""
    if replace and (add or remove):
        raise UsageError("--replace does not go with --add or --remove",
                         hint="give --replace alone (the whole new list), or --add/--remove")
    if not (add or remove or replace):
        raise UsageError("nothing to change", hint="give --add, --remove or --replace")
    path = root / PAUDE_FILE
    file = load_paude_file(path)  # also refuses a paude.yaml that is a link out
    previous = path.read_text(encoding="utf-8")
    project = sessions.Project(root, file)
    session, _ = sessions.session_of(project, name)
    spec = file.sessions[name]
    inherited = spec.allowed_domains is None
    before = [_plain(e) for e in session.allowed_domains]
    after = list(replace) if replace else [e for e in before if not _matches(e, remove)]
    missing = [r for r in remove if not any(_matches(e, [r]) for e in before)]
    if missing:
        raise PaudeError(f"{', '.join(missing)}: not in session {name}'s allowed_domains "
                         f"({flow(before)})",
                         hint="--remove takes an entry as listed (a group such as default "
                              "is removed whole; --replace gives the whole new list)")
    after += [a for a in add if a not in after]
    _validate(path, name, after)
    if after == before:
        return DomainEdit(path, name, tuple(before), tuple(after), inherited, previous,
                          previous, file, index.read(name) is not None)
    text = set_allowed_domains(previous, name, after)
    new_file = _check_edit(path, text, file, name, after)
    return DomainEdit(path, name, tuple(before), tuple(after), inherited, previous, text,
                      new_file, index.read(name) is not None)


def apply(edit: DomainEdit, *, confirm: Callable[[PlanResult], bool] | None = None,
          on_progress: Any = None, on_notice: Callable[[str], None] | None = None
          ) -> ApplyResult:
    """Write paude.yaml, then apply the session; paude.yaml is restored when the plan
    touches more than egress, the answer is no, or the apply fails."""
    root = edit.path.parent
    sessions.require_owner(root, edit.name)

    def checked(planned: PlanResult) -> bool:
        others = [f"{c.name} ({c.op})" for c in planned.changes
                  if c.op != "same" and not _egress(c.name)]
        if others:
            raise PaudeError(
                f"session {edit.name} has other pending changes: {', '.join(others)}; "
                "allowed-domains applies egress changes only, and paude.yaml was restored",
                hint=f"review them with `paude plan {edit.name}` and apply them with "
                     f"`paude apply {edit.name}` first")
        return confirm(planned) if confirm is not None else True

    definition.replace_text(edit.path, edit.previous, edit.text)
    try:
        return sessions.apply(edit.name, project=sessions.Project(root, edit.file),
                              confirm=checked, on_progress=on_progress, on_notice=on_notice)
    except BaseException:
        definition.restore_text(edit.path, edit.text, edit.previous)
        raise


def write(edit: DomainEdit) -> None:
    """Write paude.yaml only (a session not applied on this machine: nothing to apply)."""
    definition.replace_text(edit.path, edit.previous, edit.text)


def _egress(resource: str) -> bool:
    return any(resource == e or resource.startswith(f"{e}-") for e in _EGRESS)


def _plain(entry: Any) -> Entry:
    if hasattr(entry, "model_dump"):
        return entry.model_dump(mode="json", exclude_none=True)
    return entry


def _matches(entry: Entry, names: Sequence[str]) -> bool:
    host = entry.get("host") if isinstance(entry, dict) else entry
    return host in names


def _validate(path: Path, name: str, entries: list[Entry]) -> None:
    try:
        SessionSpec.model_validate({"allowed_domains": entries})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = [str(p) for p in err["loc"] if p not in ("name", "rule")] or \
                ["allowed_domains"]
            problems.append(ConfigProblem(".".join(["sessions", name, *loc]), str(err["msg"])))
        raise ConfigError(str(path), problems, hint="fix the value given to --add or "
                          "--replace; paude.yaml was not changed") from None


def _check_edit(path: Path, text: str, file: PaudeFile, name: str,
                entries: list[Entry]) -> PaudeFile:
    """The edited text reads back as the same file with only the allowlist changed."""
    expected = file.model_copy(update={"sessions": {
        **file.sessions, name: file.sessions[name].model_copy(
            update={"allowed_domains": SessionSpec.model_validate(
                {"allowed_domains": entries}).allowed_domains})}})
    try:
        root, data = load_yaml(text)
        parsed = PaudeFile.model_validate(data or {})
        same = not list(duplicate_keys(root)) and \
            parsed.model_dump() == expected.model_dump()
    except (ValidationError, yaml.YAMLError) as exc:
        raise ConfigError(str(path), [ConfigProblem(f"sessions.{name}.allowed_domains",
                                                    f"the merged definition is invalid: {exc}")],
                          hint="paude.yaml was not changed") from None
    if not same:
        raise PaudeError(f"{path}: sessions.{name} is written in a way paude cannot edit "
                         "while keeping the file as it is; nothing was changed",
                         hint=f"set sessions.{name}.allowed_domains by hand to "
                              f"{flow(entries)}, then `paude apply {name}`")
    return parsed


# -- editing the text --------------------------------------------------------------------

def flow(entries: list[Entry]) -> str:
    """A list in YAML flow style, on one line."""
    return yaml.safe_dump(entries, default_flow_style=True, width=1 << 20,
                          sort_keys=False).strip()


def set_allowed_domains(text: str, name: str, entries: list[Entry]) -> str:
    """paude.yaml's text with sessions.NAME.allowed_domains set to entries: a block list
    keeps its lines (and their comments) for the entries that stay, a flow list is
    rewritten in place, a missing key is added after the session's last line."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    sessions_node = _value(root, "sessions")
    key, value = _entry(sessions_node, name)
    if key is None or value is None:
        raise PaudeError(f"session {name} is not defined under sessions: in paude.yaml")
    new = flow(entries)
    if isinstance(value, yaml.ScalarNode):  # `name:` or `name: ~`
        start = text.index(":", key.end_mark.index) + 1
        end = value.end_mark.index if value.start_mark.line == key.start_mark.line else start
        return f"{text[:start]} {{allowed_domains: {new}}}{text[end:]}"
    if not isinstance(value, yaml.MappingNode):
        raise PaudeError(f"sessions.{name} in paude.yaml is not a mapping")
    _, listed = _entry(value, "allowed_domains")
    if listed is None:
        if value.flow_style:
            at = value.start_mark.index + 1
            glue = ", " if value.value else ""
            return f"{text[:at]}allowed_domains: {new}{glue}{text[at:]}"
        first = value.value[0][0]
        indent = " " * first.start_mark.column
        at = _line_end(text, _tail(value))
        return f"{text[:at]}{indent}allowed_domains: {new}\n{text[at:]}"
    if isinstance(listed, yaml.SequenceNode) and not listed.flow_style and entries:
        edited = _edit_block(text, listed, entries)
        if edited is not None:
            return edited
    return f"{text[:listed.start_mark.index]}{new}{text[_tail(listed).index:]}"


def _edit_block(text: str, listed: yaml.SequenceNode, entries: list[Entry]) -> str | None:
    """The block list's lines of the entries that stay, then one line per new entry; None
    when the new order is not the old one's (the caller rewrites the list whole)."""
    lines = text.splitlines(keepends=True)
    items = listed.value
    starts = [item.start_mark.line for item in items]
    last = _last_line(_tail(listed))
    spans = [(s, (starts[i + 1] if i + 1 < len(items) else last + 1))
             for i, s in enumerate(starts)]
    data = yaml.SafeLoader(text).construct_document(listed)
    kept: list[str] = []
    staying: list[Entry] = []
    remaining = list(entries)
    for (start, end), entry in zip(spans, data, strict=True):
        if entry in remaining:
            remaining.remove(entry)
            staying.append(entry)
            kept += lines[start:end]
    if staying + remaining != entries:
        return None
    indent = " " * listed.start_mark.column
    added = [f"{indent}- {flow([e])[1:-1]}\n" for e in remaining]
    body = kept + added
    if body and not body[-1].endswith("\n"):
        body[-1] += "\n"
    tail = lines[last + 1:]
    if tail == [] and not text.endswith("\n") and body:
        body[-1] = body[-1].rstrip("\n")
    return "".join(lines[:starts[0]] + body + tail)


def _tail(node: yaml.Node) -> yaml.Mark:
    """Where a node's own text ends: a block collection's end mark lies past the comments
    and blank lines after it, so its last entry's end is taken."""
    if isinstance(node, yaml.MappingNode) and not node.flow_style and node.value:
        return _tail(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
        return _tail(node.value[-1])
    return node.end_mark


def _last_line(mark: yaml.Mark) -> int:
    return mark.line - 1 if mark.column == 0 else mark.line


def _line_end(text: str, mark: yaml.Mark) -> int:
    if mark.column == 0:
        return mark.index
    newline = text.find("\n", mark.index)
    return len(text) if newline < 0 else newline + 1


def _value(node: yaml.Node | None, key: str) -> yaml.Node | None:
    return _entry(node, key)[1]


def _entry(node: yaml.Node | None, key: str) -> tuple[yaml.Node | None, yaml.Node | None]:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return k, v
    return None, None
