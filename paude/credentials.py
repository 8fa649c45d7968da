"""What of the user's identity enters the agent container, and how.

Read-only mounts of staged copies (gcloud application-default credentials, a filtered
~/.gitconfig, the global git ignore file), copies of ~/.claude and ~/.claude.json (so
the container can never change the host's), and a fixed list of environment variables.
SSH keys, git credential helpers and gh configuration never enter: nothing here reads
them, and the gitconfig filter drops every section that could name a helper or a token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

AGENT_HOME = "/home/paude"
# Passed through when set on the host (the seed's variables).
PASSTHROUGH_ENV = ("CLAUDE_CODE_USE_VERTEX", "ANTHROPIC_VERTEX_PROJECT_ID",
                   "GOOGLE_CLOUD_PROJECT", "CLOUD_ML_REGION")
# Passed through as Pulumi secrets: never plaintext in state, plans or logs.
SECRET_ENV = ("ANTHROPIC_API_KEY",)

# gitconfig keys that carry identity and taste, never credentials or remote rewrites.
_GIT_KEEP = re.compile(
    r"^(user\.(name|email)|init\.defaultbranch|pull\.(rebase|ff)|push\.default|"
    r"merge\.conflictstyle|diff\.(algorithm|colormoved)|core\.(autocrlf|eol|quotepath)|"
    r"color\.[a-z.]+|alias\.[A-Za-z0-9_.-]+|rebase\.autosquash|fetch\.prune)$")


@dataclass(frozen=True)
class StagedFile:
    """A host file the agent reads through a read-only mount of a staged copy."""

    source: Path
    staged: Path
    target: str
    content: str = field(repr=False)


@dataclass(frozen=True)
class AgentIdentity:
    """Everything of the user's that the agent container receives."""

    files: tuple[StagedFile, ...]
    copies: tuple[tuple[str, str], ...]  # (host path, container path), copied at create
    env: dict[str, str]
    secret_env: dict[str, str] = field(repr=False)

    def mounts(self) -> list[str]:
        """podman --volume values: staged copies, always read-only."""
        return [f"{f.staged}:{f.target}:ro" for f in self.files]


def gather(home: Path, environ: Mapping[str, str], stage_dir: Path) -> AgentIdentity:
    """Collect the identity from the host; reads files, writes nothing (see stage())."""
    files: list[StagedFile] = []
    adc = _adc_path(home, environ)
    if adc is not None:
        files.append(StagedFile(adc, stage_dir / "application_default_credentials.json",
                                f"{AGENT_HOME}/.config/gcloud/application_default_credentials.json",
                                adc.read_text(encoding="utf-8")))
    gitconfig = _first_file(home / ".gitconfig", _xdg(home, environ) / "git" / "config")
    ignore = _global_ignore(home, environ, gitconfig)
    if ignore is not None:
        files.append(StagedFile(ignore, stage_dir / "gitignore",
                                f"{AGENT_HOME}/.config/git/ignore",
                                ignore.read_text(encoding="utf-8")))
    if gitconfig is not None:
        text = filter_gitconfig(gitconfig.read_text(encoding="utf-8"),
                                excludes=f"{AGENT_HOME}/.config/git/ignore" if ignore else None)
        files.append(StagedFile(gitconfig, stage_dir / "gitconfig", f"{AGENT_HOME}/.gitconfig",
                                text))
    # Copied into a seed folder: the entrypoint seeds the session's state from it once.
    copies = tuple((str(p), f"{AGENT_HOME}/.paude-seed/{p.name}")
                   for p in (home / ".claude", home / ".claude.json") if p.exists())
    env = {k: environ[k] for k in PASSTHROUGH_ENV if environ.get(k)}
    secret_env = {k: environ[k] for k in SECRET_ENV if environ.get(k)}
    return AgentIdentity(tuple(files), copies, env, secret_env)


def stage(identity: AgentIdentity) -> None:
    """Write the staged copies (0644 inside a 0700 folder) for the read-only mounts.

    Written in place, so a running container's bind mount sees updates."""
    for item in identity.files:
        item.staged.parent.mkdir(parents=True, exist_ok=True)
        item.staged.parent.chmod(0o700)
        with open(item.staged, "a+", encoding="utf-8") as fh:
            fh.seek(0)
            if fh.read() != item.content:
                fh.seek(0)
                fh.truncate()
                fh.write(item.content)
        item.staged.chmod(0o644)


def filter_gitconfig(text: str, *, excludes: str | None) -> str:
    """Keep identity and preferences; drop credentials, includes, url rewrites, http."""
    kept: dict[str, list[str]] = {}
    header, section = "", ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        match = re.match(r'^\[\s*([A-Za-z0-9.-]+)(?:\s+"(.*)")?\s*\]$', line)
        if match:
            name, sub = match.group(1), match.group(2)
            header = f'[{name} "{sub}"]' if sub is not None else f"[{name}]"
            section = f"{name}.{sub}" if sub is not None else name
            continue
        key, sep, value = line.partition("=")
        key = key.strip()
        if section and _GIT_KEEP.match(f"{section}.{key}".lower()):
            kept.setdefault(header, []).append(f"\t{key} = {value.strip() if sep else 'true'}")
    if excludes:
        kept.setdefault("[core]", []).append(f"\texcludesFile = {excludes}")
    lines = ["# Written by paude from your gitconfig: identity and preferences only."]
    for head, items in kept.items():
        lines += [head, *items]
    return "\n".join(lines) + "\n"


def _xdg(home: Path, environ: Mapping[str, str]) -> Path:
    return Path(environ.get("XDG_CONFIG_HOME") or home / ".config")


def _first_file(*paths: Path) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


def _adc_path(home: Path, environ: Mapping[str, str]) -> Path | None:
    explicit = environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    config = Path(environ.get("CLOUDSDK_CONFIG") or home / ".config" / "gcloud")
    return _first_file(*(Path(explicit).expanduser(),) if explicit else (),
                       config / "application_default_credentials.json")


def _global_ignore(home: Path, environ: Mapping[str, str], gitconfig: Path | None) -> Path | None:
    if gitconfig is not None:
        match = re.search(r"^\s*excludesfile\s*=\s*(.+?)\s*$",
                          gitconfig.read_text(encoding="utf-8"), re.I | re.M)
        if match:
            value = match.group(1).strip('"')
            # `~` means the home paude was given (tests, other users), not this process's.
            configured = home / value[2:] if value.startswith("~/") else Path(value)
            if not configured.is_absolute():
                configured = home / configured
            if configured.is_file():
                return configured
    return _first_file(_xdg(home, environ) / "git" / "ignore")
