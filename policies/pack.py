"""The policy pack the engine runs: paude's rules plus the organisation's, served over the
engine's analyzer protocol by pulumi-policy."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from .resources import Resource, Violation
from .rules import BUILTIN, Check
from .settings import PackConfig, ResolvedCustom

PACK_NAME = "paude"
# A value the engine cannot know until apply (an address, an id); rules see this string.
UNKNOWN = "<unknown until apply>"
_LEVELS = {"mandatory": EnforcementLevel.MANDATORY, "advisory": EnforcementLevel.ADVISORY,
           "disabled": EnforcementLevel.DISABLED}


def plain(value: Any) -> Any:
    """A deep copy of engine-provided inputs with unknown values replaced by UNKNOWN."""
    if isinstance(value, Mapping):
        out = {}
        for key in value:
            try:
                out[key] = plain(value[key])
            except UnknownValueError:
                out[key] = UNKNOWN
        return out
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items = []
        for index in range(len(value)):
            try:
                items.append(plain(value[index]))
            except UnknownValueError:
                items.append(UNKNOWN)
        return items
    return value


def message(detail: str, fix: str) -> str:
    """A violation's text: what is wrong, then how to fix it (paude reads both back)."""
    return f"{detail}\nFix: {fix}"


def _policy(rule_id: str, description: str, fix: str, level: str, check: Check,
            params: Mapping[str, Any]) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        resources = [Resource(r.resource_type, r.name, plain(r.props),
                              bool(r.opts.protect), r.urn) for r in args.resources]
        try:
            for found in check(resources, params):
                urn = found.resource.urn if found.resource is not None else None
                report(message(found.detail, fix), urn or None)
        except Exception as exc:  # a broken rule must fail closed, not crash the pack
            report(message(f"the rule could not run: {type(exc).__name__}: {exc}",
                           "fix the rule's check function"), None)

    return StackValidationPolicy(name=rule_id, description=description,
                                 enforcement_level=_LEVELS[level], validate=validate)


def load_custom(rule: ResolvedCustom) -> Check:
    """Import an organisation's check function and adapt what it yields to Violations."""
    path = Path(rule.path)
    spec = importlib.util.spec_from_file_location(f"paude_custom_{rule.id.replace('-', '_')}",
                                                  path)
    if spec is None or spec.loader is None:
        raise ValueError(f"custom rule {rule.id}: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise ValueError(f"custom rule {rule.id}: importing {path} failed: "
                         f"{type(exc).__name__}: {exc}") from None
    function = getattr(module, rule.function, None)
    if not callable(function):
        raise ValueError(f"custom rule {rule.id}: {path} defines no function {rule.function}")
    user: Callable[[list[Resource]], Iterable[Any]] = function

    def check(resources: Sequence[Resource], _: Mapping[str, Any]) -> Iterable[Violation]:
        for item in user(list(resources)) or ():
            if isinstance(item, Violation):
                yield item
            elif isinstance(item, tuple) and len(item) == 2:
                yield Violation(str(item[1]), item[0])
            else:
                yield Violation(str(item))

    return check


def policies(config: PackConfig) -> list[StackValidationPolicy]:
    """Every enabled rule as a stack policy: rules look across resources (an agent and the
    networks it joins), so they see the whole stack at once."""
    out = []
    for rule in BUILTIN:
        level = config.levels.get(rule.id, rule.level)
        out.append(_policy(rule.id, rule.description, rule.fix, level, rule.check,
                           config.params.get(rule.id, rule.params)))
    for custom in config.custom:
        out.append(_policy(custom.id, custom.description, custom.fix, custom.level,
                           load_custom(custom), {}))
    return out


def serve(config: PackConfig) -> None:
    """Run the pack: pulumi-policy prints its port for the engine and serves until killed."""
    PolicyPack(name=PACK_NAME, policies=list(policies(config)),  # List[Policy]: invariant
               enforcement_level=EnforcementLevel.ADVISORY)
