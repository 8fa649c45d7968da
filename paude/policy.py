"""The policy pack as paude runs it: the policy files, validated and resolved, and the
launcher the engine starts for every plan and apply.

The engine runs a policy pack given as an executable like a plugin: it passes its own
address and reads the pack's port from stdout. The launcher pins the Python paude runs
in (the pack imports paude) and the resolved configuration.

Rules with code come only from the organisation's file, $PAUDE_HOME/policy.yaml, and
never from inside the repository being planned: the agent writes files there and its
commits reach the host by `git pull`. The repository's paude-policy.yaml is data only."""

from __future__ import annotations

import ast
import hashlib
import os
import secrets
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from paude import forkserver
from paude.config import load_yaml_model
from paude.errors import ConfigError, ConfigProblem
from paude.home import paude_home
from paude.limits import load_yaml
from paude.policies.origins import inside, is_file_check, module_locations, repository_root
from paude.policies.rules import BUILTIN
from paude.policies.settings import PackConfig, PolicyFile, RepoPolicyFile, resolve

POLICY_FILE = "paude-policy.yaml"
HOME_POLICY_FILE = "policy.yaml"
LAUNCHER = "paude-policy-pack"

WHY_NO_CODE = ("code in the repository would run on your machine; the agent can write "
               "this file")
WHERE_CODE_GOES = ("put rules with code in the organisation's policy file, "
                   "$PAUDE_HOME/policy.yaml (default ~/.paude/policy.yaml), with their check "
                   "files outside the repository, or name a function of an installed package "
                   "(check: package.module:function); see docs/policies.md")
_EDIT_HINT = "edit the policy file; docs/policies.md lists its fields"


def policy_files(root: Path, home: Path | None = None) -> list[Path]:
    """The policy files that apply to a repository: PAUDE_HOME's, then the repository's."""
    home = home or paude_home()
    return [p for p in (home / HOME_POLICY_FILE, root / POLICY_FILE) if p.is_file()]


def load(root: Path, home: Path | None = None) -> PackConfig:
    """Validate every policy file and combine them (strictest wins).

    Only the organisation's file may add rules with code, and none of that code may live in
    the repository; a repository file with custom_rules is refused before anything runs."""
    home = home or paude_home()
    untrusted = [str(repository_root(root))]
    files: list[tuple[str, RepoPolicyFile]] = []
    for path in policy_files(root, home):
        # A PAUDE_HOME inside the repository makes its policy file one the agent can write.
        trusted = path == home / HOME_POLICY_FILE and not any(
            inside(p, untrusted) for p in (path, path.parent))
        parsed: RepoPolicyFile
        if trusted:
            parsed = load_yaml_model(path, PolicyFile, top="version, rules and custom_rules",
                                     missing_hint="", what="policy file", hint=_EDIT_HINT)
            problems = _custom_checks(path, parsed, untrusted)
            if problems:
                raise ConfigError(str(path), problems, what="policy file",
                                  hint="custom_rules[].check is FILE.py:FUNCTION, relative to "
                                       "the policy file and outside the repository, or "
                                       "package.module:FUNCTION of an installed package")
        else:
            problems = _outside(path, untrusted) or _code_in_repository(path)
            if problems:
                raise ConfigError(str(path), problems, what="policy file", hint=WHERE_CODE_GOES)
            parsed = load_yaml_model(path, RepoPolicyFile, top="version and rules",
                                     missing_hint="", what="policy file", hint=_EDIT_HINT)
        files.append((str(path.parent.resolve()), parsed))
    try:
        return resolve(files, untrusted)
    except ValueError as exc:
        raise ConfigError(", ".join(str(p) for p in policy_files(root, home)),
                          [ConfigProblem("custom_rules", str(exc))]) from None


def _custom_rule_nodes(text: str) -> tuple[int | None, list[yaml.Node]] | None:
    """The line of a top-level custom_rules key and its entries; None when the file has no
    such key (or is not YAML: load_yaml_model reports that with its line)."""
    try:
        root, data = load_yaml(text)
    except yaml.YAMLError:
        return None
    if not isinstance(data, dict) or "custom_rules" not in data:
        return None
    if isinstance(root, yaml.MappingNode):
        for key, value in root.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "custom_rules":
                entries = value.value if isinstance(value, yaml.SequenceNode) else []
                return key.start_mark.line + 1, list(entries)
    return None, []  # reached through a merge key: refused all the same, without a line


def _outside(path: Path, untrusted: list[str]) -> list[ConfigProblem]:
    """A repository's policy file that is a symlink out of the repository: paude reads no
    file outside the repository on the repository's word."""
    if inside(path, untrusted) is None:
        return [ConfigProblem("(file)", f"is a symlink to {path.resolve()}, outside the "
                                        "repository; replace it with the file itself")]
    return []


def _code_in_repository(path: Path) -> list[ConfigProblem]:
    """custom_rules in a file the agent can write: one problem per entry, with its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []  # load_yaml_model reports an unreadable file
    found = _custom_rule_nodes(text)
    if found is None:
        return []
    key_line, entries = found
    refused = f"a repository's policy file cannot add rules with code: {WHY_NO_CODE}"
    if not entries:
        return [ConfigProblem("custom_rules", refused, key_line)]
    return [ConfigProblem(f"custom_rules.{index}", refused, entry.start_mark.line + 1)
            for index, entry in enumerate(entries)]


def _check_lines(path: Path) -> dict[int, int]:
    """Line of each custom rule's `check:` (else of the entry), by index."""
    found = _custom_rule_nodes(path.read_text(encoding="utf-8"))
    lines: dict[int, int] = {}
    for index, entry in enumerate(found[1] if found else []):
        lines[index] = entry.start_mark.line + 1
        if isinstance(entry, yaml.MappingNode):
            for key, _ in entry.value:
                if isinstance(key, yaml.ScalarNode) and key.value == "check":
                    lines[index] = key.start_mark.line + 1
    return lines


def _custom_checks(path: Path, file: PolicyFile, untrusted: list[str]) -> list[ConfigProblem]:
    """Each custom check names code outside the repository that exists: a file that defines
    the function, or an installed module. Checked by reading the source and the import
    system's metadata, not by importing: paude does not run the organisation's code."""
    lines = _check_lines(path) if file.custom_rules else {}
    problems = []
    for index, rule in enumerate(file.custom_rules):
        where, function = rule.check.split(":", 1)
        field = f"custom_rules.{index}.check"
        if is_file_check(rule.check):
            message = _file_problem(path.parent / where, function, untrusted)
        else:
            message = _module_problem(where, untrusted)
        if message:
            problems.append(ConfigProblem(field, message, lines.get(index)))
    return problems


def _file_problem(source: Path, function: str, untrusted: list[str]) -> str | None:
    repo = inside(source, untrusted)
    if repo is not None:
        return (f"{source} resolves to {source.resolve()}, inside the repository {repo}: "
                f"{WHY_NO_CODE.replace('this file', 'it')}; keep check files outside the "
                "repository")
    try:
        tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    except FileNotFoundError:
        return f"{source} does not exist"
    except (OSError, SyntaxError, UnicodeDecodeError) as exc:
        return f"{source} cannot be read as Python: {exc}"
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    if function not in defined:
        return f"{source} defines no function {function}"
    return None


def _module_problem(module: str, untrusted: list[str]) -> str | None:
    try:
        locations, _ = module_locations(module)
    except LookupError as exc:
        return (f"{exc}: install the package that provides {module} into the Python paude "
                f"runs in ({sys.executable})")
    # An incomplete chain (a package that extends its path when imported) is followed by
    # the pack, which imports it, checks where it came from, and refuses to start if that
    # is the repository.
    for location in locations:
        repo = inside(location, untrusted)
        if repo is not None:
            return (f"module {module} is loaded from {location.resolve()}, inside the "
                    f"repository {repo}: {WHY_NO_CODE.replace('this file', 'it')}; install "
                    "the organisation's rules as a package outside the repository")
    return None


def launcher(config: PackConfig, home: Path | None = None) -> Path:
    """Write (or repair) the executable the engine runs as the policy pack.

    `-P`: Python puts no folder of the engine's choosing (its working directory) in front
    of sys.path, so no `paude/` or `pulumi_policy/` folder there can stand in for the real
    ones. Not `-I`: it would also drop PYTHONPATH and the user's site-packages, which paude
    itself may be installed through. `-u`: the pack tells the engine its port on stdout
    without flushing it, which a block-buffered pipe would hold back for ever (the plan
    hangs) unless PYTHONUNBUFFERED happens to be set. The files are rewritten whenever they
    differ from what this paude would write."""
    text = config.model_dump_json(indent=2)
    digest = hashlib.sha256(f"{sys.executable}\n{text}".encode()).hexdigest()[:16]
    folder = (home or paude_home()) / "policy" / digest
    exe = folder / LAUNCHER
    conf = folder / "config.json"
    command = f"{shlex.quote(sys.executable)} -u -P -m paude.policies \"$@\""
    shim = " ".join(shlex.quote(a) for a in forkserver.shim_command(sys.executable))
    # Through paude's fork server when the command that runs the engine started one.
    script = (f"#!/bin/sh\n# paude's policy pack; written by paude, rewritten when the policy "
              f"files change.\nPAUDE_POLICY_CONFIG={shlex.quote(str(conf))}\n"
              f"export PAUDE_POLICY_CONFIG\n"
              f'if [ -n "${{{forkserver.ENV}:-}}" ]; then exec {shim} {command}; fi\n'
              f"exec {command}\n")
    if _holds(conf, text) and _holds(exe, script) and os.access(exe, os.X_OK):
        return exe
    folder.mkdir(parents=True, exist_ok=True)
    _write_atomic(conf, text, 0o644)
    _write_atomic(exe, script, 0o755)  # a concurrent plan never runs a half-written script
    return exe


def _holds(path: Path, text: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") == text
    except (OSError, UnicodeDecodeError):
        return False


def _write_atomic(path: Path, text: str, mode: int) -> None:
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        partial.write_text(text, encoding="utf-8")
        partial.chmod(mode)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


@dataclass(frozen=True)
class RuleRow:
    """One rule as it applies to a repository: `paude policies`."""

    id: str
    level: str
    description: str
    fix: str
    source: str  # built-in, or where the custom rule's check is

    def to_json(self) -> dict[str, str]:
        """The JSON form of `paude policies --json`."""
        return {"id": self.id, "level": self.level, "description": self.description,
                "fix": self.fix, "source": self.source}


def effective(root: Path, home: Path | None = None) -> tuple[list[RuleRow], list[Path]]:
    """Every rule with the level the policy files give it, and the files that were read."""
    config = load(root, home)
    rows = [RuleRow(r.id, config.levels.get(r.id, r.level), r.description, r.fix, "built-in")
            for r in BUILTIN]
    rows += [RuleRow(c.id, c.level, c.description, c.fix, c.source) for c in config.custom]
    return rows, policy_files(root, home)


def pack_for(root: Path) -> Path:
    """The launcher for this repository's policies."""
    return launcher(load(root))
