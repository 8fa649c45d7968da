"""Policy checks of what the proxy lets through, read from the squid configuration each
proxy actually runs (not from paude.yaml, which a custom stack need not have)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from paude import domains

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
    names: frozenset[str]
    patterns: frozenset[str]


def egress_of(conf: str) -> Egress:
    """Parse paude's squid configuration back into the names it allows."""
    names: set[str] = set()
    patterns: set[str] = set()
    for line in conf.splitlines():
        parts = line.split()
        if parts[:3] == ["acl", "paude_allowed", "dstdomain"]:
            names.update(p for p in parts[3:] if not p.startswith("-"))
        elif parts[:3] == ["acl", "paude_allowed_re", "dstdom_regex"]:
            patterns.update(p for p in parts[3:] if not p.startswith("-"))
    unrestricted = any(ln.split() == ["http_access", "allow", "all"] for ln in conf.splitlines())
    return Egress(unrestricted, frozenset(names), frozenset(patterns))



def check_allowlist(resources: Sequence[Resource], _: Mapping[str, Any]) -> Iterator[Violation]:
    """Every name beyond the default allowlist is somewhere the agent can send code."""
    default = domains.expand(["default"])
    for res, conf in proxy_configs(resources):
        egress = egress_of(conf)
        if egress.unrestricted:
            yield Violation("the proxy allows every destination (allowed_domains: all)", res)
            continue
        extra = sorted(egress.names - set(default.domains)) + sorted(
            f"~{p}" for p in egress.patterns - set(default.regexes))
        if extra:
            yield Violation(f"the allowlist is wider than the default; additions: "
                            f"{', '.join(extra)}", res)
