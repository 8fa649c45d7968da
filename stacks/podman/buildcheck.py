"""Checks on a repository's own Dockerfile and build context before anything is built.

The agent can write both. podman reads the context straight from the host's disk, so a
symlink in it, a Dockerfile reached through one, an `ADD URL` (fetched by podman itself,
outside the build sandbox) or a `RUN --mount` (which binds paths into a build step) would
each reach past the repository or the build proxy. They are refused with the file and line."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from paude.errors import ConfigError, ConfigProblem

_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|git@)", re.I)
_HEREDOC = re.compile(r"<<-?\s*[\"']?([A-Za-z_][A-Za-z0-9_]*)[\"']?")
_FIX = "move the build step into the Dockerfile's RUN lines, which the build proxy filters"


def inside(root: Path, path: Path, field: str, source: str) -> Path:
    """`path` with every symlink resolved, refused unless it stays inside the repository."""
    try:
        resolved = path.resolve()
    except (RuntimeError, OSError):  # a symlink loop (Python 3.11 raises RuntimeError)
        raise ConfigError(source, [ConfigProblem(field, f"{path} is a symlink loop")],
                          hint="replace the link with the file itself") from None
    if not resolved.is_relative_to(root.resolve()):
        raise ConfigError(source, [ConfigProblem(
            field, f"{path.relative_to(root) if path.is_relative_to(root) else path} resolves "
            f"to {resolved}, outside the repository")],
            hint="build inputs must be files of the repository itself; replace the symlink "
                 "with the file (the agent can commit symlinks that point anywhere)")
    return resolved


def escaping_links(context: Path, root: Path, ignored: Callable[[str], bool]) -> list[str]:
    """Symlinks of the build context that resolve outside the repository (ignored files
    excepted: podman never reads them)."""
    found = []
    top = root.resolve()
    for folder, dirs, files in os.walk(context):
        base = Path(folder)
        for name in [*dirs, *files]:
            path = base / name
            rel = path.relative_to(context).as_posix()
            if rel.split("/", 1)[0] == ".git" or ignored(rel) or not path.is_symlink():
                continue
            try:
                escapes = not path.resolve().is_relative_to(top)
            except (RuntimeError, OSError):  # a loop: podman cannot copy it either
                escapes = True
            if escapes:
                found.append(f"{rel} -> {os.readlink(path)}")
        dirs[:] = [d for d in dirs if not (base / d).is_symlink()]
    return sorted(found)


def dockerfile_problems(text: str) -> list[ConfigProblem]:
    """Instructions the build sandbox cannot contain, each with its line."""
    problems = []
    for line, instruction, args in _instructions(text):
        problems += [ConfigProblem(f"{instruction} (line {line})", message, line)
                     for message in _check(instruction, args)]
    return problems


def _check(instruction: str, args: list[str]) -> Iterator[str]:
    if instruction == "ONBUILD" and args:
        yield from _check(args[0].upper(), args[1:])
        return
    flags = [a for a in args if a.startswith("--")]
    words = [a for a in args if not a.startswith("--")]
    if instruction == "RUN" and flags:
        yield (f"RUN {flags[0].split('=', 1)[0]} is not allowed: mounts bind host or cache "
               f"paths into the build; {_FIX}")
    if instruction in ("ADD", "COPY") and not any(f.startswith("--from") for f in flags):
        sources = words[:-1] if words and not words[0].startswith("[") else []
        for source in sources:
            if instruction == "ADD" and _URL.match(source):
                yield (f"ADD {source}: podman fetches it itself, with the host's network and "
                       f"outside the build proxy; {_FIX} (e.g. RUN curl -fsSLO URL)")
            elif source.startswith("/") or ".." in source.split("/"):
                yield (f"{instruction} {source}: sources are files of the build context, "
                       "named relative to it, without '..'")


def _instructions(text: str) -> Iterator[tuple[int, str, list[str]]]:
    """(line, INSTRUCTION, words) with continuations joined and heredoc bodies skipped."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        start = index
        raw = lines[index].strip()
        index += 1
        if not raw or raw.startswith("#"):
            continue
        parts = [raw]
        while parts[-1].endswith("\\") and index < len(lines):
            parts[-1] = parts[-1][:-1]
            following = lines[index].strip()
            index += 1
            if not following.startswith("#"):
                parts.append(following)
        joined = " ".join(parts)
        for delimiter in _HEREDOC.findall(joined):
            while index < len(lines) and lines[index].strip() != delimiter:
                index += 1
            index += 1
        words = joined.split()
        if words:  # a lone `\` before a comment line continues into nothing
            yield start + 1, words[0].upper(), words[1:]
