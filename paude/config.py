"""Reading and writing paude.yaml, and the paude.json / devcontainer.json image sources."""

from __future__ import annotations

import difflib
import json
import os
import posixpath
import re
import secrets
import shlex
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from paude.errors import ConfigError, ConfigProblem
from paude.models import ImageConfig, PaudeFile, Session, SessionSpec, resolve

PAUDE_FILE = "paude.yaml"
IMAGE_SOURCES = ("paude.json", ".devcontainer/devcontainer.json", ".devcontainer.json")

# Properties that would widen what the container may do; paude sets them itself.
SECURITY_PROPERTIES = frozenset(
    {"mounts", "runArgs", "privileged", "capAdd", "forwardPorts", "remoteUser",
     "securityOpt", "init", "appPort"}
)
# Purely descriptive properties that are not worth a warning.
_SILENT_PROPERTIES = frozenset({"$schema", "name"})
_WHOLE_FILE = "(file)"
_LocPart = int | str
_Loc = tuple[_LocPart, ...]


def find_project_root(start: Path) -> Path:
    """Nearest ancestor holding paude.yaml, else the git top-level, else start."""
    start = start.absolute()
    for folder in (start, *start.parents):
        if (folder / PAUDE_FILE).is_file():
            return folder
        # A paude.yaml above the repository belongs to someone else (a shared /tmp,
        # a home folder): it must not silently define this repository's sessions.
        if (folder / ".git").exists():
            return folder
    return start


# ---------------------------------------------------------------- paude.yaml


def load_paude_file(path: Path) -> PaudeFile:
    """Parse and validate paude.yaml; problems become a ConfigError with field paths and lines."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            name, [ConfigProblem(_WHOLE_FILE, "file not found")],
            hint="run `paude create NAME` to define a session",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(name, [ConfigProblem(_WHOLE_FILE, f"cannot read: {exc}")]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(
            name, [ConfigProblem(_WHOLE_FILE, f"YAML syntax: {problem}", line)]
        ) from None
    if data is None:
        return PaudeFile()
    if not isinstance(data, dict):
        raise ConfigError(name, [ConfigProblem(
            "(top level)", "expected a mapping with version, state, defaults and sessions", 1)])
    problems = list(_duplicate_keys(root, ()))
    try:
        parsed = PaudeFile.model_validate(data)
    except ValidationError as exc:
        problems += [_problem(err, root) for err in exc.errors()]
    if problems:
        raise ConfigError(name, problems)
    return parsed


def _duplicate_keys(
    node: yaml.Node | None, path: _Loc, seen_nodes: set[int] | None = None
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
                        _dotted((*path, key.value)), "duplicate key: remove one of them",
                        key.start_mark.line + 1,
                    )
                seen.add(key.value)
                yield from _duplicate_keys(value, (*path, key.value), seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*path, index), seen_nodes)


def _dotted(loc: _Loc) -> str:
    parts = [str(p) for p in loc if p != "[key]"]
    return ".".join(parts) if parts else "(top level)"


def _line_of(root: yaml.Node | None, loc: _Loc) -> int | None:
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


def _unwrap(tp: Any) -> Any:
    """Strip Annotated[...] and `| None` from a field annotation."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
            continue
        if origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp


def _model_at(root: type[BaseModel], loc: _Loc) -> type[BaseModel] | None:
    """The model class that validates the value at `loc`, if any."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) is list:
            tp = get_args(tp)[0]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


_TYPE_MESSAGES = {
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list, e.g. [a, b]",
    "dict_type": "expected a mapping of keys to values",
    "model_type": "expected a mapping of keys to values",
    "model_attributes_type": "expected a mapping of keys to values",
    "missing": "required field is missing",
}


def _message(err: ErrorDetails, root_model: type[BaseModel]) -> str:
    """A readable message for one pydantic error; never echoes the input (it may be a secret)."""
    kind = err["type"]
    loc = tuple(err["loc"])
    if kind == "extra_forbidden" and loc:
        field = str(loc[-1])
        model = _model_at(root_model, loc[:-1])
        message = f"unknown field {field!r}"
        known = list(model.model_fields) if model else []
        close = difflib.get_close_matches(field, known, n=1, cutoff=0.6)
        if close:
            message += f"; did you mean {close[0]!r}?"
        elif model is PaudeFile and field in SessionSpec.model_fields:
            message += "; session settings go under `defaults:` or `sessions.NAME:`"
        return message
    if kind == "bool_type" and isinstance(err.get("input"), str):
        return "expected true or false (without quotes)"
    if kind == "string_type" and isinstance(err.get("input"), int | float):
        return "expected a string: put numbers in quotes"
    if kind in _TYPE_MESSAGES:
        return _TYPE_MESSAGES[kind]
    message = err["msg"].removeprefix("Value error, ")
    return message.replace("Input should be", "must be")


def _problem(err: ErrorDetails, root: yaml.Node | None) -> ConfigProblem:
    loc = tuple(err["loc"])
    return ConfigProblem(_dotted(loc), _message(err, PaudeFile), _line_of(root, loc))


def save_paude_file(path: Path, file: PaudeFile) -> None:
    """Write paude.yaml atomically, omitting unset and null fields."""
    _write_atomic(path, dump_paude_file(file))


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
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)


def _write_atomic(path: Path, text: str) -> None:
    """Write via a temp file and os.replace so readers never see half a file."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # 0o666 lets the umask decide, as for any file the user creates; an existing
    # file keeps its mode.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
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


# ---------------------------------------------- paude.json / devcontainer.json


_JSON_STRING = r'"(?:\\.|[^"\\\n])*"'
# Strings are matched first so that '//' or ',}' inside a string is left alone.
_JSONC_COMMENT_RE = re.compile(rf"{_JSON_STRING}|//[^\n]*|/\*.*?\*/", re.S)
_JSONC_TRAILING_COMMA_RE = re.compile(rf"{_JSON_STRING}|,(?=\s*[}}\]])")


def _blank(match: re.Match[str]) -> str:
    """Keep strings; blank anything else but its newlines, so error lines stay right."""
    found = match.group()
    return found if found.startswith('"') else re.sub(r"[^\n]", " ", found)


def _strip_jsonc(text: str) -> str:
    """Remove // and /* */ comments and trailing commas outside strings (JSONC -> JSON)."""
    text = _JSONC_COMMENT_RE.sub(_blank, text)
    return _JSONC_TRAILING_COMMA_RE.sub(_blank, text)


def _command(value: Any) -> str | None:
    """setup / postCreateCommand as one shell command; None when the shape is wrong."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        # The array form is one command with its arguments, not a shell line.
        return shlex.join(value)
    if isinstance(value, dict):
        parts = [_command(v) if not isinstance(v, dict) else None for v in value.values()]
        if all(p is not None for p in parts):
            return " && ".join(p for p in parts if p)
    return None


def _rebase(folder: str, value: Any) -> Any:
    """A path relative to the json file's folder, made relative to the repository root."""
    if not isinstance(value, str) or not value or posixpath.isabs(value):
        return value  # validation reports it
    return posixpath.normpath(posixpath.join(folder, value))


class _JsonImage:
    """Collects ImageConfig fields from a json file, remembering where each came from."""

    def __init__(self, source: str, text: str) -> None:
        self.source = source
        self.text = text
        self.folder = posixpath.dirname(source) or "."
        self.fields: dict[str, Any] = {}
        self.origin: dict[str, str] = {}  # ImageConfig field -> json property, for errors
        self.problems: list[ConfigProblem] = []
        self.warnings: list[str] = []

    def line(self, prop: str) -> int | None:
        """Line of the first `"prop":` (close enough to point the user at it)."""
        key = prop.rsplit(".", 1)[-1]
        match = re.search(rf'"{re.escape(key)}"\s*:', self.text)
        return self.text.count("\n", 0, match.start()) + 1 if match else None

    def problem(self, prop: str, message: str) -> None:
        self.problems.append(ConfigProblem(prop, message, self.line(prop)))

    def take(self, field: str, prop: str, value: Any) -> None:
        if field in self.fields:
            self.problem(prop, f"set only one of {self.origin[field]!r} and {prop!r}")
        self.fields[field], self.origin[field] = value, prop

    def property(self, key: str, value: Any) -> None:
        if key in ("image", "base"):
            self.take("base", key, value)
        elif key in ("setup", "postCreateCommand"):
            command = _command(value)
            if command is None:
                self.problem(key, "expected a string, a list of strings or an object of commands")
            elif command:
                self.take("setup", key, command)
        elif key in ("packages", "features", "venv"):
            self.take(key, key, value)
        elif key == "containerEnv":
            self.take("env", key, value)
        elif key == "build":
            self.build(value)
        elif key in SECURITY_PROPERTIES:
            self.warnings.append(
                f"{self.source}: {key!r} is ignored: paude controls container security settings")
        elif key not in _SILENT_PROPERTIES:
            self.warnings.append(f"{self.source}: {key!r} is not supported by paude and is ignored")

    def build(self, value: Any) -> None:
        if not isinstance(value, dict):
            self.problem("build", "expected an object")
            return
        for key, item in value.items():
            if key in ("dockerfile", "context"):
                self.take(key, f"build.{key}", _rebase(self.folder, item))
            elif key == "args":
                self.take("build_args", "build.args", item)
            else:
                # build.options in particular carries raw `docker build` flags.
                self.warnings.append(
                    f"{self.source}: 'build.{key}' is not supported by paude and is ignored")

    def image(self) -> ImageConfig:
        """Validate the collected fields; raise ConfigError naming json properties."""
        if "dockerfile" in self.fields and "context" not in self.fields:
            # The devcontainer default: build in the folder holding the json file.
            self.fields["context"], self.origin["context"] = self.folder, "build.dockerfile"
        image = None
        try:
            image = ImageConfig.model_validate(self.fields)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                prop = self.origin.get(str(loc[0]), str(loc[0])) if loc else "(top level)"
                self.problems.append(ConfigProblem(
                    _dotted((prop, *loc[1:])), _message(err, ImageConfig), self.line(prop)))
        if self.problems or image is None:
            raise ConfigError(self.source, self.problems)
        return image


def load_image_source(root: Path) -> tuple[ImageConfig, str, list[str]] | None:
    """Image settings from paude.json or devcontainer.json, with warnings; None if neither."""
    source = next((s for s in IMAGE_SOURCES if (root / s).is_file()), None)
    if source is None:
        return None
    try:
        text = (root / source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [ConfigProblem(_WHOLE_FILE, f"cannot read: {exc}")]) from None
    try:
        data = json.loads(_strip_jsonc(text))
    except json.JSONDecodeError as exc:
        raise ConfigError(
            source, [ConfigProblem(_WHOLE_FILE, f"invalid JSON: {exc.msg}", exc.lineno)]
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigProblem("(top level)", "expected a JSON object", 1)])
    collected = _JsonImage(source, text)
    for key, value in data.items():
        collected.property(key, value)
    return collected.image(), source, collected.warnings


def load_session(root: Path, name: str) -> tuple[Session, list[str]]:
    """The effective Session NAME from root/paude.yaml and any image source, plus warnings."""
    return session_from(load_paude_file(root / PAUDE_FILE), root, name)


def session_from(file: PaudeFile, root: Path, name: str) -> tuple[Session, list[str]]:
    """The effective Session NAME of a parsed definition, with root's image sources."""
    spec = file.sessions.get(name)
    if spec is None:
        return resolve(file, name), []  # raises SessionNotFoundError
    if file.defaults.image is not None or spec.image is not None:
        unused = [s for s in IMAGE_SOURCES if (root / s).is_file()][:1]
        warnings = [f"{s}: not used: paude.yaml sets `image`" for s in unused]
        return resolve(file, name), warnings
    found = load_image_source(root)
    if found is None:
        return resolve(file, name), []
    image, source, warnings = found
    return resolve(file, name, image_fallback=image, image_source=source), warnings
