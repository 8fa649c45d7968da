"""Expands allowed_domains (groups, exact names, .suffix wildcards, method/path rules) and
denied_requests into a proxy allowlist.

The model words (`claude`, `vertexai`) are routes of the session's model gateway, not names
the agent may reach: the agent talks to the model only through the gateway, which alone
holds the credentials (paude/gateway.py). Hosts with method or path rules are inspected by
the proxy (paude/egress.py); the rest stay plain tunnels."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from paude.egress import EgressError, RequestRule, Rule, check_overlaps, covers, group_rules

# Named groups. Regexes cover endpoints that are not subdomains of one suffix (Vertex AI's
# regional hosts are REGION-aiplatform.googleapis.com).
GROUPS: dict[str, tuple[str, ...]] = {
    "pypi": ("pypi.org", "files.pythonhosted.org", "pypi.python.org"),
    "github": ("github.com", "api.github.com", "codeload.github.com", ".githubusercontent.com"),
}
GROUP_REGEXES: dict[str, tuple[str, ...]] = {}
# Model gateway routes: the Anthropic API and Vertex AI.
ROUTES = ("claude", "vertexai")
DEFAULT_GROUPS = ("claude", "vertexai", "pypi")
# The audit name of a request let through by a plain (tunnelled) entry.
PLAIN_SOURCE = "allowed_domains"

Entry = str | RequestRule


@dataclass(frozen=True)
class Allowlist:
    """The effective egress policy of a session."""

    unrestricted: bool
    domains: tuple[str, ...]  # tunnelled: every request, never inspected
    regexes: tuple[str, ...]
    routes: tuple[str, ...] = ()  # model gateway routes (ROUTES), not agent egress
    rules: tuple[Rule, ...] = ()  # allow rules of inspected hosts
    denies: tuple[Rule, ...] = ()

    @property
    def inspected(self) -> tuple[str, ...]:
        """Hosts whose requests the proxy decrypts and checks one by one."""
        return tuple(sorted({r.host for r in (*self.rules, *self.denies) if r.inspects}
                            | {r.host for r in self.rules}))

    @property
    def hosts(self) -> tuple[str, ...]:
        """Every name the agent may reach at all, tunnelled or inspected."""
        return tuple(sorted({*self.domains, *(r.host for r in self.rules)}))

    def describe(self) -> list[str]:
        """Human-readable entries, used in plans and outputs."""
        if self.unrestricted:
            return ["* (all domains: unrestricted)"]
        return [*self.domains, *(f"~{r}" for r in self.regexes),
                *(r.describe() for r in (*self.rules, *self.denies))]

    def tunnelled(self) -> Allowlist:
        """Every allowed host as a plain tunnel, rules dropped: for build proxies, whose
        clients do not trust a session CA."""
        return Allowlist(self.unrestricted, squid_names(self.hosts), self.regexes, self.routes)

    def describe_routes(self) -> list[str]:
        """The gateway's routes as plans show them."""
        return [f"model gateway: {r}" for r in self.routes]


def expand(entries: Sequence[Entry], denied: Sequence[RequestRule] = ()) -> Allowlist:
    """Resolve group words, names and rules into a deduplicated, squid-safe allowlist.

    Raises EgressError (with the field path) for rules that contradict one another."""
    if "all" in entries:
        extra = [f"allowed_domains[{i}]" for i, e in enumerate(entries)
                 if isinstance(e, RequestRule)]
        extra += [f"denied_requests[{i}]" for i in range(len(denied))]
        if extra:
            raise EgressError(extra[0], "method and path rules have no effect with "
                              "allowed_domains: all (every request is let through); remove "
                              "`all` or the rules")
        return Allowlist(True, (), (), ROUTES)
    plain: set[str] = set()  # tunnelled names
    regexes: list[str] = []
    routes: set[str] = set()
    group: list[Rule] = []
    written: list[Rule] = []
    mine: dict[str, str] = {}  # host -> where the user listed it as a plain name
    for index, entry in enumerate(entries):
        where = f"allowed_domains[{index}]"
        if isinstance(entry, RequestRule):
            if entry.methods or entry.paths:
                written.append(Rule("allow", entry.host, tuple(entry.methods or ()),
                                    tuple(entry.paths or ()), where))
                continue
            entry = entry.host
        known = (*GROUPS, *ROUTES)
        groups = DEFAULT_GROUPS if entry == "default" else (entry,) if entry in known else ()
        for name in groups:
            if name in ROUTES:
                routes.add(name)
                continue
            rules = group_rules(name)
            group.extend(rules)
            covered = {r.host for r in rules}
            plain.update(h for h in GROUPS[name] if h not in covered)
            regexes.extend(GROUP_REGEXES.get(name, ()))
        if not groups:
            plain.add(entry.lower())
            mine[entry.lower()] = where
    denies = [Rule("deny", d.host, tuple(d.methods or ()), tuple(d.paths or ()),
                   f"denied_requests[{i}]") for i, d in enumerate(denied)]
    for rule in written:
        if rule.host in mine:
            raise EgressError(rule.source, f"{rule.host} is also listed at {mine[rule.host]} "
                              "as a plain name, which allows every request; remove one of "
                              "the two")
    # What the user wrote for a host replaces a group's rules for it.
    group = [r for r in group if r.host not in mine and r.host not in {w.host for w in written}]
    # Only what the user wrote: denying part of a group is how a group is narrowed.
    check_overlaps(written, denies)
    allows = [*written, *(r for r in group if r.action == "allow")]
    rule_denies = [*(r for r in group if r.action == "deny"), *denies]
    # An inspected host is reached only through its rules: a plain name under an inspected
    # suffix, or a plain name a deny rule has to look into, becomes an any-request rule.
    inspected = {r.host for r in allows} | {r.host for r in rule_denies if r.inspects}
    for host in sorted(plain):
        if any(covers(i, host) for i in inspected) or host in inspected:
            allows.append(Rule("allow", host, (), (), PLAIN_SOURCE))
            plain.discard(host)
    for deny in (d for d in denies if d.inspects):
        if any(covers(a.host, deny.host) or covers(deny.host, a.host) for a in allows):
            continue
        suffix = next((h for h in plain if covers(h, deny.host)), None)
        if suffix is None:
            raise EgressError(deny.source, f"denies nothing: {deny.host} is not in "
                              "allowed_domains, so every request to it is refused already")
        allows.append(Rule("allow", deny.host, (), (), PLAIN_SOURCE))
    for deny in (d for d in denies if not d.inspects):
        if not any(covers(h, deny.host) for h in plain) and not any(
                covers(a.host, deny.host) or covers(deny.host, a.host) for a in allows):
            raise EgressError(deny.source, f"denies nothing: {deny.host} is not in "
                              "allowed_domains, so every request to it is refused already")
    return Allowlist(False, _dedupe(plain), tuple(dict.fromkeys(regexes)),
                     tuple(r for r in ROUTES if r in routes), tuple(dict.fromkeys(allows)),
                     tuple(dict.fromkeys(rule_denies)))


def squid_names(names: Iterable[str]) -> tuple[str, ...]:
    """`names` as one squid dstdomain list (no name its own .suffix already covers)."""
    return _dedupe(names)


def _dedupe(names: Iterable[str]) -> tuple[str, ...]:
    # squid rejects an exact name that a listed .suffix already covers, so drop those.
    unique = sorted(set(names))
    suffixes = [n for n in unique if n.startswith(".")]

    def covered(name: str) -> bool:
        return any(name != s and (name.endswith(s) or "." + name == s) for s in suffixes)

    return tuple(n for n in unique if not covered(n))
