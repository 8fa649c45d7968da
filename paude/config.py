"""Reading and writing paude.yaml, and the paude.json / devcontainer.json image sources."""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from paude import domains
from paude.egress import EgressError
from paude.errors import ConfigError, ConfigProblem
from paude.fields import DEFAULT_ALLOWED_DOMAINS
from paude.image_sources import IMAGE_SOURCES, WHOLE_FILE, load_image_source
from paude.limits import TooComplex, load_yaml
from paude.models import AgentConfig, PaudeFile, Session, resolve
from paude.project_root import PAUDE_FILE, find_project_root
from paude.validation import Loc, dotted, entry_loc, message

__all__ = ["PAUDE_FILE", "dump_paude_file", "duplicate_keys", "find_project_root",
           "load_image_source", "load_paude_file", "load_session", "load_yaml_model",
           "save_paude_file", "session_from"]


# ---------------------------------------------------------------- paude.yaml


def inside_repository(path: Path, root: Path) -> None:
    """Refuse a repository file that is a symlink leading out of the repository: the agent
    can commit such links, and paude must not read host files through them."""
    if not path.is_symlink():
        return
    try:
        target: Path | None = path.resolve()
    except (RuntimeError, OSError):  # a symlink loop (Python 3.11 raises RuntimeError)
        target = None
    if target is None or not target.is_relative_to(root.resolve()):
        what = ("a symlink loop" if target is None
                else f"a symlink to {target}, outside the repository")
        raise ConfigError(str(path), [ConfigProblem(WHOLE_FILE, f"is {what}")],
                          hint="replace the link with the file itself")


def line_in(path: Path, loc: tuple[str | int, ...]) -> int | None:
    """The line of a field in a YAML file (None when it cannot be told)."""
    try:
        return _line_of(load_yaml(path.read_text(encoding="utf-8"))[0], loc)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def load_paude_file(path: Path) -> PaudeFile:
    """Parse and validate paude.yaml; problems become a ConfigError with field paths and lines."""
    inside_repository(path, path.parent)
    return load_yaml_model(path, PaudeFile, top="version, state, defaults and sessions",
                           missing_hint="run `paude create NAME` to define a session")


M = TypeVar("M", bound=BaseModel)


def load_yaml_model(path: Path, model: type[M], *, top: str, missing_hint: str,
                    what: str = "session definition", hint: str | None = None) -> M:
    """Parse a YAML file into `model`; every problem carries its field path and line."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(name, [ConfigProblem(WHOLE_FILE, "file not found")],
                          hint=missing_hint) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(name, [ConfigProblem(WHOLE_FILE, f"cannot read: {exc}")]) from None
    try:
        root, data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark is not None else None
        kind = "unusable YAML" if isinstance(exc, TooComplex) else "YAML syntax"
        raise ConfigError(
            name, [ConfigProblem(WHOLE_FILE, f"{kind}: {problem}", line)], what=what, hint=hint,
        ) from None
    if data is None:
        return model()
    if not isinstance(data, dict):
        raise ConfigError(name, [ConfigProblem("(top level)", f"expected a mapping with {top}",
                                               1)], what=what, hint=hint)
    problems = list(duplicate_keys(root))
    try:
        parsed = model.model_validate(data)
    except ValidationError as exc:
        problems += [_problem(err, root, model) for err in exc.errors()]
    if problems:
        raise ConfigError(name, problems, what=what, hint=hint)
    return parsed


def duplicate_keys(
    node: yaml.Node | None, path: Loc = (), seen_nodes: set[int] | None = None
) -> Iterator[ConfigProblem]:
    """Repeated keys: YAML keeps the last silently, but a reviewer reads the first."""
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if id(node) in seen_nodes:  # aliases share nodes and may even be recursive
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    yield ConfigProblem(
                        dotted((*path, key.value)), "duplicate key: remove one of them",
                        key.start_mark.line + 1,
                    )
                seen.add(key.value)
                yield from duplicate_keys(value, (*path, key.value), seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from duplicate_keys(item, (*path, index), seen_nodes)


def _line_of(root: yaml.Node | None, loc: Loc) -> int | None:
    """Line of the deepest node on `loc` (the key's line for mapping entries)."""
    if root is None:
        return None
    node: yaml.Node = root
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            entry = next(
                ((k, v) for k, v in node.value
                 if isinstance(k, yaml.ScalarNode) and k.value == str(part)),
                None,
            )
            if entry is None:
                break
            line, node = entry[0].start_mark.line + 1, entry[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _problem(err: ErrorDetails, root: yaml.Node | None, model: type[BaseModel]) -> ConfigProblem:
    loc = entry_loc(tuple(err["loc"]))
    error = (err.get("ctx") or {}).get("error")
    if isinstance(error, EgressError):
        # Rules that contradict one another: point at the entry, not the whole session.
        loc = (*loc, *error.loc)
        return ConfigProblem(dotted(loc), error.detail, _line_of(root, loc))
    return ConfigProblem(dotted(loc), message(err, model), _line_of(root, loc))


def save_paude_file(path: Path, file: PaudeFile) -> None:
    """Write paude.yaml atomically, omitting unset and null fields."""
    write_atomic(path, dump_paude_file(file))


def dump_paude_file(file: PaudeFile) -> str:
    """paude.yaml's text for a definition, omitting unset and null fields."""
    def dump(model: BaseModel) -> dict[str, Any]:
        return model.model_dump(mode="json", exclude_unset=True, exclude_none=True)

    # Each part is dumped on its own so a sessions dict filled in place after loading
    # (never marked "set" at the top) is still written.
    data: dict[str, Any] = {"version": file.version}
    for key, part in (("state", dump(file.state)), ("defaults", dump(file.defaults))):
        if part:
            data[key] = part
    data["sessions"] = {name: dump(spec) for name, spec in file.sessions.items()}
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False,
                     allow_unicode=True)


class _Dumper(yaml.SafeDumper):
    """PyYAML writes NEL, LS and PS (line breaks to YAML) raw into quoted scalars, where
    reading folds them into spaces: such strings are written double-quoted, escaped."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    breaks = any(c in value for c in "\x85\u2028\u2029")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"' if breaks else None)


_Dumper.add_representer(str, _str)


def write_atomic(path: Path, text: str) -> None:
    """Write a repository file via a temp file and os.replace, so readers never see half a
    file. The temp file is new (O_EXCL, a random name): the agent can commit a symlink
    under any predictable name beside paude.yaml, and writing through it would land outside
    the repository; os.replace then replaces a link at `path` itself, never its target."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # 0o666 lets the umask decide, as for any file the user creates; an existing
    # file keeps its mode.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_session(root: Path, name: str) -> tuple[Session, list[str]]:
    """The effective Session NAME from root/paude.yaml and any image source, plus warnings."""
    return session_from(load_paude_file(root / PAUDE_FILE), root, name)


def _check_merged_egress(file: PaudeFile, root: Path, name: str) -> None:
    """Rules from two layers (an allowlist under defaults, denies under the session) can
    contradict each other although each layer is consistent: report the culprit entry."""
    spec = file.sessions[name]
    layers = {field: (f"sessions.{name}", getattr(spec, field))
              if getattr(spec, field) is not None else ("defaults", getattr(file.defaults, field))
              for field in ("allowed_domains", "denied_requests")}
    entries = layers["allowed_domains"][1]
    try:
        domains.expand(list(DEFAULT_ALLOWED_DOMAINS) if entries is None else entries,
                       layers["denied_requests"][1] or [])
    except EgressError as exc:
        field = str(exc.loc[0])
        prefix = tuple(layers.get(field, ("defaults",))[0].split("."))
        loc = (*prefix, *exc.loc)
        raise ConfigError(PAUDE_FILE, [ConfigProblem(
            dotted(loc), exc.detail, line_in(root / PAUDE_FILE, loc))]) from None


def session_from(file: PaudeFile, root: Path, name: str) -> tuple[Session, list[str]]:
    """The effective Session NAME of a parsed definition, with root's image sources and
    this machine's settings."""
    from paude import machine  # machine settings parse with this module's loader

    settings = machine.load()
    agent = settings.agent.model_dump(exclude_none=True)
    bases = functools.partial(resolve, default_base=settings.default_base,
                              proxy_base=settings.proxy_base,
                              machine_agent=AgentConfig(**agent) if agent else None,
                              machine_cas=settings.ca_files())
    spec = file.sessions.get(name)
    if spec is None:
        return bases(file, name), []  # raises SessionNotFoundError
    _check_merged_egress(file, root, name)
    warnings = [f"paude.yaml: {where}.proxy.base is ignored: the proxy guards the agent's "
                f"egress, so its image comes from this machine ({machine.machine_file()} "
                "proxy.base)" for where, layer in (("defaults", file.defaults),
                                                   (f"sessions.{name}", spec))
                if layer.proxy is not None and layer.proxy.base is not None]
    if file.defaults.image is not None or spec.image is not None:
        unused = [s for s in IMAGE_SOURCES if (root / s).is_file()][:1]
        warnings += [f"{s}: not used: paude.yaml sets `image`" for s in unused]
        return bases(file, name), warnings
    found = load_image_source(root)
    if found is None:
        return bases(file, name), warnings
    return (bases(file, name, image_fallback=found.image, image_source=found.source,
                  setup_fallback=found.setup),
            warnings + found.warnings)
