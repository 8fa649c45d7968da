"""Expands allowed_domains (groups, exact names, .suffix wildcards) into a proxy allowlist.

The model words (`claude`, `vertexai`) are routes of the session's model gateway, not names
the agent may reach: the agent talks to the model only through the gateway, which alone
holds the credentials (paude/gateway.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Allowlist:
    """The effective egress policy of a session."""

    unrestricted: bool
    domains: tuple[str, ...]
    regexes: tuple[str, ...]
    routes: tuple[str, ...] = ()  # model gateway routes (ROUTES), not agent egress

    def describe(self) -> list[str]:
        """Human-readable entries, used in plans and outputs."""
        if self.unrestricted:
            return ["* (all domains: unrestricted)"]
        return [*self.domains, *(f"~{r}" for r in self.regexes)]

    def describe_routes(self) -> list[str]:
        """The gateway's routes as plans show them."""
        return [f"model gateway: {r}" for r in self.routes]


def expand(entries: Sequence[str]) -> Allowlist:
    """Resolve group words and names into a deduplicated, squid-safe allowlist."""
    if "all" in entries:
        return Allowlist(True, (), (), ROUTES)
    names: list[str] = []
    regexes: list[str] = []
    routes: set[str] = set()
    for entry in entries:
        known = (*GROUPS, *ROUTES)
        groups = DEFAULT_GROUPS if entry == "default" else (entry,) if entry in known else ()
        if groups:
            for group in groups:
                if group in ROUTES:
                    routes.add(group)
                    continue
                names.extend(GROUPS[group])
                regexes.extend(GROUP_REGEXES.get(group, ()))
        else:
            names.append(entry.lower())
    return Allowlist(False, _dedupe(names), tuple(dict.fromkeys(regexes)),
                     tuple(r for r in ROUTES if r in routes))


def _dedupe(names: Iterable[str]) -> tuple[str, ...]:
    # squid rejects an exact name that a listed .suffix already covers, so drop those.
    unique = sorted(set(names))
    suffixes = [n for n in unique if n.startswith(".")]

    def covered(name: str) -> bool:
        return any(name != s and (name.endswith(s) or "." + name == s) for s in suffixes)

    return tuple(n for n in unique if not covered(n))
