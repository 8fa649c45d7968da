"""What of the user's identity enters the agent container, and how.

Read-only mounts of staged copies (a filtered ~/.gitconfig, the global git ignore file),
filtered copies of ~/.claude and ~/.claude.json (paude/claude_home.py; the container can
never change the host's), and a fixed list of environment variables. Model credentials
go to the session's gateway, never here (paude/gateway.py). SSH keys, git credential
helpers and gh configuration never enter: nothing here reads them, and the gitconfig
filter drops every section that could name a helper or a token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from paude import claude_home
from paude.claude_home import ClaudeSeed
from paude.gateway import GatewayCredentials
from paude.gateway import gather as gather_gateway

AGENT_HOME = "/home/paude"
# Passed through when set on the host: names, not credentials (CLAUDE_CODE_USE_VERTEX
# and the model variables come from the gateway, paude/gateway.py).
PASSTHROUGH_ENV = ("ANTHROPIC_VERTEX_PROJECT_ID", "GOOGLE_CLOUD_PROJECT", "CLOUD_ML_REGION")

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
    # The agent's own secret variables: none today (model credentials are the gateway's).
    secret_env: dict[str, str] = field(repr=False)
    gateway: GatewayCredentials = field(default_factory=GatewayCredentials)
    seed: ClaudeSeed = field(default_factory=ClaudeSeed)
    seed_dir: Path | None = None

    def mounts(self) -> list[str]:
        """podman --volume values: staged copies, always read-only."""
        return [f"{f.staged}:{f.target}:ro" for f in self.files]


def gather(home: Path, environ: Mapping[str, str], stage_dir: Path,
           repository: Path | None = None) -> AgentIdentity:
    """Collect the identity from the host; reads files, writes nothing (see stage())."""
    files: list[StagedFile] = []
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
    # Filtered copies, staged then copied into a seed folder: the entrypoint seeds the
    # session's state from it once.
    seed = claude_home.gather(home, repository)
    seed_dir = stage_dir.parent / "claude-seed"
    names = ([".claude"] if seed.files else []) + (
        [".claude.json"] if seed.claude_json is not None else [])
    copies = tuple((str(seed_dir / n), f"{AGENT_HOME}/.paude-seed/{n}") for n in names)
    env = {k: environ[k] for k in PASSTHROUGH_ENV if environ.get(k)}
    return AgentIdentity(tuple(files), copies, env, {}, gather_gateway(home, environ), seed,
                         seed_dir)


def stage(identity: AgentIdentity) -> None:
    """Write the staged copies (0644 inside a 0700 folder) for the read-only mounts.

    Written in place, so a running container's bind mount sees updates."""
    if identity.seed_dir is not None:
        claude_home.stage(identity.seed, identity.seed_dir)
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
