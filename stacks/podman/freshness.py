"""Whether a built image still sits on the base its final FROM names.

An image's tag hashes its build inputs, and a base enters them by name only: rebuilding
`localhost/paude-base:bookworm` (`make base-image` picking up security updates, `make
proxy-base --refresh` a new squid) keeps every tag, so without this check no session would
ever run the new base. Comparing layers needs no record of the build: an image built on a
base starts with the base's layers, in order. When the base's layers are no longer a
prefix of the image's, the base changed after the build, and the image is built again.

One `podman image inspect` answers for both images, so a refresh costs no extra process."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from paude import proc

from .podman import PODMAN, is_missing

# The output key a refresh sets on an image whose base changed since its build; the
# program never declares it, so its presence alone is a diff.
BASE_CHANGED = "base_changed"


def from_lines(text: str, build_args: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """(image, stage name) per FROM line, build arguments filled in; options dropped."""
    found: list[tuple[str, str | None]] = []
    for line in text.splitlines():
        words = [w for w in line.split() if not w.startswith("--")]
        if len(words) < 2 or words[0].upper() != "FROM":
            continue
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: build_args.get(m.group(1), m.group(0)),
                       words[1])
        alias = words[3].lower() if len(words) >= 4 and words[2].upper() == "AS" else None
        found.append((image, alias))
    return found


def final_base(text: str, build_args: Mapping[str, str]) -> str | None:
    """The image the last stage builds on, following stage names back to an image; None
    for `scratch`, an unresolved build argument, or no FROM at all."""
    stages: dict[str, str] = {}
    resolved: str | None = None
    for image, alias in from_lines(text, build_args):
        resolved = stages.get(image.lower(), image)
        if alias:
            stages[alias] = resolved
    if resolved is None or resolved.lower() == "scratch" or "$" in resolved:
        return None
    return resolved


def base_of(props: Mapping[str, Any]) -> str | None:
    """The final base of an image resource, from the build files its state records (so
    stacks made before this check have it too)."""
    files = props.get("files") or {}
    text = files.get("Containerfile") or files.get("Dockerfile") or ""
    return final_base(str(text), props.get("build_args") or {})


def built_on(image: Mapping[str, Any], base: Mapping[str, Any]) -> bool | None:
    """Whether `image` (podman image inspect) is built on `base` as it is now; None when
    the two cannot be compared (another platform's image, layers not reported)."""
    if (image.get("Architecture"), image.get("Os")) != (base.get("Architecture"), base.get("Os")):
        return None
    mine = (image.get("RootFS") or {}).get("Layers") or []
    theirs = (base.get("RootFS") or {}).get("Layers") or []
    if not mine or not theirs:
        return None
    return mine[:len(theirs)] == theirs


def inspect_with_base(tag: str, base: str | None
                      ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The image `tag` and its base, with one podman call; None for either that is missing.

    podman prints the images it found and fails for the others, so each answer is matched
    to its name by the image's tags or id."""
    names = [tag] if base is None or base == tag else [tag, base]
    # The base comes from a FROM line the agent may have written: after `--` it is a
    # name, never an option.
    result = proc.run([PODMAN, "image", "inspect", "--", *names], check=False,
                      log_output=False)
    # A name podman cannot parse (an agent's FROM line) is as good as missing: no evidence.
    if not result.ok and not (is_missing(result.stderr)
                              or "invalid reference format" in result.stderr.lower()):
        raise proc.classify_failure(result)
    found = [d for d in json.loads(result.stdout or "[]") if isinstance(d, dict)]
    if result.ok and len(found) == len(names):
        return found[0], found[1] if len(names) == 2 else None
    image = next((d for d in found if _names(d, tag)), None)
    rest = next((d for d in found if d is not image and base is not None and _names(d, base)),
                None)
    return image, rest


def stale_base(tag: str, base: str | None) -> tuple[dict[str, Any] | None, bool]:
    """The image `tag` (None when missing) and whether its base changed since it was built.
    A base that is missing or cannot be compared is no evidence of a change."""
    image, found = inspect_with_base(tag, base)
    if image is None or found is None:
        return image, False
    return image, built_on(image, found) is False


def _names(found: Mapping[str, Any], name: str) -> bool:
    tags = found.get("RepoTags") or []
    ident = str(found.get("Id") or "")
    bare = name.removeprefix("sha256:")
    return name in tags or (len(bare) >= 12 and ident.startswith(bare)) or any(
        t.endswith("/" + name) for t in tags)
