"""Policy checks of image builds: sandboxed, and reaching no more than they need."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from paude import domains, naming

from .resources import Resource, Violation

_IMAGE_KINDS = ("podman:Image", "cluster:PushedImage")


def _images(resources: Sequence[Resource]) -> Iterator[Resource]:
    return (r for r in resources if r.kind in _IMAGE_KINDS)


def _is_proxy_image(res: Resource) -> bool:
    # paude's own proxy image: built from paude's Containerfile on the machine's base.
    return str(res.props.get("tag", "")).startswith(
        f"localhost/{naming.image_repository('proxy')}:")


def _built_already(res: Resource) -> bool:
    # The stack's record of an image it already has and keeps (an unchanged tag): nothing
    # is built. A stack applied before builds were sandboxed records no build proxy for it,
    # and must still plan after an upgrade; a new or changed tag is checked as declared.
    return res.props.get("built") is True and bool(res.props.get("image_id"))


def check_builds_sandboxed(resources: Sequence[Resource], _: Mapping[str, Any]
                           ) -> Iterator[Violation]:
    """Every build that takes anything from the repository runs behind the build proxy."""
    for res in _images(resources):
        if _is_proxy_image(res) or _built_already(res):
            continue
        if not res.props.get("build_proxy_image") or not res.props.get("build_squid_conf"):
            yield Violation(f"image {res.props.get('tag', res.name)} would build with the "
                            "host's network instead of behind the build proxy", res)


def check_build_allowlist(resources: Sequence[Resource], _: Mapping[str, Any]
                          ) -> Iterator[Violation]:
    """Build steps run the repository's commands: every host they may reach beyond PyPI and
    the installers' is somewhere a build could send the code it sees."""
    default = set(domains.expand(["pypi", "deb.debian.org", "security.debian.org",
                                  "registry.npmjs.org", "claude.ai",
                                  "downloads.claude.ai"]).tunnelled().describe())
    for res in _images(resources):
        entries = res.props.get("build_allowlist")
        if not isinstance(entries, list):
            continue
        extra = sorted(str(e) for e in entries if str(e) not in default)
        if extra:
            yield Violation(f"image builds may reach more than the default: {', '.join(extra)}",
                            res)
