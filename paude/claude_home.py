"""What of ~/.claude and ~/.claude.json seeds the agent's Claude Code state.

Copied by name from a short list (settings, memory, commands, agents, skills, output
styles) plus this repository's own history; never credentials (.credentials.json), other
projects' transcripts, the global prompt history, or symlinks. ~/.claude.json loses every
account, token and key field, MCP server definitions (they carry tokens in env/headers),
and every project entry but this repository's, which becomes /workspace's.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

WORKSPACE = "/workspace"
# Entries of ~/.claude that configure Claude Code and hold no credential.
CLAUDE_KEEP = ("settings.json", "CLAUDE.md", "commands", "agents", "skills", "output-styles")
_SECRET_KEY = re.compile(r"(?i)(oauth|token|api_?key|secret|password|credential|auth)")
_DROPPED_KEYS = {"mcpServers", "env", "headers"}


@dataclass(frozen=True)
class ClaudeSeed:
    """The filtered copies, ready to stage: files by path, ~/.claude.json as text."""

    files: tuple[tuple[str, Path], ...] = ()  # (path under .claude, host file)
    claude_json: str | None = field(default=None, repr=False)

    def describe(self) -> list[str]:
        """What is copied in, for plans."""
        tops = sorted({rel.split("/", 1)[0] for rel, _ in self.files})
        out = [f"~/.claude/{t}" + (" (this repository's history only)" if t == "projects" else "")
               for t in tops]
        if self.claude_json is not None:
            out.append("~/.claude.json (filtered: no account, tokens, MCP servers or "
                       "other projects)")
        return out


def project_dir_name(path: str) -> str:
    """Claude Code's folder name for a project path under ~/.claude/projects."""
    return re.sub(r"[^A-Za-z0-9]", "-", path)


def gather(home: Path, repository: Path | None) -> ClaudeSeed:
    """Select what seeds the agent's state; reads, never writes."""
    root = home / ".claude"
    files: list[tuple[str, Path]] = []
    if root.is_dir() and not root.is_symlink():
        for name in CLAUDE_KEEP:
            files += _tree(root / name, name)
        if repository is not None:
            own = root / "projects" / project_dir_name(str(repository))
            files += _tree(own, f"projects/{project_dir_name(WORKSPACE)}")
    text = None
    source = home / ".claude.json"
    if source.is_file() and not source.is_symlink():
        text = filter_claude_json(source.read_text(encoding="utf-8", errors="replace"),
                                  str(repository) if repository else None)
    return ClaudeSeed(tuple(files), text)


def _tree(path: Path, rel: str) -> list[tuple[str, Path]]:
    if path.is_symlink():
        return []
    if path.is_file():
        return [(rel, path)]
    if not path.is_dir():
        return []
    out: list[tuple[str, Path]] = []
    for child in sorted(path.iterdir()):
        out += _tree(child, f"{rel}/{child.name}")
    return out


def filter_claude_json(text: str, repository: str | None) -> str:
    """~/.claude.json without credentials and with only this repository's project entry."""
    try:
        data = json.loads(text)
    except ValueError:
        return "{}\n"
    if not isinstance(data, dict):
        return "{}\n"
    projects = data.get("projects")
    own = projects.get(repository) if isinstance(projects, dict) and repository else None
    clean = _clean({k: v for k, v in data.items() if k != "projects"})
    assert isinstance(clean, dict)
    if isinstance(own, dict):
        clean["projects"] = {WORKSPACE: _clean(own)}
    return json.dumps(clean, indent=2) + "\n"


def _clean(value: object) -> object:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()
                if not _SECRET_KEY.search(str(k)) and k not in _DROPPED_KEYS}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def stage(seed: ClaudeSeed, folder: Path) -> list[tuple[str, str]]:
    """Write the filtered copies under `folder` (replacing an older staging) and return
    (host path, name) pairs to copy into the agent's seed folder."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, mode=0o700)
    out = []
    if seed.files:
        for rel, source in seed.files:
            target = folder / ".claude" / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target, follow_symlinks=False)
        out.append((str(folder / ".claude"), ".claude"))
    if seed.claude_json is not None:
        (folder / ".claude.json").write_text(seed.claude_json, encoding="utf-8")
        out.append((str(folder / ".claude.json"), ".claude.json"))
    return out
