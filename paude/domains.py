"""Expands allowed_domains (groups, exact names, .suffix wildcards) into a proxy allowlist."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

# Named groups. Regexes cover endpoints that are not subdomains of one suffix (Vertex AI's
# regional hosts are REGION-aiplatform.googleapis.com).
GROUPS: dict[str, tuple[str, ...]] = {
    "vertexai": (
        "aiplatform.googleapis.com",
        "oauth2.googleapis.com",
        "sts.googleapis.com",
        "www.googleapis.com",
        "accounts.google.com",
    ),
    "pypi": ("pypi.org", "files.pythonhosted.org", "pypi.python.org"),
    "claude": ("api.anthropic.com",),
    "github": ("github.com", "api.github.com", "codeload.github.com", ".githubusercontent.com"),
}
GROUP_REGEXES: dict[str, tuple[str, ...]] = {
    "vertexai": (r"^[a-z0-9-]+-aiplatform\.googleapis\.com$",),
}
DEFAULT_GROUPS = ("vertexai", "pypi")


@dataclass(frozen=True)
class Allowlist:
    """The effective egress policy of a session."""

    unrestricted: bool
    domains: tuple[str, ...]
    regexes: tuple[str, ...]

    def describe(self) -> list[str]:
        """Human-readable entries, used in plans and outputs."""
        if self.unrestricted:
            return ["* (all domains: unrestricted)"]
        return [*self.domains, *(f"~{r}" for r in self.regexes)]


def expand(entries: Sequence[str]) -> Allowlist:
    """Resolve group words and names into a deduplicated, squid-safe allowlist."""
    if "all" in entries:
        return Allowlist(True, (), ())
    names: list[str] = []
    regexes: list[str] = []
    for entry in entries:
        groups = DEFAULT_GROUPS if entry == "default" else (entry,) if entry in GROUPS else ()
        if groups:
            for group in groups:
                names.extend(GROUPS[group])
                regexes.extend(GROUP_REGEXES.get(group, ()))
        else:
            names.append(entry.lower())
    return Allowlist(False, _dedupe(names), tuple(dict.fromkeys(regexes)))


def _dedupe(names: Iterable[str]) -> tuple[str, ...]:
    # squid rejects an exact name that a listed .suffix already covers, so drop those.
    unique = sorted(set(names))
    suffixes = [n for n in unique if n.startswith(".")]

    def covered(name: str) -> bool:
        return any(name != s and (name.endswith(s) or "." + name == s) for s in suffixes)

    return tuple(n for n in unique if not covered(n))
