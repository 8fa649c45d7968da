"""Image settings from paude.json or devcontainer.json, with the seed's properties.

Properties paude controls for security (mounts, runArgs, privileged, ...) are ignored with
a visible warning; JSONC (comments, trailing commas) is accepted."""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from paude.errors import ConfigError, ConfigProblem
from paude.models import ImageConfig
from paude.validation import dotted, message

IMAGE_SOURCES = ("paude.json", ".devcontainer/devcontainer.json", ".devcontainer.json")

# Properties that would widen what the container may do; paude sets them itself.
SECURITY_PROPERTIES = frozenset(
    {"mounts", "runArgs", "privileged", "capAdd", "forwardPorts", "remoteUser",
     "securityOpt", "init", "appPort"}
)
# Purely descriptive properties that are not worth a warning.
_SILENT_PROPERTIES = frozenset({"$schema", "name"})
WHOLE_FILE = "(file)"  # a problem with a whole file, not one field


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
                    dotted((prop, *loc[1:])), message(err, ImageConfig), self.line(prop)))
        if self.problems or image is None:
            raise ConfigError(self.source, self.problems)
        return image


def load_image_source(root: Path) -> tuple[ImageConfig, str, list[str]] | None:
    """Image settings from paude.json or devcontainer.json, with warnings; None if neither."""
    source = next((s for s in IMAGE_SOURCES if (root / s).is_file()), None)
    if source is None:
        return None
    from paude.config import inside_repository  # config imports this module

    inside_repository(root / source, root)
    try:
        text = (root / source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [ConfigProblem(WHOLE_FILE, f"cannot read: {exc}")]) from None
    try:
        data = json.loads(_strip_jsonc(text))
    except json.JSONDecodeError as exc:
        raise ConfigError(
            source, [ConfigProblem(WHOLE_FILE, f"invalid JSON: {exc.msg}", exc.lineno)]
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigProblem("(top level)", "expected a JSON object", 1)])
    collected = _JsonImage(source, text)
    for key, value in data.items():
        collected.property(key, value)
    return collected.image(), source, collected.warnings
