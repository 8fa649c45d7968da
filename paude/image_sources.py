"""Image settings from paude.json or devcontainer.json, with the seed's properties.

Properties paude controls for security (mounts, runArgs, privileged, ...) are ignored with
a visible warning; JSONC (comments, trailing commas) is accepted."""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from paude.errors import ConfigError, ConfigProblem
from paude.limits import MAX_DEPTH, json_problem
from paude.models import ImageConfig
from paude.sections import WorkspaceSetup
from paude.validation import dotted, message

IMAGE_SOURCES = ("paude.json", ".devcontainer/devcontainer.json", ".devcontainer.json")

# Properties that would widen what the container may do; paude sets them itself.
SECURITY_PROPERTIES = frozenset(
    {"mounts", "runArgs", "privileged", "capAdd", "forwardPorts", "remoteUser",
     "securityOpt", "init", "appPort"}
)
# Commands the devcontainer spec runs on the host, before any container exists. paude
# never runs repository content on the host: ignored, and the warning says why.
HOST_COMMANDS = frozenset({"initializeCommand"})
# Purely descriptive properties that are not worth a warning.
_SILENT_PROPERTIES = frozenset({"$schema", "name"})
WHOLE_FILE = "(file)"  # a problem with a whole file, not one field


def _strip_jsonc(text: str) -> str:
    """Remove // and /* */ comments and trailing commas outside strings (JSONC -> JSON).

    One pass, in time linear in the text (the agent writes these files: no input may make
    reading them slow). Comments become spaces, newlines kept, so error lines stay right."""
    out: list[str] = []
    comma: int | None = None  # index in `out` of a comma followed so far only by blanks
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char == '"':
            j = i + 1
            while j < n and text[j] not in '"\n':
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n) if j < n and text[j] == '"' else min(j, n)
            out.append(text[i:j])  # an unterminated string is left for json to report
            comma, i = None, j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:  # never closed: so is no later comment; json reports the error
                out.append(text[i:])
                break
            out.append("".join(c if c == "\n" else " " for c in text[i:j + 2]))
            i = j + 2
        else:
            if char in "}]" and comma is not None:
                out[comma] = " "
            if char == ",":
                comma = len(out)
            elif not char.isspace():
                comma = None
            out.append(char)
            i += 1
    return "".join(out)


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
        self.setup_fields: dict[str, Any] = {}  # WorkspaceSetup's
        self.problems: list[ConfigProblem] = []
        self.warnings: list[str] = []

    def line(self, prop: str, entry: str | None = None) -> int | None:
        """Line of the first `"prop":`, or of the first `"entry":` after it (close enough to
        point the user at it)."""
        key = prop.rsplit(".", 1)[-1]
        match = re.search(rf'"{re.escape(key)}"\s*:', self.text)
        if match and entry is not None:
            match = re.compile(rf'"{re.escape(entry)}"\s*:').search(
                self.text, match.end()) or match
        return self.text.count("\n", 0, match.start()) + 1 if match else None

    def problem(self, prop: str, message: str) -> None:
        self.problems.append(ConfigProblem(prop, message, self.line(prop)))

    def take(self, field: str, prop: str, value: Any) -> None:
        if field in self.fields:
            self.problem(prop, f"set only one of {self.origin[field]!r} and {prop!r}")
        self.fields[field], self.origin[field] = value, prop

    def take_setup(self, field: str, prop: str, value: Any) -> None:
        if field in self.setup_fields:
            self.problem(prop, f"set only one of {self.origin['setup.' + field]!r} and {prop!r}")
        self.setup_fields[field], self.origin["setup." + field] = value, prop

    def workspace_setup(self) -> WorkspaceSetup | None:
        """setup / postCreateCommand and venv, validated; None when the file sets neither."""
        if not self.setup_fields:
            return None
        try:
            return WorkspaceSetup.model_validate(self.setup_fields)
        except ValidationError as exc:
            for err in exc.errors():
                loc = tuple(err["loc"])
                prop = self.origin.get("setup." + str(loc[0]), str(loc[0]))
                self.problems.append(ConfigProblem(
                    dotted((prop, *loc[1:])), message(err, WorkspaceSetup), self.line(prop)))
        return None

    def property(self, key: str, value: Any) -> None:
        if key in ("image", "base"):
            self.take("base", key, value)
        elif key in ("setup", "postCreateCommand"):
            command = _command(value)
            if command is None:
                self.problem(key, "expected a string, a list of strings or an object of commands")
            elif command:
                # The seed's meaning: run once the code is there, not at image build.
                self.take_setup("setup", key, command)
        elif key == "venv":
            self.take_setup("venv", key, value)
        elif key == "features" and isinstance(value, dict):
            # A local feature's path is relative to the json file's folder ("./NAME"); paude
            # names it from the repository root, written "./PATH" too.
            self.take(key, key, {("./" + _rebase(self.folder, k[2:]) if k.startswith("./")
                                  else k): v for k, v in value.items()})
        elif key in ("packages", "features"):
            self.take(key, key, value)
        elif key == "containerEnv":
            self.take("env", key, value)
        elif key == "build":
            self.build(value)
        elif key in HOST_COMMANDS:
            self.warnings.append(
                f"{self.source}: {key!r} is ignored: the devcontainer spec runs it on the host, "
                "and paude never runs the repository's commands on the host (use setup or "
                "postCreateCommand: they run in the session)")
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
                entry = str(loc[1]) if len(loc) > 1 and isinstance(loc[1], str) else None
                self.problems.append(ConfigProblem(
                    dotted((prop, *loc[1:])), message(err, ImageConfig), self.line(prop, entry)))
        if self.problems or image is None:
            raise ConfigError(self.source, self.problems)
        return image


@dataclass(frozen=True)
class ImageSource:
    """What paude.json or devcontainer.json says."""

    image: ImageConfig
    source: str  # the file, relative to the repository
    warnings: list[str]
    setup: WorkspaceSetup | None  # setup / postCreateCommand and venv


def load_image_source(root: Path) -> ImageSource | None:
    """Image and workspace settings from paude.json or devcontainer.json, with warnings;
    None if neither file exists."""
    source = next((s for s in IMAGE_SOURCES if (root / s).is_file()), None)
    if source is None:
        return None
    from paude.config import inside_repository  # config imports this module

    inside_repository(root / source, root)
    try:
        text = (root / source).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [ConfigProblem(WHOLE_FILE, f"cannot read: {exc}")]) from None
    data: Any = None
    try:
        data = json.loads(_strip_jsonc(text))
        unusable = json_problem(data)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            source, [ConfigProblem(WHOLE_FILE, f"invalid JSON: {exc.msg}", exc.lineno)]
        ) from None
    except RecursionError:
        unusable = f"nested more than {MAX_DEPTH} levels deep"
    if unusable:
        # Validation and serialisation walk the data recursively, so depth is bounded here.
        raise ConfigError(source, [ConfigProblem(WHOLE_FILE, f"unusable JSON: {unusable}")])
    if not isinstance(data, dict):
        raise ConfigError(source, [ConfigProblem("(top level)", "expected a JSON object", 1)])
    collected = _JsonImage(source, text)
    for key, value in data.items():
        collected.property(key, value)
    setup = collected.workspace_setup()
    return ImageSource(collected.image(), source, collected.warnings, setup)
