"""Egress rules by method and path: the paude.yaml entries, the groups' safe defaults, and
their compiled form for squid.

A host that carries a method or path rule is inspected: the proxy terminates TLS for it
with the session's CA (stacks/ca.py) and checks every request; every other allowed host
stays a plain CONNECT tunnel. Paths are matched by squid's POSIX regular expressions, so
prefixes are escaped here and user patterns are held to the POSIX subset."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from paude.fields import validate_domain

# Methods squid knows by name. CONNECT is not a rule method: it opens the tunnel that an
# inspected host's requests then travel in, and is always admitted for an allowed host.
KNOWN_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE",
                 "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "REPORT",
                 "SEARCH", "MERGE", "CHECKOUT", "MKACTIVITY")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "REPORT", "SEARCH"})
_FORBIDDEN_IN_PATTERN = re.compile(r"\\[dDwWsSbBAZzQE]|\(\?|\\[0-9]")
# What a URL path and query may hold (RFC 3986), and for patterns the regex syntax too.
# Nothing squid's configuration reader treats specially: no quote (a quoted value names a
# file to read), no '#', no white space.
_PATH_CHARS = re.compile(r"/[A-Za-z0-9\-._~!$&()*+,;=:@/%?]*")
_PATTERN_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&()*+,;=:@/%?^\[\]{}|\\]+")
_POSIX_SPECIAL = re.compile(r"([.\[\]()*+?{}|^$\\])")


def validate_method(value: str) -> str:
    """An HTTP method squid knows, upper-cased."""
    method = value.upper()
    if method == "CONNECT":
        raise ValueError("CONNECT is not a rule method: an allowed host's tunnel is always "
                         "opened; list the methods sent inside it (GET, POST, ...)")
    if method not in KNOWN_METHODS:
        raise ValueError(f"{value!r} is not an HTTP method squid knows; use one of "
                         f"{', '.join(KNOWN_METHODS)}")
    return method


def validate_path(value: str) -> str:
    """A path prefix ('/v1/') or a POSIX pattern ('~^/repos/[^/]+/issues')."""
    if value.startswith("~"):
        pattern = value[1:]
        if not pattern:
            raise ValueError("'~' starts a pattern, but no pattern follows it")
        if not _PATTERN_CHARS.fullmatch(pattern):
            raise ValueError(f"pattern {pattern!r} may hold only the characters of URL paths "
                             "and regex syntax (no white space, quotes or '#')")
        if _FORBIDDEN_IN_PATTERN.search(pattern):
            raise ValueError(f"pattern {pattern!r} uses Perl syntax squid's POSIX regular "
                             "expressions lack (\\d, \\w, \\s, \\b, (?...), back references); "
                             "write classes such as [0-9] instead")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"pattern {pattern!r} does not parse: {exc}") from None
        return value
    if not _PATH_CHARS.fullmatch(value):
        raise ValueError(f"path {value!r} must start with '/' and hold only the characters of "
                         "URL paths: no white space, quotes or '#' (or write a pattern as "
                         "'~REGEX')")
    return value


def _rule_host(value: str) -> str:
    host = validate_domain(value)
    if "." not in host.lstrip("."):
        raise ValueError(f"{value!r} is a group; a rule names one host or '.suffix'")
    return host


Method = Annotated[str, AfterValidator(validate_method)]
PathRule = Annotated[str, AfterValidator(validate_path)]
RuleHost = Annotated[str, AfterValidator(_rule_host)]


class RequestRule(BaseModel):
    """One host with the methods and paths allowed (or, under denied_requests, refused)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: RuleHost = Field(description="An exact host name or a '.suffix' wildcard.")
    methods: list[Method] | None = Field(
        None, min_length=1, description="HTTP methods (GET, HEAD, POST, ...); unset = any.")
    paths: list[PathRule] | None = Field(
        None, min_length=1,
        description="Path prefixes ('/v1/') or POSIX patterns ('~^/repos/[^/]+/issues'), "
        "matched case-insensitively against path and query; unset = any.")

    @model_validator(mode="after")
    def _distinct(self) -> RequestRule:
        for field in ("methods", "paths"):
            values = getattr(self, field) or []
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"{field} lists {', '.join(repeated)} more than once")
        return self


@dataclass(frozen=True)
class Rule:
    """A compiled rule: `source` names where it came from (audit lines and errors)."""

    action: str  # "allow" or "deny"
    host: str
    methods: tuple[str, ...]  # empty: any method
    paths: tuple[str, ...]  # as written: '/prefix' or '~pattern'; empty: any path
    source: str

    @property
    def inspects(self) -> bool:
        """Whether the proxy must see inside the host's TLS to apply this rule."""
        return bool(self.methods or self.paths)

    @property
    def regexes(self) -> tuple[str, ...]:
        """The paths as squid urlpath_regex patterns."""
        return tuple(path_regex(p) for p in self.paths)

    @property
    def writes(self) -> bool:
        """Whether the rule lets through a request that changes something on the host."""
        return self.action == "allow" and not reads_only(self.methods, self.regexes)

    def describe(self) -> str:
        """One line for plans: 'github.com GET,HEAD' or 'deny pypi.org POST /legacy/'."""
        parts = ["deny"] if self.action == "deny" else []
        parts += [self.host, ",".join(self.methods) or "any-method"]
        parts += [" ".join(self.paths) or "any-path"]
        return " ".join(parts)


def path_regex(path: str) -> str:
    """A squid pattern for a '/prefix' or '~pattern' path."""
    if path.startswith("~"):
        return path[1:]
    return "^" + _POSIX_SPECIAL.sub(r"\\\1", path)


_UPLOAD_PACK = "~^/[^/]+/[^/]+/git-upload-pack$"
# POSTs that only read: git's fetch negotiation.
READ_POSTS = frozenset({_UPLOAD_PACK[1:]})


def reads_only(methods: Sequence[str], regexes: Sequence[str]) -> bool:
    """Whether requests with these methods (empty: any) to these paths (empty: any) only
    read: read methods, or POSTs confined to fetch endpoints."""
    if not methods:
        return False
    writes = [m for m in methods if m not in READ_METHODS]
    return not writes or (writes == ["POST"] and bool(regexes)
                          and set(regexes) <= READ_POSTS)
_READ = ("GET", "HEAD")

# The groups' safe defaults. github: clone and fetch (smart HTTP: GET info/refs for
# git-upload-pack, POST git-upload-pack) and reads of the web, API and raw content; no
# git-receive-pack, no API writes. pypi: GET only.
GROUP_RULES: dict[str, tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]] = {
    "github": (
        ("github.com", _READ, ()),
        ("github.com", ("POST",), (_UPLOAD_PACK,)),
        ("api.github.com", _READ, ()),
        ("codeload.github.com", _READ, ()),
        (".githubusercontent.com", _READ, ()),
    ),
    "pypi": tuple((host, _READ, ()) for host in
                  ("pypi.org", "files.pythonhosted.org", "pypi.python.org")),
}
# A push first asks for the receive-pack advertisement with a GET; refusing it by name
# makes `git push` fail at once with the proxy's page instead of after the upload.
GROUP_DENIES: dict[str, tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]] = {
    "github": (("github.com", (), ("~service=git-receive-pack", "~/git-receive-pack")),),
}

# Hosts where an upload is publication: code forges and package indexes. A rule letting a
# write method through to one of them is a policy finding (advisory).
PUBLIC_HOSTS = ("github.com", "api.github.com", "uploads.github.com", "gitlab.com",
                "bitbucket.org", "codeberg.org", "pypi.org", "upload.pypi.org",
                "test.pypi.org", "registry.npmjs.org", "crates.io", "rubygems.org",
                "hub.docker.com", "registry-1.docker.io", "ghcr.io", "quay.io")
PUBLIC_SUFFIXES = (".github.com", ".githubusercontent.com", ".gitlab.com")


def is_public(host: str) -> bool:
    """Whether `host` (or a '.suffix' covering it) is a public code or package host."""
    bare = host.lstrip(".")
    return (bare in PUBLIC_HOSTS or any(bare.endswith(s) for s in PUBLIC_SUFFIXES)
            or (host.startswith(".") and any(p.endswith(host) for p in PUBLIC_HOSTS)))


def group_rules(group: str) -> list[Rule]:
    """A group's rules, allow and deny, named after the group."""
    rules = [Rule("allow", h, m, p, f"{group}") for h, m, p in GROUP_RULES.get(group, ())]
    rules += [Rule("deny", h, m, p, f"{group}") for h, m, p in GROUP_DENIES.get(group, ())]
    return rules


def covers(pattern: str, host: str) -> bool:
    """Whether the dstdomain entry `pattern` (exact or '.suffix') matches `host`."""
    if pattern.startswith("."):
        bare = host.lstrip(".")
        return bare == pattern[1:] or bare.endswith(pattern)
    return pattern == host


class EgressError(ValueError):
    """Rules that contradict one another; `where` is the field path of the culprit."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.detail = message

    @property
    def loc(self) -> tuple[str | int, ...]:
        """The field path as a pydantic location: ('allowed_domains', 3)."""
        found = re.fullmatch(r"(\w+)\[(\d+)\]", self.where)
        return (found[1], int(found[2])) if found else (self.where,)


def check_overlaps(allows: Sequence[Rule], denies: Sequence[Rule]) -> None:
    """Refuse a deny entry that leaves an allow entry nothing to allow: one of the two is
    a mistake, and the plan must not guess which."""
    for deny in denies:
        for allow in allows:
            if not covers(deny.host, allow.host):
                continue
            methods = not deny.methods or (bool(allow.methods)
                                           and set(allow.methods) <= set(deny.methods))
            prefixes = [p for p in deny.paths if not p.startswith("~")]
            paths = not deny.paths or (bool(allow.paths) and all(
                not a.startswith("~") and any(a.startswith(q) for q in prefixes)
                for a in allow.paths))
            if methods and paths:
                raise EgressError(deny.source, f"refuses everything {allow.source} allows "
                                  f"({allow.describe()}); remove one of the two")


def unique_hosts(rules: Iterable[Rule]) -> tuple[str, ...]:
    """The hosts of `rules`, sorted, once each."""
    return tuple(sorted({r.host for r in rules}))
