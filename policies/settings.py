"""The policy files and the pack's resolved configuration.

The organisation's file ($PAUDE_HOME/policy.yaml, outside every repository) sets levels and
limits and adds rules with code. The repository's paude-policy.yaml is data only: levels
and limits, never code, because the agent can write it. Files can only tighten what they
share: the strictest level and the lowest limit win, and no file may lower a built-in
mandatory rule."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from .origins import CHECK_PATTERN, is_file_check
from .rules import BUILTIN, BY_ID, Level, quantity_bytes

RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]
_RANK = {"disabled": 0, "advisory": 1, "mandatory": 2}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _shown(key: str) -> str:
    """A key as an error message may print it: quoted and escaped unless it is plain text,
    so a key the agent wrote cannot send control sequences to the user's terminal."""
    return key if key and key.isprintable() and not any(c.isspace() for c in key) \
        else repr(key)


class RuleSetting(_Model):
    """Overrides for one built-in rule."""

    level: Level | None = Field(None, description="mandatory, advisory or disabled.")
    max_size: str | None = Field(
        None, description="pvc-size-limit only: the largest workspace claim, e.g. 50Gi.")


class CustomRule(_Model):
    """A rule the organisation adds: a Python function over the session's resources."""

    id: RuleId = Field(description="Unique rule id (lowercase letters, digits and '-').")
    level: Literal["mandatory", "advisory"] = Field(description="How a violation is treated.")
    description: str = Field(min_length=1, description="What the rule guards.")
    fix: str = Field(min_length=1, description="How to fix a violation.")
    check: str = Field(
        pattern=CHECK_PATTERN,
        description="FILE.py:FUNCTION, relative to the policy file (or absolute), or "
        "package.module:FUNCTION of an installed package. Never inside the repository being "
        "planned. The function takes the list of resources (type, name, props, protected) "
        "and yields violation messages, or (resource, message) pairs.")


class RepoPolicyFile(_Model):
    """The repository's paude-policy.yaml: levels and limits only. It holds no code, since
    the agent can write it; rules with code belong in the organisation's file."""

    version: Literal[1] = Field(1, description="Format version of this file.")
    rules: dict[str, RuleSetting] = Field(
        default_factory=dict, description="Built-in rules by id: levels and limits.")

    @model_validator(mode="after")
    def _coherent_rules(self) -> RepoPolicyFile:
        for rule_id, setting in self.rules.items():
            rule = BY_ID.get(rule_id)
            if rule is None:
                known = ", ".join(BY_ID)
                raise ValueError(f"rules.{_shown(rule_id)}: no built-in rule has this id (known: "
                                 f"{known}); the organisation's own rules go under custom_rules in "
                                 "$PAUDE_HOME/policy.yaml")
            if rule.level == "mandatory" and setting.level not in (None, "mandatory"):
                raise ValueError(f"rules.{rule_id}: {rule_id} is a mandatory rule and cannot "
                                 f"be set to {setting.level}")
            if setting.max_size is not None:
                if "max_size" not in rule.params:
                    raise ValueError(f"rules.{rule_id}: max_size applies only to pvc-size-limit")
                try:
                    quantity_bytes(setting.max_size)
                except ValueError as exc:
                    raise ValueError(f"rules.{rule_id}.max_size: {exc}") from None
        return self


class PolicyFile(RepoPolicyFile):
    """The organisation's $PAUDE_HOME/policy.yaml: levels, limits and rules with code."""

    custom_rules: list[CustomRule] = Field(
        default_factory=list, description="Rules the organisation adds.")

    @model_validator(mode="after")
    def _unique_ids(self) -> PolicyFile:
        seen: set[str] = set()
        for custom in self.custom_rules:
            if custom.id in BY_ID or custom.id in seen:
                raise ValueError(f"custom_rules: the id {custom.id} is already taken")
            seen.add(custom.id)
        return self


class ResolvedCustom(_Model):
    """A custom rule with its check file made absolute, or its installed module."""

    id: str
    level: Literal["mandatory", "advisory"]
    description: str
    fix: str
    path: str | None = None
    module: str | None = None
    function: str

    @model_validator(mode="after")
    def _one_source(self) -> ResolvedCustom:
        if (self.path is None) == (self.module is None):
            raise ValueError("a custom rule has either a check file or a module")
        return self

    @property
    def source(self) -> str:
        """Where the check's code is: its file, or its module's dotted name."""
        return self.path if self.path is not None else f"module {self.module}"


class PackConfig(_Model):
    """What the policy pack runs with: every rule's level and parameters, and custom rules."""

    levels: dict[str, Level]
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    custom: list[ResolvedCustom] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    # Folders the pack never loads check code from: the repository being planned.
    untrusted: list[str] = Field(default_factory=list)


def resolve(files: Sequence[tuple[str, RepoPolicyFile]],
            untrusted: Sequence[str] = ()) -> PackConfig:
    """Combine policy files (each with its folder) over the built-in defaults. A level
    set anywhere applies, the strictest one when files disagree; the lowest limit wins.
    Only organisation files (PolicyFile) add custom rules."""
    levels: dict[str, Level] = {rule.id: rule.level for rule in BUILTIN}
    chosen: dict[str, list[Level]] = {}
    limits: dict[str, list[str]] = {}
    custom: dict[str, ResolvedCustom] = {}
    for folder, file in files:
        for rule_id, setting in file.rules.items():
            if setting.level is not None:
                chosen.setdefault(rule_id, []).append(setting.level)
            if setting.max_size is not None:
                limits.setdefault(rule_id, []).append(setting.max_size)
        for rule in file.custom_rules if isinstance(file, PolicyFile) else ():
            where, function = rule.check.split(":", 1)
            if rule.id in custom:
                raise ValueError(f"custom rule {rule.id} is defined by more than one policy file")
            source = ({"path": str(Path(folder) / where)} if is_file_check(rule.check)
                      else {"module": where})
            custom[rule.id] = ResolvedCustom(
                id=rule.id, level=rule.level, description=rule.description, fix=rule.fix,
                function=function, **source)
    for rule_id, picks in chosen.items():
        levels[rule_id] = max(picks, key=lambda level: _RANK[level])
    params = {rule.id: dict(rule.params) for rule in BUILTIN if rule.params}
    for rule_id, sizes in limits.items():
        params[rule_id]["max_size"] = min(sizes, key=quantity_bytes)
    return PackConfig(levels=levels, params=params, custom=list(custom.values()),
                      sources=[folder for folder, _ in files], untrusted=list(untrusted))
