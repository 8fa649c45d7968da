"""Machine-level settings: $PAUDE_HOME/config.yaml, outside every repository.

paude.yaml is the team's and the agent can edit it; what belongs to one machine, and what
the agent must not choose, lives here. Precedence, lowest first: paude's built-in defaults,
this file, paude.yaml's defaults, paude.yaml's sessions.NAME. Three kinds of exception:

- machine only (paude.yaml cannot set them): proxy.base (the proxy is the agent's egress
  guard: a base named in the repository would let the agent pick the squid binary that
  enforces its own allowlist), engine.path (a binary the host runs), state.backend (where
  paude writes state and sends the backend's credentials);
- added to, never replaced: image.ca_certificates and trust_host_certificates (the
  certificates this machine needs are trusted whatever paude.yaml lists);
- overridable: image.base, agent.install and agent.version, which paude.yaml could always
  choose and which widen nothing the repository could not widen already."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from paude.certs import host_certificate_files
from paude.config import line_in, load_yaml_model
from paude.errors import ConfigError, ConfigProblem
from paude.fields import DEFAULT_BASE_IMAGE, AgentVersion, HostPath, ImageRef
from paude.home import paude_home
from paude.models import StateConfig
from paude.sections import CaFile

MACHINE_FILE = "config.yaml"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MachineImage(_Model):
    """Image settings of this machine."""

    base: ImageRef | None = Field(
        None, description="The base image used when paude.yaml names none (a local image or "
        "a registry mirror, e.g. localhost/paude-base:bookworm).")
    ca_certificates: list[CaFile] = Field(
        default_factory=list, description="CA certificate files (PEM) every session's images "
        "trust, before any paude.yaml lists: this machine's TLS-inspecting proxy.")
    trust_host_certificates: StrictBool = Field(
        False, description="Also trust the CA certificates this host adds to its own trust "
        "store (/usr/local/share/ca-certificates, /etc/pki/ca-trust/source/anchors).")


class MachineProxy(_Model):
    """The egress proxy's image, which no repository can choose."""

    base: ImageRef | None = Field(
        None, description="Debian-based image the proxy is built on; defaults to image.base "
        "of this file, then the built-in base.")


class MachineAgent(_Model):
    """How Claude Code gets into the agent images built here, unless paude.yaml says."""

    install: Literal["native", "npm", "none"] | None = Field(
        None, description="native (Anthropic's installer, the built-in default), npm (where "
        "only the npm registry is reachable) or none.")
    version: AgentVersion | None = Field(
        None, description="The Claude Code release to install; the release paude is tested "
        "with when unset.")


class MachineEngine(_Model):
    """Where the Pulumi engine is, when not in $PAUDE_HOME/bin or on PATH."""

    path: HostPath | None = Field(
        None, description="A folder holding the pulumi CLI and its plugins; searched first.")


class MachineConfig(_Model):
    """The whole $PAUDE_HOME/config.yaml."""

    version: Literal[1] = Field(1, description="Format version of this file.")
    image: MachineImage = Field(default_factory=MachineImage,
                                description="Image settings of this machine.")
    proxy: MachineProxy = Field(default_factory=MachineProxy,
                                description="The egress proxy's image.")
    agent: MachineAgent = Field(default_factory=MachineAgent,
                                description="How Claude Code is installed into agent images.")
    engine: MachineEngine = Field(default_factory=MachineEngine,
                                  description="Where the Pulumi engine is.")
    state: StateConfig = Field(default_factory=StateConfig, description=(
        "Where the sessions' state lives (PAUDE_STATE_BACKEND overrides it)."))

    @property
    def default_base(self) -> str:
        """The agent's base image when the repository names none."""
        return self.image.base or DEFAULT_BASE_IMAGE

    @property
    def proxy_base(self) -> str:
        """The proxy's base image."""
        return self.proxy.base or self.default_base

    def ca_files(self) -> list[str]:
        """Every CA file this machine has every image trust, its own list first."""
        files = list(self.image.ca_certificates)
        if self.image.trust_host_certificates:
            files += [f for f in host_certificate_files() if f not in files]
        return files


def state_backend(file_backend: str | None, definition: Path,
                  home: Path | None = None) -> str | None:
    """The state backend: PAUDE_STATE_BACKEND, else this machine's state.backend, else local
    state (None). paude.yaml may declare one, but only as a check that must match: a
    repository the agent can edit must not choose where paude writes state and sends the
    backend's credentials."""
    explicit = os.environ.get("PAUDE_STATE_BACKEND")
    if explicit:
        return explicit  # the user's own choice for this command: the file's is moot
    chosen = load(home).state.backend
    if file_backend is not None and file_backend != chosen:
        raise ConfigError(str(definition), [ConfigProblem(
            "state.backend", f"names {file_backend!r}, but this machine uses "
            f"{chosen or 'local state under PAUDE_HOME'}: a repository cannot choose where "
            "paude keeps state (the agent can edit paude.yaml)",
            line_in(definition, ("state", "backend")))],
            hint=f"to use that backend here, set state.backend in {machine_file(home)} or "
                 "PAUDE_STATE_BACKEND; or remove state.backend from paude.yaml")
    return chosen


def machine_file(home: Path | None = None) -> Path:
    """Where this machine's settings live."""
    return (home or paude_home()) / MACHINE_FILE


def load(home: Path | None = None) -> MachineConfig:
    """This machine's settings (all defaults when the file does not exist)."""
    path = machine_file(home)
    if not path.is_file():
        return MachineConfig()
    return load_yaml_model(path, MachineConfig,
                           top="version, image, proxy, agent, engine and state",
                           missing_hint="", what="machine settings",
                           hint="edit the file; docs/security.md lists its fields")
