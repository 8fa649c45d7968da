"""The sections of a session in paude.yaml: the agent's image, how the agent starts, the
cluster settings and the proxy (paude/models.py assembles them into sessions)."""

from __future__ import annotations

import posixpath
import re
import shlex
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from paude.agent_env import check_name
from paude.certs import NotCertificates, read_certificates
from paude.fields import (
    AgentVersion,
    Argument,
    Domain,
    EnvName,
    EnvValue,
    HostPath,
    ImageRef,
    Namespace,
    OptionName,
    PackageName,
    Quantity,
    RepoPath,
    StorageClass,
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_ca_file(value: str) -> str:
    # The path is the repository's word, the file is the host's: whatever the path names
    # must be certificates and nothing else before any of it is copied into an image.
    try:
        path = Path(value).expanduser()
    except RuntimeError:  # ~USER of a user this machine does not have
        raise ValueError(f"{value}: no home folder is known for "
                         f"{value.split('/', 1)[0]!r} on this machine") from None
    try:
        read_certificates(path)
    except FileNotFoundError:
        return value  # reported when an image is built: a teammate may not have it yet
    except NotCertificates as exc:
        raise ValueError(f"{value} {exc}: only PEM CERTIFICATE blocks are copied into the "
                         "images, and a file with anything else is refused so that nothing "
                         "else on this machine (a private key) can reach the agent") from None
    return value


CaFile = Annotated[HostPath, AfterValidator(_check_ca_file)]
# image.env / containerEnv: any name but the ones paude sets for the sandbox.
AgentEnvName = Annotated[EnvName, AfterValidator(check_name)]


class ImageConfig(_Model):
    """How the agent's container image is built."""

    base: ImageRef | None = Field(
        None, description="Base container image reference, e.g. docker.io/library/python:3.12."
    )
    dockerfile: RepoPath | None = Field(
        None,
        description="Dockerfile to build instead of a base image, relative to the repository root.",
    )
    context: RepoPath | None = Field(
        None, description="Build context for the dockerfile, relative to the repository root."
    )
    build_args: dict[EnvName, EnvValue] = Field(
        default_factory=dict, description="Build arguments passed to the dockerfile build."
    )
    build_domains: list[Domain] | None = Field(
        None, description=(
            "What image builds may reach, through a build proxy like the agent's: [pypi] "
            "when unset. The Debian archive (and the npm registry "
            "or Claude's installer host, per agent.install) are always added; builds never "
            "use the host's network."))
    packages: list[PackageName] = Field(
        default_factory=list, description="Debian packages installed into the image."
    )
    setup: str | None = Field(
        None, description=(
            "Shell command run once while the image is built, in the build sandbox, without "
            "the repository (tools, not the project's dependencies: see the session's "
            "`setup`, which runs after the code is pushed)."))
    env: dict[AgentEnvName, EnvValue] = Field(
        default_factory=dict, description=(
            "Environment variables set in the agent's container (devcontainer containerEnv). "
            "paude's own (the proxy, CA trust, model gateway and PAUDE_* variables) are "
            "refused."))
    features: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Devcontainer features from folders of the repository ('./PATH', with "
            "devcontainer-feature.json and install.sh) and their options: installed in the "
            "agent image by a build without network. OCI references are refused (no "
            "registry is reached): vendor the feature's folder."),
    )
    platform: Literal["linux/amd64", "linux/arm64"] | None = Field(
        None, description=(
            "The platform the agent's image is built for (podman build --platform); the "
            "host's if unset. Another platform needs user-mode emulation (qemu-user-static) "
            "on the machine that builds and runs it."))
    ca_certificates: list[CaFile] = Field(
        default_factory=list,
        description=(
            "Extra CA certificate files (PEM) on the host, trusted inside the agent and proxy "
            "images: needed behind TLS-inspecting proxies."
        ),
    )


_VENV_PATH_RE = re.compile(r"^[A-Za-z0-9_.@+-]+(?:/[A-Za-z0-9_.@+-]+)*$")
# The entrypoint passes the command in one environment variable.
SETUP_MAX = 65536


def _check_venv_path(value: str) -> str:
    # The entrypoint reads the list as one ':'-separated variable and creates each folder
    # inside the workspace: plain relative names only.
    normal = posixpath.normpath(value)
    if (not _VENV_PATH_RE.match(value) or normal in (".", "..") or normal.startswith("../")
            or normal.split("/", 1)[0] == ".git"):
        raise ValueError(f"{value!r} is not a folder of the repository (a relative path of "
                         "letters, digits and ._@+-, not .git)")
    return normal


def _check_setup(value: str) -> str:
    if not value.strip():
        raise ValueError("the setup command is empty: remove it, or write a command")
    if "\x00" in value or len(value) > SETUP_MAX:
        raise ValueError(f"a setup command is text of at most {SETUP_MAX} characters")
    return value


VenvPath = Annotated[str, AfterValidator(_check_venv_path)]
Venv = Literal["auto", "none"] | Annotated[list[VenvPath], Field(min_length=1)]
SetupCommand = Annotated[str, AfterValidator(_check_setup)]
def _check_github_repo(value: str) -> str:
    if any(part in (".", "..") for part in value.split("/")):
        raise ValueError(f"{value!r} has a dot segment; write OWNER/REPO or OWNER/*")
    return value


# OWNER/REPO or OWNER/* on github.com: where the model gateway may push with the user's
# GitHub token. Names as GitHub allows them; no dot segments, no other wildcards.
_GITHUB_NAME = r"[A-Za-z0-9_.-]+"
GithubRepo = Annotated[str, StringConstraints(
    pattern=rf"^{_GITHUB_NAME}/({_GITHUB_NAME}|\*)$"), AfterValidator(_check_github_repo)]
GITHUB_WRITES_DESCRIPTION = (
    "Repositories (OWNER/REPO, or OWNER/* for all of an owner's) that `git push` through the "
    "model gateway may write with the GitHub token of `paude start --github-token`. Without "
    "it the token is read-only: clone and fetch only. API writes are never let through.")
SETUP_DESCRIPTION = (
    "Shell command run once inside the session (agent container, agent user, through the "
    "proxy) after the code is first pushed into the workspace; `paude setup NAME --rerun` "
    "runs it again. paude.json `setup` and devcontainer `postCreateCommand` set it too.")
VENV_DESCRIPTION = (
    "The container's own Python virtual environment in the workspace (the host's never "
    "reaches it): auto = .venv when the repository has pyproject.toml, requirements.txt or "
    "setup.py, none (the default), or a list of folders; created before setup runs, the first one "
    "active in the agent's shells, and kept out of the agent's commits.")


class WorkspaceSetup(_Model):
    """What prepares the workspace once the code is in (paude.json / devcontainer.json)."""

    setup: SetupCommand | None = Field(None, description=SETUP_DESCRIPTION)
    venv: Venv | None = Field(None, description=VENV_DESCRIPTION)


class AgentConfig(_Model):
    """How the coding agent (claude) is started."""

    install: Literal["native", "npm", "none"] = Field(
        "native",
        description=(
            "How Claude Code gets into the agent image: Anthropic's native installer, the "
            "npm package, or none (the image already has it). This machine's "
            "$PAUDE_HOME/config.yaml agent.install is the default."
        ),
    )
    version: AgentVersion | None = Field(
        None, description=(
            "The Claude Code release installed (npm or native), part of the image's hash: "
            "changing it rebuilds the image and keeps the workspace. Default: this "
            "machine's agent.version, else the release paude is tested with."),
    )
    command: list[Argument] = Field(
        default_factory=lambda: ["claude"], min_length=1,
        description="The agent program and any fixed leading arguments.",
    )

    args: Annotated[
        list[Argument],
        WithJsonSchema(
            {"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]}
        ),
    ] = Field(
        default_factory=list,
        description=(
            "Arguments passed to claude verbatim, one list entry per argument; "
            "a single string is split like a shell would."
        ),
    )

    @field_validator("args", mode="before")
    @classmethod
    def _split_string(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            return shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split {value!r} into arguments: {exc}") from exc


class OpenShiftConfig(_Model):
    """Where and how sessions run on OpenShift / Kubernetes."""

    namespace: Namespace | None = Field(
        None, description="Namespace for the session's resources; the current one if unset."
    )
    context: OptionName | None = Field(
        None, description="kubeconfig context to use; the current one if unset."
    )
    pvc_size: Quantity = Field("10Gi", description="Size of the workspace volume claim.")
    storage_class: StorageClass | None = Field(
        None, description="StorageClass of the workspace claim; the cluster default if unset."
    )
    image_registry: ImageRef | None = Field(
        None, description=(
            "Registry (host[:port]/path) the cluster pulls the session's images from; paude "
            "pushes them there. Unset on OpenShift: images are built in-cluster."))
    registry_tls_verify: StrictBool = Field(
        True, description=(
            "Verify the registry's TLS certificate when pushing. Turn off only for a registry "
            "on loopback or a network you control."))
    image_pull_secret: OptionName | None = Field(
        None, description="Secret in the namespace the cluster pulls the images with.")
    create_namespace: StrictBool = Field(
        False, description=(
            "Create the namespace as part of the session (kept on destroy, like the "
            "workspace); by default it must exist."))
    wait_for_ready: StrictBool = Field(
        True, description=(
            "Apply waits until the proxy and agent are ready. false skips the waits (GitOps "
            "hand-off, or an API server without nodes)."))


class ProxyConfig(_Model):
    """The squid sidecar: the agent's only way out."""

    base: ImageRef | None = Field(
        None,
        description=(
            "Ignored in paude.yaml (with a warning): the proxy is the agent's egress guard, so "
            "its base image is a machine setting ($PAUDE_HOME/config.yaml proxy.base) that "
            "the repository, which the agent can edit, cannot choose."
        ),
    )
