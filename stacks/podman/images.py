"""Build contexts for the agent and proxy images, and the content hash that tags them."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paude.errors import ConfigError, ConfigProblem
from paude.models import DEFAULT_BASE_IMAGE, Session
from paude.render import render, template_source

# Bump when the meaning of a build input changes without its text changing.
IMAGE_FORMAT = 1
# What every agent image needs whatever the user's configuration says.
AGENT_BASE_PACKAGES = ("bash", "ca-certificates", "coreutils", "git", "tmux", "procps")


@dataclass(frozen=True)
class BuildSpec:
    """Everything that goes into one image build."""

    repository: str
    files: dict[str, str]
    build_args: dict[str, str] = field(default_factory=dict)
    # A user's own Dockerfile builds from a folder of the repository instead of `files`.
    context_dir: str | None = None
    dockerfile: str | None = None
    context_digest: str = ""

    @property
    def digest(self) -> str:
        """sha256 over every build input; equal digests mean identical builds."""
        payload = json.dumps(
            {"format": IMAGE_FORMAT, "files": self.files, "build_args": self.build_args,
             "dockerfile": self.dockerfile, "context": self.context_digest},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    @property
    def tag(self) -> str:
        """The content-addressed tag: an unchanged definition maps to an existing image."""
        return f"localhost/{self.repository}:{self.digest[:16]}"

    @property
    def bases(self) -> list[str]:
        """The images this build starts FROM (not its own stages), with build arguments
        filled in: what the base-image-pinned policy rule reviews."""
        text = self.files.get("Containerfile") or self.files.get("Dockerfile") or ""
        stages: set[str] = set()
        out: list[str] = []
        for line in text.splitlines():
            words = [w for w in line.split() if not w.startswith("--")]
            if len(words) < 2 or words[0].upper() != "FROM":
                continue
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: self.build_args.get(m.group(1), m.group(0)),
                           words[1])
            if len(words) >= 4 and words[2].upper() == "AS":
                stages.add(words[3].lower())
            if image.lower() not in stages and image not in out:
                out.append(image)
        return out


def image_props(spec: BuildSpec, rebuild: str = "") -> dict[str, Any]:
    """The inputs of an image resource built from `spec` (podman, or pushed to a registry).

    A non-empty `rebuild` token rebuilds without the layer cache."""
    props: dict[str, Any] = {
        "tag": spec.tag, "files": spec.files, "build_args": spec.build_args,
        "labels": {"paude.managed": "true", "paude.build-digest": spec.digest},
        "rebuild": rebuild,
        # Not a build input (the tag already covers it): recorded for the policy pack.
        "base_images": spec.bases,
    }
    if spec.context_dir:
        props.update(context_dir=spec.context_dir, dockerfile=spec.dockerfile)
    return props


def agent_build(session: Session, base: str | None = None) -> BuildSpec:
    """The agent image: the session's base plus packages, Claude Code, setup and paude's
    entrypoint."""
    image = session.image
    install = session.agent.install
    extra = ["curl"] if install == "native" else ["nodejs", "npm"] if install == "npm" else []
    cas = ca_files(session)
    containerfile = render(
        "Containerfile.agent.j2",
        base=base or image.base,
        base_packages=list(AGENT_BASE_PACKAGES) + extra,
        packages=list(image.packages),
        setup=image.setup,
        env=dict(image.env),
        install=install,
        ca_certificates=bool(cas),
    )
    files = {
        "Containerfile": containerfile,
        "agent-entrypoint.sh": template_source("agent-entrypoint.sh"),
        **cas,
    }
    if image.setup:
        files["paude-setup.sh"] = image.setup.rstrip("\n") + "\n"
    return BuildSpec("paude-agent", files)


def proxy_build(session: Session) -> BuildSpec:
    """The proxy image: squid on a base the repository's Dockerfile cannot touch; its
    allowlist is not baked in (an allowlist change must not rebuild it)."""
    base = session.proxy.base or session.image.base or DEFAULT_BASE_IMAGE
    cas = ca_files(session)
    containerfile = render("Containerfile.proxy.j2", base=base, ca_certificates=bool(cas))
    files = {
        "Containerfile": containerfile,
        "proxy-entrypoint.sh": template_source("proxy-entrypoint.sh"),
        "ERR_PAUDE_BLOCKED": template_source("ERR_PAUDE_BLOCKED"),
        **cas,
    }
    return BuildSpec("paude-proxy", files)


_PEM_END = "-----END CERTIFICATE-----"


def ca_files(session: Session) -> dict[str, str]:
    """Build-context files for image.ca_certificates: one certificate per .crt file, since
    update-ca-certificates expects that; the certificates' text is hashed into the tags."""
    files: dict[str, str] = {}
    for index, source in enumerate(session.image.ca_certificates):
        path = Path(source).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError("paude.yaml", [ConfigProblem(
                f"image.ca_certificates.{index}", f"cannot read {source}: {exc.strerror}")],
                hint="list PEM certificate files that exist on this machine") from None
        blocks = [b.strip() + "\n" + _PEM_END + "\n" for b in text.split(_PEM_END) if
                  "-----BEGIN CERTIFICATE-----" in b]
        if not blocks:
            raise ConfigError("paude.yaml", [ConfigProblem(
                f"image.ca_certificates.{index}", f"{source} holds no PEM certificate")])
        for number, block in enumerate(blocks):
            body = block[block.index("-----BEGIN CERTIFICATE-----"):]
            files[f"ca/paude-{index}-{number}.crt"] = body
    return files


def dockerfile_paths(session: Session) -> tuple[str, str]:
    """The Dockerfile and its build context, relative to the repository ("" when the session
    names a base image instead)."""
    image = session.image
    if image.dockerfile is None:
        return "", ""
    return image.dockerfile, image.context or str(Path(image.dockerfile).parent)


def dockerfile_build(session: Session, root: Path) -> BuildSpec | None:
    """The user's own base image from image.dockerfile, or None when the session names a base.

    Its tag hashes the Dockerfile and every file of the build context, so editing a file
    the Dockerfile copies rebuilds it, and nothing else does."""
    image = session.image
    if image.dockerfile is None:
        return None
    dockerfile_path, context_path = dockerfile_paths(session)
    dockerfile = (root / dockerfile_path).resolve()
    context = (root / context_path).resolve()
    if not dockerfile.is_file():
        raise ConfigError(f"{root}/paude.yaml", [ConfigProblem(
            "image.dockerfile", f"{image.dockerfile} does not exist in {root}")])
    if not context.is_dir():
        raise ConfigError(f"{root}/paude.yaml", [ConfigProblem(
            "image.context", f"{image.context} is not a folder in {root}")])
    return BuildSpec(
        "paude-userbase",
        {"Dockerfile": dockerfile.read_text(encoding="utf-8")},
        dict(image.build_args),
        context_dir=str(context),
        dockerfile=str(dockerfile),
        context_digest=context_digest(context),
    )


def context_files(context: Path) -> list[tuple[str, Path]]:
    """(path relative to the context, path) of every file and symlink the build sees, by
    path: .git and .dockerignore'd entries are left out. A symlink is listed, never
    followed (rglob does not descend into linked folders)."""
    ignore = _ignore_patterns(context)
    out = []
    for path in sorted(p for p in context.rglob("*") if p.is_symlink() or p.is_file()):
        rel = path.relative_to(context).as_posix()
        if rel.split("/", 1)[0] == ".git" or _ignored(rel, ignore):
            continue
        out.append((rel, path))
    return out


def context_digest(context: Path) -> str:
    """sha256 over the paths and contents of a build context, minus .dockerignore'd files."""
    digest = hashlib.sha256()
    for rel, path in context_files(context):
        if path.is_symlink():
            continue
        digest.update(rel.encode() + b"\0")
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def _ignore_patterns(context: Path) -> list[str]:
    path = context / ".dockerignore"
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [ln.strip().strip("/") for ln in lines if ln.strip() and not ln.startswith("#")]


def _ignored(rel: str, patterns: list[str]) -> bool:
    # podman's semantics: `*` and `?` stay within one path segment, `**` spans folders,
    # and a pattern naming a folder ignores everything under it; the last match wins.
    parts = rel.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _pattern_regex(pattern[1:] if negate else pattern)
        if any(regex.fullmatch(p) for p in prefixes):
            ignored = not negate
    return ignored


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            if pattern.startswith("/", i):
                out.append("/?")
                i += 1
            continue
        char = pattern[i]
        out.append("[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char))
        i += 1
    return re.compile("".join(out))
