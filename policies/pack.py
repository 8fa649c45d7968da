"""The policy pack the engine runs: paude's rules plus the organisation's, served over the
engine's analyzer protocol by pulumi-policy."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

from .origins import inside, spec_locations
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


def load_custom(rule: ResolvedCustom, untrusted: Sequence[str] = ()) -> Check:
    """Import an organisation's check function and adapt what it yields to Violations.

    paude checked the code's location when it read the policy file; the check is repeated
    here, right before the import, against the repositories in `untrusted`."""
    if rule.path is not None:
        module = _import_file(rule, rule.path, untrusted)
    else:
        assert rule.module is not None  # ResolvedCustom has one or the other
        module = _import_module(rule, rule.module, untrusted)
    function = getattr(module, rule.function, None)
    if not callable(function):
        raise ValueError(f"custom rule {rule.id}: {rule.source} defines no function "
                         f"{rule.function}")
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


def _refuse(rule: ResolvedCustom, location: Path, untrusted: Sequence[str]) -> None:
    repo = inside(location, untrusted)
    if repo is not None:
        raise ValueError(f"custom rule {rule.id}: {rule.source} is loaded from "
                         f"{location.resolve()}, inside the repository {repo}; code the agent "
                         "can write never runs on the host")


def _import_file(rule: ResolvedCustom, source: str, untrusted: Sequence[str]) -> ModuleType:
    path = Path(source).resolve()  # what is checked is what is loaded
    _refuse(rule, path, untrusted)
    spec = importlib.util.spec_from_file_location(f"paude_custom_{rule.id.replace('-', '_')}",
                                                  path)
    if spec is None or spec.loader is None:
        raise ValueError(f"custom rule {rule.id}: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise _import_failed(rule, str(path), exc) from None
    return module


def _import_module(rule: ResolvedCustom, name: str, untrusted: Sequence[str]) -> ModuleType:
    """Import package by package, each checked before its code runs: a package may extend
    its path when imported, so where a submodule comes from is only known once its parent
    is imported."""
    parts = name.split(".")
    module: ModuleType | None = None
    for index in range(1, len(parts) + 1):
        prefix = ".".join(parts[:index])
        try:
            spec = importlib.util.find_spec(prefix)  # its parents are imported already
        except Exception as exc:
            raise _import_failed(rule, name, exc) from None
        if spec is None:
            raise ValueError(f"custom rule {rule.id}: no installed module {prefix}")
        for location in spec_locations(spec):
            _refuse(rule, location, untrusted)
        try:
            module = importlib.import_module(prefix)
        except Exception as exc:
            raise _import_failed(rule, name, exc) from None
    assert module is not None  # a dotted name has at least one part
    return module


def _import_failed(rule: ResolvedCustom, what: str, exc: Exception) -> ValueError:
    return ValueError(f"custom rule {rule.id}: importing {what} failed: "
                      f"{type(exc).__name__}: {exc}")


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
                           load_custom(custom, config.untrusted), {}))
    return out


def serve(config: PackConfig) -> None:
    """Run the pack: pulumi-policy prints its port for the engine and serves until killed."""
    PolicyPack(name=PACK_NAME, policies=list(policies(config)),  # List[Policy]: invariant
               enforcement_level=EnforcementLevel.ADVISORY)
