"""The policy pack as paude runs it: the organisation's policy files, validated and
resolved, and the launcher the engine starts for every plan and apply.

The engine runs a policy pack given as an executable like a plugin: it passes its own
address and reads the pack's port from stdout. The launcher pins the Python paude runs
in (the pack imports paude) and the resolved configuration."""

from __future__ import annotations

import ast
import hashlib
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from paude.config import load_yaml_model
from paude.errors import ConfigError, ConfigProblem
from paude.home import paude_home
from paude.policies.rules import BUILTIN
from paude.policies.settings import PackConfig, PolicyFile, resolve

POLICY_FILE = "paude-policy.yaml"
HOME_POLICY_FILE = "policy.yaml"
LAUNCHER = "paude-policy-pack"


def policy_files(root: Path, home: Path | None = None) -> list[Path]:
    """The policy files that apply to a repository: PAUDE_HOME's, then the repository's."""
    home = home or paude_home()
    return [p for p in (home / HOME_POLICY_FILE, root / POLICY_FILE) if p.is_file()]


def load(root: Path, home: Path | None = None) -> PackConfig:
    """Validate every policy file and combine them (strictest wins)."""
    files = []
    for path in policy_files(root, home):
        parsed = load_yaml_model(path, PolicyFile, top="version, rules and custom_rules",
                                 missing_hint="", what="policy file",
                                 hint="edit the policy file; docs/policies.md lists its fields")
        problems = list(_custom_checks(path, parsed))
        if problems:
            raise ConfigError(str(path), problems, what="policy file",
                              hint="custom_rules[].check is FILE.py:FUNCTION, relative to "
                                   "the policy file")
        files.append((str(path.parent.resolve()), parsed))
    try:
        return resolve(files)
    except ValueError as exc:
        raise ConfigError(", ".join(str(p) for p in policy_files(root, home)),
                          [ConfigProblem("custom_rules", str(exc))]) from None


def _custom_checks(path: Path, file: PolicyFile) -> list[ConfigProblem]:
    """Each custom check names a file that exists and defines the function. Checked by
    reading the source, not importing it: paude does not run the organisation's code."""
    problems = []
    for index, rule in enumerate(file.custom_rules):
        rel, function = rule.check.split(":", 1)
        where = f"custom_rules.{index}.check"
        source = path.parent / rel
        try:
            tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
        except FileNotFoundError:
            problems.append(ConfigProblem(where, f"{source} does not exist"))
            continue
        except (OSError, SyntaxError, UnicodeDecodeError) as exc:
            problems.append(ConfigProblem(where, f"{source} cannot be read as Python: {exc}"))
            continue
        defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
        if function not in defined:
            problems.append(ConfigProblem(where, f"{source} defines no function {function}"))
    return problems


def launcher(config: PackConfig, home: Path | None = None) -> Path:
    """Write (once per configuration) the executable the engine runs as the policy pack."""
    text = config.model_dump_json(indent=2)
    digest = hashlib.sha256(f"{sys.executable}\n{text}".encode()).hexdigest()[:16]
    folder = (home or paude_home()) / "policy" / digest
    exe = folder / LAUNCHER
    if exe.is_file():
        return exe
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "config.json"
    conf.write_text(text, encoding="utf-8")
    script = (f"#!/bin/sh\n# paude's policy pack; written by paude, rewritten when the policy "
              f"files change.\nPAUDE_POLICY_CONFIG={shlex.quote(str(conf))} exec "
              f"{shlex.quote(sys.executable)} -m paude.policies \"$@\"\n")
    partial = folder / f".{LAUNCHER}.tmp"
    partial.write_text(script, encoding="utf-8")
    partial.chmod(0o755)
    partial.replace(exe)  # atomic: a concurrent plan never runs a half-written script
    return exe


@dataclass(frozen=True)
class RuleRow:
    """One rule as it applies to a repository: `paude policies`."""

    id: str
    level: str
    description: str
    fix: str
    source: str  # built-in, or the policy file that added the rule

    def to_json(self) -> dict[str, str]:
        """The JSON form of `paude policies --json`."""
        return {"id": self.id, "level": self.level, "description": self.description,
                "fix": self.fix, "source": self.source}


def effective(root: Path, home: Path | None = None) -> tuple[list[RuleRow], list[Path]]:
    """Every rule with the level the policy files give it, and the files that were read."""
    config = load(root, home)
    rows = [RuleRow(r.id, config.levels.get(r.id, r.level), r.description, r.fix, "built-in")
            for r in BUILTIN]
    rows += [RuleRow(c.id, c.level, c.description, c.fix, c.path) for c in config.custom]
    return rows, policy_files(root, home)


def pack_for(root: Path) -> Path:
    """The launcher for this repository's policies."""
    return launcher(load(root))
