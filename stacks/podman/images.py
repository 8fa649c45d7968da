"""Build contexts for the agent and proxy images, and the content hash that tags them."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paude import domains, naming
from paude.certs import NotCertificates, read_certificates
from paude.domains import Allowlist
from paude.errors import ConfigError, ConfigProblem
from paude.fields import CLAUDE_CODE_VERSION
from paude.models import DEFAULT_BASE_IMAGE, Session
from paude.render import render, template_source

from . import buildcheck, freshness

# Bump when the meaning of a build input changes without its text changing.
IMAGE_FORMAT = 1
__all__ = ["CLAUDE_CODE_VERSION", "BuildSpec", "agent_build", "image_props", "proxy_build"]
# What `venv` needs to create the container's own virtual environment.
VENV_PACKAGES = ("python3", "python3-venv")
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
    # Builds of anything the repository shapes run in the build sandbox (buildbox.py),
    # reaching only this allowlist; None: paude's own proxy image, built from paude's
    # Containerfile on the machine's base, with no sandbox to depend on.
    build_allowlist: Allowlist | None = None
    # In the tag only when set in paude.yaml, so tags made before the setting existed hold.
    build_domains: tuple[str, ...] | None = None
    # The Claude Code release an agent image installs (its Containerfile, hashed, names it);
    # recorded beside the build so a plan can say "Claude Code X -> Y".
    claude_code: str | None = None
    # podman build --platform; in the tag only when set, so tags made before it hold.
    platform: str | None = None
    # The ignore file paude read for the context, handed to podman (--ignorefile) so what
    # paude checked and hashed is what podman leaves out; in the tag only when set.
    ignore_file: str | None = None

    @property
    def digest(self) -> str:
        """sha256 over every build input; equal digests mean identical builds."""
        payload = json.dumps(
            {"format": IMAGE_FORMAT, "files": self.files, "build_args": self.build_args,
             "dockerfile": self.dockerfile, "context": self.context_digest,
             **({"build_domains": list(self.build_domains)}
                if self.build_domains is not None else {}),
             **({"platform": self.platform} if self.platform else {}),
             **({"ignore_file": self.ignore_file} if self.ignore_file else {})},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    @property
    def tag(self) -> str:
        """The content-addressed tag: an unchanged definition maps to an existing image."""
        return f"localhost/{self.repository}:{self.digest[:16]}"

    @property
    def _build_file(self) -> str:
        return self.files.get("Containerfile") or self.files.get("Dockerfile") or ""

    @property
    def bases(self) -> list[str]:
        """The images this build starts FROM (not its own stages), with build arguments
        filled in: what the base-image-pinned policy rule reviews."""
        stages: set[str] = set()
        out: list[str] = []
        for image, alias in freshness.from_lines(self._build_file, self.build_args):
            if image.lower() not in stages and image not in out:
                out.append(image)
            if alias:
                stages.add(alias)
        return out

    @property
    def final_base(self) -> str | None:
        """The image the built image's layers start with (see freshness.py)."""
        return freshness.final_base(self._build_file, self.build_args)


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
    if spec.claude_code:
        props["claude_code"] = spec.claude_code
    if spec.platform:
        props["platform"] = spec.platform
    if spec.context_dir:
        props.update(context_dir=spec.context_dir, dockerfile=spec.dockerfile)
    if spec.ignore_file:
        props["ignore_file"] = spec.ignore_file
    if spec.build_allowlist is not None:
        conf = render("squid.conf.j2", session="build",
                      unrestricted=spec.build_allowlist.unrestricted,
                      domains=list(spec.build_allowlist.domains),
                      regexes=list(spec.build_allowlist.regexes), gateway=False,
                      inspected=[], rules=[], denies=[],
                      gateway_port=None, gateway_domains=[], gateway_regexes=[])
        props.update(build_allowlist=spec.build_allowlist.describe(),
                     build_squid_conf=base64.b64encode(conf.encode()).decode())
    return props


DEFAULT_BUILD_DOMAINS = ("pypi",)
# Hosts paude's own Containerfile fetches from, whatever the allowlist says.
_BUILD_ESSENTIALS = {"debian": ("deb.debian.org", "security.debian.org"),
                     "npm": ("registry.npmjs.org",),
                     "native": ("claude.ai", "downloads.claude.ai")}


def build_allowlist(session: Session) -> Allowlist:
    """What the session's image builds may reach: image.build_domains (else PyPI), plus the
    Debian archive and the agent installer's host. Not the session's allowed_domains: an
    allowlist change must not touch the images."""
    image = session.image
    entries = list(image.build_domains if image.build_domains is not None
                   else DEFAULT_BUILD_DOMAINS)
    entries += _BUILD_ESSENTIALS["debian"] + _BUILD_ESSENTIALS.get(session.agent.install, ())
    # Builds run no TLS inspection (their clients do not trust a session CA).
    return domains.expand(entries).tunnelled()


def _build_domains(session: Session) -> tuple[str, ...] | None:
    found = session.image.build_domains
    return tuple(found) if found is not None else None


def agent_build(session: Session, base: str | None = None,
                feature_files: dict[str, str] | None = None) -> BuildSpec:
    """The agent image: the session's base plus packages, Claude Code, setup and paude's
    entrypoint; then the devcontainer features (`feature_files`, features.build_files),
    in a second build without network."""
    image = session.image
    install = session.agent.install
    extra = ["curl"] if install == "native" else ["nodejs", "npm"] if install == "npm" else []
    cas = ca_files(session)
    containerfile = render(
        "Containerfile.agent.j2",
        base=base or image.base,
        base_packages=list(AGENT_BASE_PACKAGES) + extra,
        packages=list(image.packages) + [p for p in VENV_PACKAGES if p not in image.packages
                                         and session.venv != "none"],
        setup=image.setup,
        env=dict(image.env),
        install=install,
        ca_certificates=bool(cas),
        claude_code_version=_claude_code(session) or "",
    )
    files = {
        "Containerfile": containerfile,
        "agent-entrypoint.sh": template_source("agent-entrypoint.sh"),
        "agent-setup.sh": template_source("agent-setup.sh"),
        **cas,
    }
    if image.setup:
        files["paude-setup.sh"] = image.setup.rstrip("\n") + "\n"
    files.update(feature_files or {})
    return BuildSpec(naming.image_repository("agent"), files,
                     build_allowlist=build_allowlist(session),
                     build_domains=_build_domains(session),
                     claude_code=_claude_code(session), platform=image.platform)


def _claude_code(session: Session) -> str | None:
    """The Claude Code release the agent image installs (None: it installs none)."""
    if session.agent.install == "none":
        return None
    return session.agent.version or CLAUDE_CODE_VERSION


def proxy_build(session: Session) -> BuildSpec:
    """The proxy image: squid on a base the repository's Dockerfile cannot touch; its
    allowlist is not baked in (an allowlist change must not rebuild it)."""
    # The machine's choice (paude.machine): never the repository's image.base or Dockerfile.
    base = session.proxy.base or DEFAULT_BASE_IMAGE
    cas = ca_files(session)
    containerfile = render("Containerfile.proxy.j2", base=base, ca_certificates=bool(cas))
    files = {
        "Containerfile": containerfile,
        "proxy-entrypoint.sh": template_source("proxy-entrypoint.sh"),
        "gateway.py": template_source("gateway.py"),
        "gateway_github.py": template_source("gateway_github.py"),
        "ERR_PAUDE_BLOCKED": template_source("ERR_PAUDE_BLOCKED"),
        **cas,
    }
    return BuildSpec(naming.image_repository("proxy"), files)


def ca_files(session: Session) -> dict[str, str]:
    """Build-context files for image.ca_certificates: one certificate per .crt file, since
    update-ca-certificates expects that; the certificates' text is hashed into the tags.

    Only certificates are copied, re-encoded, so that no other content of a host file the
    repository names (a private key beside a certificate) reaches an image."""
    files: dict[str, str] = {}
    for index, source in enumerate(session.image.ca_certificates):
        try:
            blocks = read_certificates(Path(source).expanduser())
        except OSError as exc:
            raise ConfigError("paude.yaml", [ConfigProblem(
                f"image.ca_certificates.{index}", f"cannot read {source}: {exc.strerror}")],
                hint="list PEM certificate files that exist on this machine") from None
        except NotCertificates as exc:
            raise ConfigError("paude.yaml", [ConfigProblem(
                f"image.ca_certificates.{index}", f"{source} {exc}")],
                hint="list PEM files that hold only CA certificates") from None
        for number, block in enumerate(blocks):
            files[f"ca/paude-{index}-{number}.crt"] = block
    return files


def dockerfile_paths(session: Session) -> tuple[str, str]:
    """The Dockerfile and its build context, relative to the repository ("" when the session
    names a base image instead)."""
    image = session.image
    if image.dockerfile is None:
        return "", ""
    return image.dockerfile, image.context or str(Path(image.dockerfile).parent)


def dockerfile_build(session: Session, root: Path, *,
                     files: Path | None = None) -> BuildSpec | None:
    """The user's own base image from image.dockerfile, or None when the session names a base.

    Its tag hashes the Dockerfile and every file of the build context, so editing a file
    the Dockerfile copies rebuilds it, and nothing else does. `files` reads the repository's
    files from another folder (a base commit's, written out by paude plan --base) while
    the paths recorded, which the tag hashes, stay under `root`."""
    image = session.image
    if image.dockerfile is None:
        return None
    recorded_root = root
    root = files or root
    source = str(root / (session.image_source if session.image_source != "default"
                         else "paude.yaml"))
    dockerfile_path, context_path = dockerfile_paths(session)
    dockerfile = buildcheck.inside(root, root / dockerfile_path, "image.dockerfile", source)
    context = buildcheck.inside(root, root / context_path, "image.context", source)
    if not dockerfile.is_file():
        raise ConfigError(source, [ConfigProblem(
            "image.dockerfile", f"{image.dockerfile} does not exist in {root}")])
    if not context.is_dir():
        raise ConfigError(source, [ConfigProblem(
            "image.context", f"{image.context} is not a folder in {root}")])
    ignore_path = ignore_file(context, dockerfile)
    if ignore_path is not None:
        ignore_path = buildcheck.inside(root, ignore_path, "image.context", source)
    ignore = _ignore_patterns(context, dockerfile)
    links = buildcheck.escaping_links(context, root, lambda rel: _ignored(rel, ignore))
    if links:
        raise ConfigError(source, [ConfigProblem(
            "image.context", f"the build context has symlinks leading outside the repository: "
            f"{'; '.join(links[:5])}")],
            hint="replace them with the files themselves, or list them in "
                 f"{_ignore_name(ignore_path)}; podman would copy what they point "
                 "at into the image")
    text = _text(dockerfile)
    problems = buildcheck.dockerfile_problems(text)
    if problems:
        raise ConfigError(str(dockerfile), problems, what="Dockerfile",
                          hint="the Dockerfile may only build from its context, through the "
                               "build proxy")
    return BuildSpec(
        "paude-userbase",
        {"Dockerfile": text},
        dict(image.build_args),
        context_dir=_recorded(context, root, recorded_root),
        dockerfile=_recorded(dockerfile, root, recorded_root),
        context_digest=context_digest(context, dockerfile),
        build_allowlist=build_allowlist(session),
        build_domains=_build_domains(session),
        platform=image.platform,
        ignore_file=(_recorded(ignore_path, root, recorded_root) if ignore_path is not None
                     else None),
    )


def _recorded(path: Path, root: Path, recorded_root: Path) -> str:
    if root == recorded_root:
        return str(path)
    return str(recorded_root / path.relative_to(root.resolve()))


def context_files(context: Path, dockerfile: Path | None = None) -> list[tuple[str, Path]]:
    """(path relative to the context, path) of every file and symlink the build sees, by
    path: .git and ignored entries are left out. A symlink is listed, never followed
    (rglob does not descend into linked folders)."""
    ignore = _ignore_patterns(context, dockerfile)
    out = []
    for path in sorted(p for p in context.rglob("*") if p.is_symlink() or p.is_file()):
        rel = path.relative_to(context).as_posix()
        if rel.split("/", 1)[0] == ".git" or _ignored(rel, ignore):
            continue
        out.append((rel, path))
    return out


def context_digest(context: Path, dockerfile: Path | None = None) -> str:
    """sha256 over the paths and contents of a build context, minus ignored files."""
    digest = hashlib.sha256()
    for rel, path in context_files(context, dockerfile):
        if path.is_symlink():
            continue
        digest.update(rel.encode() + b"\0")
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def _text(path: Path) -> str:
    """A build file's text; ConfigError when it is not UTF-8 (the checks read it as text,
    and a file they cannot read is not built)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [ConfigProblem(
            "(file)", f"is not UTF-8 text (byte {exc.start})")],
            what="build file", hint="save the file as UTF-8") from None


def ignore_file(context: Path, dockerfile: Path | None = None) -> Path | None:
    """The ignore file a build of `context` uses, in podman's order of preference: beside
    the Dockerfile (`Dockerfile.containerignore`, `Dockerfile.dockerignore`: podman 4.5 and
    later), then the context's `.containerignore`, then its `.dockerignore`. The build is
    handed this file (--ignorefile), so podman's release cannot pick another one."""
    candidates = [context / ".containerignore", context / ".dockerignore"]
    if dockerfile is not None:
        candidates[:0] = [dockerfile.with_name(f"{dockerfile.name}.containerignore"),
                          dockerfile.with_name(f"{dockerfile.name}.dockerignore")]
    return next((c for c in candidates if c.is_symlink() or c.exists()), None)


def _ignore_name(path: Path | None) -> str:
    """The ignore file as a hint names it: the one the build reads, else .dockerignore."""
    if path is None:
        return "the context's .dockerignore"
    return f"{path.name} (the ignore file this build reads)"


def _ignore_patterns(context: Path, dockerfile: Path | None = None) -> list[str]:
    path = ignore_file(context, dockerfile)
    if path is None or not path.is_file():
        return []
    lines = _text(path).splitlines()
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
