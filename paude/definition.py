"""Writing a session into paude.yaml from `paude create` flags, keeping the file's comments."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from paude import locks
from paude.config import (
    PAUDE_FILE,
    dump_paude_file,
    duplicate_keys,
    load_paude_file,
    write_atomic,
)
from paude.errors import ConfigError, ConfigProblem
from paude.home import paude_home
from paude.limits import load_yaml
from paude.models import PaudeFile, SessionSpec


@dataclass(frozen=True)
class CreateFlags:
    """The definition flags of `paude create`; None means "not given"."""

    yolo: bool | None = None
    backend: str | None = None
    allowed_domains: tuple[str, ...] | None = None
    args: str | None = None
    pvc_size: str | None = None
    storage_class: str | None = None
    openshift_context: str | None = None
    openshift_namespace: str | None = None
    platform: str | None = None

    def spec_data(self) -> dict[str, Any]:
        """The session fields these flags set, in paude.yaml's shape."""
        data: dict[str, Any] = {}
        if self.yolo:
            data["yolo"] = True
        if self.backend is not None:
            data["backend"] = self.backend
        if self.allowed_domains:
            data["allowed_domains"] = list(self.allowed_domains)
        if self.args is not None:
            data["agent"] = {"args": self.args}
        openshift = {k: v for k, v in (("pvc_size", self.pvc_size),
                                       ("storage_class", self.storage_class),
                                       ("context", self.openshift_context),
                                       ("namespace", self.openshift_namespace))
                     if v is not None}
        if openshift:
            data["openshift"] = openshift
        if self.platform is not None:
            data["image"] = {"platform": self.platform}
        return data


_FLAG_OF = {"yolo": "--yolo", "backend": "--backend", "allowed_domains": "--allowed-domains",
            "agent": "--args", "openshift": "--pvc-size/--storage-class/--openshift-context/"
            "--openshift-namespace", "image": "--platform"}


@dataclass(frozen=True)
class Definition:
    """The paude.yaml a create would leave, and whether it differs from the current one."""

    path: Path
    file: PaudeFile
    text: str  # the new file's text
    previous: str | None  # the current file's text (None: no file yet)
    new_session: bool
    entry: str | None = None  # the one line added under `sessions:`, when added as a line

    @property
    def changed(self) -> bool:
        """True when the file on disk must be written."""
        return self.text != self.previous


def plan_definition(root: Path, name: str, flags: CreateFlags) -> Definition:
    """Work out paude.yaml with sessions.NAME from the flags; refuse conflicting flags.

    Nothing is written: see write_definition."""
    path = root / PAUDE_FILE
    previous = path.read_text(encoding="utf-8") if path.exists() else None
    file = load_paude_file(path) if previous is not None else PaudeFile()
    wanted = flags.spec_data()
    spec = _validated(wanted, path)
    existing = file.sessions.get(name)
    if existing is not None:
        _refuse_conflicts(name, existing, spec, path)
        return Definition(path, file, previous or "", previous, False)
    new_file = file.model_copy(update={"sessions": {**file.sessions, name: spec}})
    inserted = _insert_session(previous, name, wanted) if previous else None
    text, entry = inserted if inserted is not None else (None, None)
    if text is None or not _equivalent(text, new_file):
        text, entry = dump_paude_file(new_file), None
    return Definition(path, new_file, text, previous, True, entry)


def commit_definition(root: Path, name: str, flags: CreateFlags) -> Definition:
    """Plan paude.yaml again from the file as it is now and write it, alone among paude
    processes: two creates of different sessions in one repository both keep their entry
    (each reads the file the other wrote instead of the one it saw at its start)."""
    with locks.serialized(paude_home(), _lock_key(root)):
        definition = plan_definition(root, name, flags)
        if definition.changed:
            _write(definition.path, definition.text)
        return definition


def restore(definition: Definition, name: str) -> None:
    """Take back what commit_definition wrote (a failed create): the file as it was when
    nobody wrote it since, else only this session's entry, so a session another create
    added meanwhile stays."""
    if not definition.changed:
        return
    with locks.serialized(paude_home(), _lock_key(definition.path.parent)):
        try:
            current = definition.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        if current == definition.text:
            if definition.previous is None:
                definition.path.unlink(missing_ok=True)
            else:
                _write(definition.path, definition.previous)
            return
        lines = current.splitlines(keepends=True)
        mine = [i for i, line in enumerate(lines) if line.rstrip("\n") == definition.entry]
        if definition.entry is not None and len(mine) == 1:
            del lines[mine[0]]
            _write(definition.path, "".join(lines))
            return
        # Rewritten meanwhile in a way this create cannot undo line by line: drop the entry
        # through the model (the file's comments go; every other session stays).
        file = load_paude_file(definition.path)
        if name in file.sessions:
            kept = {k: v for k, v in file.sessions.items() if k != name}
            _write(definition.path, dump_paude_file(file.model_copy(update={"sessions": kept})))


def replace_text(path: Path, previous: str, text: str) -> None:
    """Write paude.yaml's new text, alone among paude processes, refusing when the file
    changed since it was read (another edit would otherwise be lost)."""
    with locks.serialized(paude_home(), _lock_key(path.parent)):
        if path.read_text(encoding="utf-8") != previous:
            raise ConfigError(str(path), [ConfigProblem(
                "(whole file)", "changed while paude was editing it")],
                hint="run the command again")
        _write(path, text)


def restore_text(path: Path, written: str, previous: str) -> None:
    """Take back replace_text (a failed or refused apply), unless the file was changed
    again since."""
    with locks.serialized(paude_home(), _lock_key(path.parent)):
        try:
            if path.read_text(encoding="utf-8") == written:
                _write(path, previous)
        except FileNotFoundError:
            return


def _lock_key(root: Path) -> str:
    return f"paude.yaml:{root.resolve()}"


def _write(path: Path, text: str) -> None:
    write_atomic(path, text)


def _validated(data: dict[str, Any], path: Path) -> SessionSpec:
    try:
        return SessionSpec.model_validate(data)
    except ValidationError as exc:
        problems = [ConfigProblem(_FLAG_OF.get(str(e["loc"][0]), str(e["loc"][0])),
                                  str(e["msg"])) for e in exc.errors()]
        raise ConfigError("command line", problems,
                          hint="fix the flag; `paude create --help` lists them") from None


def _refuse_conflicts(name: str, existing: SessionSpec, wanted: SessionSpec, path: Path) -> None:
    problems = []
    for field in wanted.model_fields_set:
        have, want = getattr(existing, field), getattr(wanted, field)
        if have is None and field == "yolo" and want is False:
            continue
        if _plain(have) != _plain(want):
            problems.append(ConfigProblem(
                f"sessions.{name}.{field}",
                f"paude.yaml has {_plain(have)!r}; {_FLAG_OF.get(field, field)} asks for "
                f"{_plain(want)!r}"))
    if problems:
        raise ConfigError(str(path), problems, hint=(
            f"session {name} already exists with other settings: edit paude.yaml and run "
            f"`paude plan {name}` then `paude apply {name}`, or create under another name"))


def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(exclude_unset=True, exclude_none=True)
    return value


def _insert_session(text: str, name: str, data: dict[str, Any]) -> tuple[str, str] | None:
    # Add one line under `sessions:` so the rest of the file (and its comments) stays
    # exactly as the team wrote and reviewed it.
    entry = yaml.safe_dump({name: data}, default_flow_style=True, sort_keys=False,
                           width=1 << 20).strip()
    entry = entry[1:-1] if entry.startswith("{") else entry  # {name: {...}} -> name: {...}
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^sessions:\s*(#.*)?$", line):
            indent = "  "
            for following in lines[i + 1:]:
                if following.strip() and not following.lstrip().startswith("#"):
                    match = re.match(r"^(\s+)", following)
                    indent = match.group(1) if match else indent
                    break
            lines.insert(i + 1, f"{indent}{entry}")
            return "\n".join(lines) + "\n", f"{indent}{entry}"
        if re.match(r"^sessions:\s*\{\s*\}\s*$", line):
            lines[i] = f"sessions:\n  {entry}"
            return "\n".join(lines) + "\n", f"  {entry}"
    if not any(line.startswith("sessions:") for line in lines):
        return text.rstrip("\n") + f"\nsessions:\n  {entry}\n", f"  {entry}"
    return None


def _equivalent(text: str, file: PaudeFile) -> bool:
    # Read as paude reads paude.yaml: a line added beside a key spelled another way
    # ("sessions": {}) would be a duplicate key, which YAML keeps silently but paude refuses.
    try:
        root, data = load_yaml(text)
        if list(duplicate_keys(root)):
            return False
        parsed = PaudeFile.model_validate(data or {})
    except (ValidationError, yaml.YAMLError):
        return False
    return parsed.model_dump() == file.model_dump()
