"""The effective settings of this machine and where each comes from (`paude doctor`).

Layers, lowest first: paude's built-in defaults, $PAUDE_HOME/config.yaml, paude.yaml's
defaults (of the repository paude runs in), then each session's own entries, which doctor
does not list (`paude plan NAME` shows what a session builds)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from paude import machine
from paude.fields import CLAUDE_CODE_VERSION, DEFAULT_BASE_IMAGE
from paude.models import PaudeFile

BUILT_IN = "built-in"
MACHINE = "config.yaml"
REPOSITORY = "paude.yaml defaults"
PRECEDENCE = (f"{BUILT_IN} < {MACHINE} < {REPOSITORY} < sessions.NAME; proxy.base, "
              "engine.path and state.backend are this machine's alone; CA certificates add up")


@dataclass(frozen=True)
class Setting:
    """One effective value and the layer it came from."""

    name: str
    value: str
    origin: str


def effective(home: Path, file: PaudeFile | None = None) -> list[Setting]:
    """The settings a session on this machine starts from; `file` is the paude.yaml of the
    repository paude runs in, if any."""
    config = machine.load(home)
    defaults = file.defaults if file is not None else None
    image = defaults.image if defaults is not None else None
    agent = defaults.agent if defaults is not None else None
    out: list[Setting] = []

    def layered(name: str, built_in: str, mine: str | None, theirs: str | None) -> None:
        if theirs is not None:
            out.append(Setting(name, theirs, REPOSITORY))
        elif mine is not None:
            out.append(Setting(name, mine, MACHINE))
        else:
            out.append(Setting(name, built_in, BUILT_IN))

    repo_base = None
    if image is not None and image.dockerfile is not None:
        repo_base = f"(built from {image.dockerfile})"
    elif image is not None:
        repo_base = image.base
    layered("image.base", DEFAULT_BASE_IMAGE, config.image.base, repo_base)
    out.append(Setting("proxy.base", config.proxy_base,
                       MACHINE if config.proxy.base or config.image.base else BUILT_IN))
    out.extend(_certificates(config, image.ca_certificates if image is not None else []))
    layered("agent.install", "native", config.agent.install,
            agent.install if agent is not None and "install" in agent.model_fields_set else None)
    layered("agent.version", CLAUDE_CODE_VERSION, config.agent.version,
            agent.version if agent is not None else None)
    out.append(Setting("engine.path", config.engine.path or "(searched: $PAUDE_HOME/bin, PATH)",
                       MACHINE if config.engine.path else BUILT_IN))
    explicit = os.environ.get("PAUDE_STATE_BACKEND")
    if explicit:
        out.append(Setting("state.backend", explicit, "PAUDE_STATE_BACKEND"))
    else:
        out.append(Setting("state.backend", config.state.backend or "(local, under PAUDE_HOME)",
                           MACHINE if config.state.backend else BUILT_IN))
    return out


def _certificates(config: machine.MachineConfig, repository: list[str]) -> list[Setting]:
    own = list(config.image.ca_certificates)
    host = [f for f in config.ca_files() if f not in own]
    found = [Setting("image.ca_certificates", f, MACHINE) for f in own]
    found += [Setting("image.ca_certificates", f, f"{MACHINE} trust_host_certificates")
              for f in host]
    if config.image.trust_host_certificates and not host:
        found.append(Setting("image.ca_certificates", "(the host adds none)",
                             f"{MACHINE} trust_host_certificates"))
    found += [Setting("image.ca_certificates", f, REPOSITORY)
              for f in repository if f not in own and f not in host]
    return found or [Setting("image.ca_certificates", "(none)", BUILT_IN)]
