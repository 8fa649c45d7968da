"""Build contexts for the agent and proxy images, and the content hash that tags them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from paude.models import Session
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

    @property
    def digest(self) -> str:
        """sha256 over every build input; equal digests mean identical builds."""
        payload = json.dumps(
            {"format": IMAGE_FORMAT, "files": self.files, "build_args": self.build_args},
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode()).hexdigest()

    @property
    def tag(self) -> str:
        """The content-addressed tag: an unchanged definition maps to an existing image."""
        return f"localhost/{self.repository}:{self.digest[:16]}"


def agent_build(session: Session) -> BuildSpec:
    """The agent image: the session's base plus packages, setup and paude's entrypoint."""
    image = session.image
    containerfile = render(
        "Containerfile.agent.j2",
        base=image.base,
        base_packages=list(AGENT_BASE_PACKAGES),
        packages=list(image.packages),
        setup=image.setup,
        env=dict(image.env),
    )
    files = {
        "Containerfile": containerfile,
        "agent-entrypoint.sh": template_source("agent-entrypoint.sh"),
    }
    return BuildSpec("paude-agent", files, dict(image.build_args))


def proxy_build(session: Session) -> BuildSpec:
    """The proxy image: squid on the session's base image; its allowlist is not baked in."""
    containerfile = render("Containerfile.proxy.j2", base=session.image.base)
    files = {
        "Containerfile": containerfile,
        "proxy-entrypoint.sh": template_source("proxy-entrypoint.sh"),
    }
    return BuildSpec("paude-proxy", files)
