"""Field types and validators of the paude.yaml schema: names, domains, paths, images."""

from __future__ import annotations

import ipaddress
import posixpath
import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, WithJsonSchema

# Session names are checked in paude/naming.py, which the quick commands import without
# pydantic.
from paude.backends import base
from paude.naming import SESSION_NAME_MAX as SESSION_NAME_MAX
from paude.naming import SESSION_NAME_RE as SESSION_NAME_RE
from paude.naming import validate_session_name as validate_session_name

Backend = Literal["podman", "openshift"]
# The claude flag `yolo: true` adds; plans and policies look for it in the agent's command.
YOLO_FLAG = "--dangerously-skip-permissions"
# Mandatory policy rules a session may waive, with a written reason (policies/rules.py).
WaivableRule = Literal["yolo-unrestricted-egress"]

DEFAULT_BASE_IMAGE = "docker.io/library/debian:bookworm-slim"
DEFAULT_BACKEND: Backend = base.DEFAULT_BACKEND
DEFAULT_ALLOWED_DOMAINS = ("default",)
# The Claude Code release paude is tested with: installed unless agent.version (in
# paude.yaml or this machine's config.yaml) names another.
CLAUDE_CODE_VERSION = "2.1.332"

DOMAIN_GROUPS: frozenset[str] = frozenset(
    {"default", "all", "vertexai", "pypi", "claude", "github"}
)

# Package names land in a Containerfile RUN line: only Debian's own name syntax (and
# an optional version) is allowed, so no shell metacharacter can get through.
_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.\-]+(?:=[A-Za-z0-9.+~:\-]+)?$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_QUANTITY_RE = re.compile(r"^[0-9]+(?:\.[0-9]+)?(?:Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_DNS_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
STATE_SCHEMES = ("file://", "s3://", "gs://", "azblob://", "https://")


def _is_ip_literal(host: str) -> bool:
    """True for IPv4/IPv6 addresses, bracketed or not."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def validate_domain(entry: str) -> str:
    """Return a normalised allowed_domains entry (group, host or .suffix) or raise ValueError."""
    if entry in DOMAIN_GROUPS:
        return entry
    groups = ", ".join(sorted(DOMAIN_GROUPS))
    if "://" in entry:
        host = urlsplit(entry).hostname
        hint = f", e.g. {host!r}" if host else ""
        raise ValueError(f"{entry!r} is a URL: list only the host name{hint}")
    candidate = entry.lower()
    wildcard = candidate.startswith(".")
    host = candidate[1:] if wildcard else candidate
    labels = host.split(".")
    ip_message = (
        f"{entry!r} is an IP address: the proxy only allows domain names, "
        "so list the host name instead"
    )
    if _is_ip_literal(host) or host.startswith("["):
        raise ValueError(ip_message)
    if "/" in host:
        raise ValueError(f"{entry!r} contains a path: list only the host name")
    if ":" in host:
        raise ValueError(f"{entry!r} contains a port: list only the host name (ports are fixed)")
    if host.startswith("*."):
        raise ValueError(f"write the wildcard {entry!r} as {'.' + host[2:]!r}")
    if len(host) > 253 or not all(_DNS_LABEL_RE.fullmatch(label) for label in labels):
        raise ValueError(
            f"{entry!r} is not a valid host name: dot-separated labels of 1-63 letters, "
            "digits or '-', not starting or ending with '-'"
        )
    # Resolvers read all-numeric forms such as '127.1' as addresses, so they are refused too.
    if labels[-1].isdigit():
        raise ValueError(ip_message)
    if len(labels) < 2:
        if wildcard:
            raise ValueError(
                f"wildcard {entry!r} is too broad: name at least a domain such as '.example.com'"
            )
        raise ValueError(
            f"{entry!r} is neither a group ({groups}) "
            "nor a full host name such as 'api.example.com'"
        )
    return "." + host if wildcard else host


def _check_image_ref(value: str) -> str:
    if not value or _CONTROL_RE.search(value) or any(c.isspace() for c in value):
        raise ValueError(f"{value!r} is not an image reference: it must be one word")
    if value.startswith("-"):
        raise ValueError(f"{value!r} is not an image reference: it must not start with '-'")
    return value


def _check_relative_path(value: str) -> str:
    # Build inputs are read on the host; a path outside the repository could pull
    # files such as ~/.ssh into the image the agent runs in.
    if not value or _CONTROL_RE.search(value) or value.startswith("-"):
        raise ValueError(f"{value!r} is not a usable path")
    if posixpath.isabs(value) or re.match(r"^[A-Za-z]:[\\/]", value):
        raise ValueError(f"{value!r} must be relative to the repository root, not absolute")
    normal = posixpath.normpath(value)
    if normal == ".." or normal.startswith("../"):
        raise ValueError(f"{value!r} points outside the repository")
    return value


def _check_env_value(value: str) -> str:
    # Values are written into Containerfile instructions, where a newline starts a new one.
    if "\n" in value or "\r" in value or "\x00" in value:
        raise ValueError("value must be a single line")
    return value


def _check_option(value: str) -> str:
    if not value or _CONTROL_RE.search(value) or value.startswith("-") or value != value.strip():
        raise ValueError(f"{value!r} is not a valid name")
    return value


def _matching(regex: re.Pattern[str], what: str) -> AfterValidator:
    """A validator accepting strings that match `regex`; `what` says the rule."""

    def check(value: str) -> str:
        if not regex.fullmatch(value):  # not match: `$` also matches before a final "\n"
            raise ValueError(f"{value!r} is not {what}")
        return value

    return AfterValidator(check)


def _pattern(regex: re.Pattern[str]) -> WithJsonSchema:
    """Advertise `regex` in the JSON Schema; the validator gives the readable error."""
    return WithJsonSchema({"type": "string", "pattern": regex.pattern})


SessionName = Annotated[str, AfterValidator(validate_session_name), _pattern(SESSION_NAME_RE)]
PackageName = Annotated[str, _matching(
    _PACKAGE_RE,
    "a Debian package name: lowercase letters, digits and '+.-', optionally '=VERSION' "
    "(one package per list entry)",
), _pattern(_PACKAGE_RE)]
EnvName = Annotated[str, _matching(
    _ENV_NAME_RE, "a variable name: letters, digits and '_', not starting with a digit"
), _pattern(_ENV_NAME_RE)]
Quantity = Annotated[str, _matching(
    _QUANTITY_RE, "a Kubernetes quantity such as '10Gi' or '500Mi'"
), _pattern(_QUANTITY_RE)]
Namespace = Annotated[str, _matching(
    _DNS_LABEL_RE, "a namespace name: a DNS label of at most 63 characters"
), _pattern(_DNS_LABEL_RE)]
StorageClass = Annotated[str, _matching(
    _DNS_SUBDOMAIN_RE, "a StorageClass name: a DNS subdomain"
), _pattern(_DNS_SUBDOMAIN_RE)]
EnvValue = Annotated[str, AfterValidator(_check_env_value)]
Domain = Annotated[str, AfterValidator(validate_domain)]
ImageRef = Annotated[str, AfterValidator(_check_image_ref)]
RepoPath = Annotated[str, AfterValidator(_check_relative_path)]
OptionName = Annotated[str, AfterValidator(_check_option)]


def check_single_line(value: str) -> str:
    """Refuse control characters (newlines would split a Containerfile or argv line)."""
    if _CONTROL_RE.search(value):
        raise ValueError("must be a single line without control characters")
    return value


def _check_host_path(value: str) -> str:
    check_single_line(value)
    if not (value.startswith("/") or value.startswith("~")):
        raise ValueError(f"{value!r} must be an absolute path or start with '~'")
    return value


HostPath = Annotated[str, AfterValidator(_check_host_path)]

# A release number lands in a Containerfile RUN line (npm's package@version, the native
# installer's argument): digits and dots, an optional pre-release, nothing a shell reads.
_AGENT_VERSION_RE = re.compile(r"^[0-9]{1,6}\.[0-9]{1,6}\.[0-9]{1,6}(?:-[0-9A-Za-z.]{1,40})?$")


def _check_agent_version(value: str) -> str:
    if not _AGENT_VERSION_RE.fullmatch(value):
        raise ValueError(f"invalid Claude Code version {value!r}: write a release number "
                         f"such as {CLAUDE_CODE_VERSION!r}")
    return value


AgentVersion = Annotated[str, AfterValidator(_check_agent_version),
                         WithJsonSchema({"type": "string",
                                         "pattern": _AGENT_VERSION_RE.pattern})]
SingleLine = Annotated[str, AfterValidator(check_single_line)]


def _check_argument(value: str) -> str:
    # An argv element may hold anything a program accepts, newlines included, but not NUL,
    # and it must be text: bytes that are not UTF-8 on paude's own command line arrive as
    # lone surrogates, which no argv, file or engine message can carry.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if any("\ud800" <= c <= "\udfff" for c in value):
        raise ValueError("must be UTF-8 text")
    return value


Argument = Annotated[str, AfterValidator(_check_argument)]


def _check_reason(value: str) -> str:
    text = check_single_line(value).strip()
    if len(text) < 10:
        raise ValueError("a waiver needs a reason a reviewer can judge (at least 10 "
                         "characters): why this session needs it, and who agreed")
    return text


WaiverReason = Annotated[str, AfterValidator(_check_reason)]
