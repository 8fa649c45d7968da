"""Policy checks of what the proxy lets through, read from the squid configuration each
proxy actually runs (not from paude.yaml, which a custom stack need not have)."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from paude import domains
from paude.egress import is_public, reads_only

from .resources import Resource, Violation, of_kind

CONFIG_MAP = "kubernetes:core/v1:ConfigMap"


def proxy_configs(resources: Sequence[Resource]) -> list[tuple[Resource, str]]:
    """The squid configuration each proxy runs: what actually decides egress."""
    out = []
    for res in of_kind(resources, "podman:Container"):
        encoded = (res.props.get("env") or {}).get("PAUDE_SQUID_CONF_B64")
        if res.role == "proxy" and isinstance(encoded, str):
            try:
                out.append((res, base64.b64decode(encoded).decode("utf-8")))
            except (binascii.Error, UnicodeDecodeError):
                out.append((res, ""))
    for res in of_kind(resources, CONFIG_MAP):
        conf = (res.props.get("data") or {}).get("squid.conf")
        if isinstance(conf, str):
            out.append((res, conf))
    return out


@dataclass(frozen=True)
class Egress:
    """What a squid configuration lets through."""

    unrestricted: bool
    names: frozenset[str]  # every allowed host, tunnelled or inspected
    patterns: frozenset[str]
    # Hosts to which some request that changes something may go: tunnelled names (any
    # method) and inspected hosts with a rule admitting a write method.
    writable: frozenset[str] = frozenset()


_RULE_ACL = re.compile(r"^paude_a(\d+)_(host|method|path)$")


def egress_of(conf: str) -> Egress:
    """Parse paude's squid configuration back into the names it allows."""
    names: set[str] = set()
    patterns: set[str] = set()
    rules: dict[str, dict[str, list[str]]] = {}
    for line in conf.splitlines():
        parts = line.split()
        if parts[:3] == ["acl", "paude_allowed", "dstdomain"]:
            names.update(p for p in parts[3:] if not p.startswith("-"))
        elif parts[:3] == ["acl", "paude_allowed_re", "dstdom_regex"]:
            patterns.update(p for p in parts[3:] if not p.startswith("-"))
        elif len(parts) > 3 and parts[0] == "acl" and (found := _RULE_ACL.match(parts[1])):
            values = [p for p in parts[3:] if not p.startswith("-")]
            rules.setdefault(found[1], {})[found[2]] = values
    writable = set(names)
    for rule in rules.values():
        hosts = rule.get("host", [])
        names.update(hosts)
        if not reads_only(rule.get("method", []), rule.get("path", [])):
            writable.update(hosts)
    unrestricted = any(ln.split() == ["http_access", "allow", "all"] for ln in conf.splitlines())
    return Egress(unrestricted, frozenset(names), frozenset(patterns), frozenset(writable))


def check_allowlist(resources: Sequence[Resource], _: Mapping[str, Any]) -> Iterator[Violation]:
    """Every name beyond the default allowlist is somewhere the agent can send code."""
    default = domains.expand(["default"])
    for res, conf in proxy_configs(resources):
        egress = egress_of(conf)
        if egress.unrestricted:
            yield Violation("the proxy allows every destination (allowed_domains: all)", res)
            continue
        extra = sorted(egress.names - set(default.hosts)) + sorted(
            f"~{p}" for p in egress.patterns - set(default.regexes))
        if extra:
            yield Violation(f"the allowlist is wider than the default; additions: "
                            f"{', '.join(extra)}", res)


def check_public_writes(resources: Sequence[Resource], _: Mapping[str, Any]
                        ) -> Iterator[Violation]:
    """A write method to a code forge or package index is how code gets published."""
    for res, conf in proxy_configs(resources):
        egress = egress_of(conf)
        if egress.unrestricted:
            continue  # allowlist-wider-than-default reports it, once
        public = sorted(h for h in egress.writable if is_public(h))
        if public:
            yield Violation("write methods (POST, PUT, ...) may reach public code or package "
                            f"hosts: {', '.join(public)}", res)
