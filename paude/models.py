"""The pydantic schema of paude.yaml and the resolved Session handed to the rest of paude."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    field_validator,
    model_validator,
)

from paude import domains
from paude.egress import RequestRule
from paude.errors import SessionNotFoundError
from paude.fields import (
    CLAUDE_CODE_VERSION,
    DEFAULT_ALLOWED_DOMAINS,
    DEFAULT_BACKEND,
    DEFAULT_BASE_IMAGE,
    DOMAIN_GROUPS,
    SESSION_NAME_MAX,
    SESSION_NAME_RE,
    STATE_SCHEMES,
    Argument,
    Backend,
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
    SessionName,
    SingleLine,
    StorageClass,
    WaivableRule,
    WaiverReason,
    validate_domain,
    validate_session_name,
)
from paude.resources_model import DEFAULT_AGENT, ResourcesConfig
from paude.sections import (
    GITHUB_WRITES_DESCRIPTION,
    SETUP_DESCRIPTION,
    VENV_DESCRIPTION,
    AgentConfig,
    GithubRepo,
    ImageConfig,
    OpenShiftConfig,
    ProxyConfig,
    SetupCommand,
    Venv,
    WorkspaceSetup,
    _Model,
)

__all__ = [
    "DEFAULT_ALLOWED_DOMAINS",
    "DEFAULT_BACKEND",
    "DEFAULT_BASE_IMAGE",
    "DOMAIN_GROUPS",
    "SESSION_NAME_MAX",
    "SESSION_NAME_RE",
    "STATE_SCHEMES",
    "AgentConfig",
    "Argument",
    "Backend",
    "Domain",
    "EnvName",
    "EnvValue",
    "HostPath",
    "ImageConfig",
    "ImageRef",
    "Namespace",
    "OpenShiftConfig",
    "OptionName",
    "PackageName",
    "PaudeFile",
    "ProxyConfig",
    "Quantity",
    "RepoPath",
    "ResourcesConfig",
    "Session",
    "SessionName",
    "SessionSpec",
    "SingleLine",
    "StateConfig",
    "StorageClass",
    "resolve",
    "validate_domain",
    "validate_session_name",
]


def _entry_kind(value: Any) -> str:
    return "rule" if isinstance(value, dict | RequestRule) else "name"


# An allowed_domains entry: a word or host name, or a host with method/path rules. The
# discriminator keeps errors about one form from listing the other's.
AllowEntry = Annotated[
    Annotated[Domain, Tag("name")] | Annotated[RequestRule, Tag("rule")],
    Discriminator(_entry_kind),
]


class SessionSpec(_Model):
    """A session as written under `defaults:` or `sessions.NAME:`; unset fields inherit."""

    backend: Backend | None = Field(None, description="Where the session runs.")
    yolo: StrictBool | None = Field(
        None, description="Run claude with --dangerously-skip-permissions (egress stays filtered)."
    )
    allowed_domains: list[AllowEntry] | None = Field(
        None,
        description=(
            "Domains the proxy lets the agent reach: groups (default, all, pypi, github), "
            "exact host names, '.suffix' wildcards, or {host, methods, paths} rules (the "
            "proxy then inspects that host's requests). claude and vertexai are routes of the "
            "session's model gateway (the agent's only path to the model), not names the "
            "agent reaches; default = pypi plus both routes. github is read-only and pypi "
            "GET-only unless the host is listed here itself."
        ),
    )
    denied_requests: list[RequestRule] | None = Field(
        None, description="Requests the proxy refuses even where allowed_domains allows them: "
        "{host, methods, paths}; a host alone refuses the whole host.")
    agent: AgentConfig | None = Field(None, description="How the agent is started.")
    image: ImageConfig | None = Field(None, description="How the agent's image is built.")
    openshift: OpenShiftConfig | None = Field(None, description="OpenShift / Kubernetes settings.")
    proxy: ProxyConfig | None = Field(None, description="The egress proxy sidecar.")
    resources: ResourcesConfig | None = Field(
        None, description="The agent container's memory, CPU and process limits.")
    setup: SetupCommand | None = Field(None, description=SETUP_DESCRIPTION)
    venv: Venv | None = Field(None, description=VENV_DESCRIPTION)
    github_writes: list[GithubRepo] | None = Field(None, description=GITHUB_WRITES_DESCRIPTION)
    waivers: dict[WaivableRule, WaiverReason] | None = Field(
        None,
        description=(
            "Mandatory policy rules this session waives, each with the reason, for review. "
            "Only yolo-unrestricted-egress can be waived, and only under sessions.NAME."
        ),
    )


    @model_validator(mode="after")
    def _egress_rules_agree(self) -> SessionSpec:
        # A layer that sets its own allowlist must be consistent on its own (the error then
        # points into this layer); the merged session is checked again when resolved.
        if self.allowed_domains is not None:
            _check_egress(self.allowed_domains, self.denied_requests or [])
        return self


class StateConfig(_Model):
    """Where Pulumi keeps the sessions' state."""

    backend: str | None = Field(
        None,
        description=(
            "Pulumi backend URL (file://, s3://, gs://, azblob://, https://); local state "
            "under PAUDE_HOME if unset. In paude.yaml a declaration only: it must match "
            "this machine's (PAUDE_STATE_BACKEND, or state.backend in $PAUDE_HOME/config.yaml), "
            "since a repository the agent can edit must not choose where state goes."
        ),
    )

    @field_validator("backend")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return value
        scheme = next((s for s in STATE_SCHEMES if value.startswith(s)), None)
        if scheme is None or len(value) == len(scheme) or any(c.isspace() for c in value):
            raise ValueError(
                f"{value!r} is not a state backend URL: use one of {', '.join(STATE_SCHEMES)}"
            )
        return value


class PaudeFile(_Model):
    """The whole paude.yaml file."""

    version: Literal[1] = Field(1, description="Format version of this file.")
    state: StateConfig = Field(default_factory=StateConfig, description="State storage.")
    defaults: SessionSpec = Field(
        default_factory=SessionSpec, description="Settings merged under every session."
    )
    sessions: dict[SessionName, SessionSpec] = Field(
        default_factory=dict, description="Sessions by name; names follow DNS-label rules."
    )

    @model_validator(mode="before")
    @classmethod
    def _empty_means_default(cls, data: Any) -> Any:
        # `sessions:\n  demo:` (no value) is the natural way to declare a plain session.
        if not isinstance(data, dict):
            return data
        data = {k: ({} if v is None and k in ("state", "defaults") else v) for k, v in data.items()}
        if isinstance(data.get("sessions"), dict):
            data["sessions"] = {k: {} if v is None else v for k, v in data["sessions"].items()}
        elif data.get("sessions", {}) is None:
            data["sessions"] = {}
        return data

    @model_validator(mode="after")
    def _waivers_per_session(self) -> PaudeFile:
        # A waiver under defaults would waive a mandatory rule for every session, present
        # and future, without anyone reviewing each one.
        if self.defaults.waivers:
            raise ValueError("defaults.waivers: waivers belong to one session; move them under "
                             "sessions.NAME.waivers")
        return self


class Session(_Model):
    """The effective definition of one session, after merging every layer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: SessionName = Field(description="The session's name.")
    backend: Backend = Field(description="Where the session runs.")
    yolo: StrictBool = Field(description="Whether claude skips permission prompts.")
    allowed_domains: list[AllowEntry] = Field(description="Egress allowlist entries.")
    denied_requests: list[RequestRule] = Field(
        default_factory=list, description="Requests refused although allowed.")
    agent: AgentConfig = Field(description="How the agent is started.")
    image: ImageConfig = Field(description="How the agent's image is built.")
    openshift: OpenShiftConfig = Field(description="OpenShift / Kubernetes settings.")
    proxy: ProxyConfig = Field(default_factory=ProxyConfig, description="The egress proxy.")
    resources: ResourcesConfig = Field(
        default_factory=lambda: DEFAULT_AGENT, description="The agent container's limits.")
    waivers: dict[str, str] = Field(
        default_factory=dict, description="Waived mandatory policy rules and the reasons.")
    setup: str | None = Field(None, description="Run once in the session after the first push.")
    venv: Venv = Field("none", description="The container's own virtual environment(s).")
    github_writes: list[str] = Field(
        default_factory=list, description="Repositories the gateway may push to with the token.")
    image_source: str = Field(
        description="Where the image settings came from: paude.yaml, paude.json, a "
        "devcontainer.json path, or 'default'."
    )


    @model_validator(mode="after")
    def _egress_rules_agree(self) -> Session:
        _check_egress(self.allowed_domains, self.denied_requests)
        return self


def _check_egress(entries: list[Any], denied: list[RequestRule]) -> None:
    domains.expand(entries, denied)


M = TypeVar("M", bound=BaseModel)

# Choosing a base image or a dockerfile is one decision: a layer that makes it
# replaces the whole choice of the layers below, not half of it.
_IMAGE_SOURCE_FIELDS = frozenset({"base", "dockerfile"})


def _merge(base: M, override: M | None) -> M:
    """Field-level merge: fields explicitly set in `override` win."""
    if override is None:
        return base
    data = base.model_dump()
    fields = override.model_fields_set
    if isinstance(override, ImageConfig) and fields & _IMAGE_SOURCE_FIELDS:
        data.update(base=None, dockerfile=None, context=None)
    data.update(override.model_dump(include=set(fields)))
    return type(base).model_validate(data)


def resolve(
    file: PaudeFile,
    name: str,
    *,
    image_fallback: ImageConfig | None = None,
    image_source: str = "default",
    default_base: str = DEFAULT_BASE_IMAGE,
    proxy_base: str | None = None,
    machine_agent: AgentConfig | None = None,
    machine_cas: Sequence[str] = (),
    setup_fallback: WorkspaceSetup | None = None,
) -> Session:
    """Merge built-in defaults < the machine's < file.defaults < sessions[name] into the
    effective Session.

    `default_base` (the machine's) replaces the built-in base image; `proxy_base` (the
    machine's) is the proxy's base whatever the file says; `machine_agent` holds the
    machine's agent.install and agent.version (the fields it sets); `machine_cas` are
    trusted before whatever the file lists, which cannot remove them; `setup_fallback`
    (paude.json / devcontainer.json) gives setup and venv where neither layer does."""
    spec = file.sessions.get(name)
    if spec is None:
        defined = ", ".join(sorted(file.sessions)) or "none"
        raise SessionNotFoundError(
            f"session {name!r} is not defined in paude.yaml (defined: {defined})",
            hint=f"run `paude create {name}` to define it, or pick a defined session",
        )
    defaults = file.defaults

    def pick(field: str, builtin: Any) -> Any:
        for layer in (spec, defaults):
            value = getattr(layer, field)
            if value is not None:
                return value
        return builtin

    image = ImageConfig(base=default_base)
    if defaults.image is None and spec.image is None:
        if image_fallback is not None:
            image = _merge(image, image_fallback)
        else:
            image_source = "default"
    else:
        image_source = "paude.yaml"
    image = _merge(_merge(image, defaults.image), spec.image)
    if image.dockerfile is not None:
        image = image.model_copy(update={"base": None})
    elif image.base is None:
        image = image.model_copy(update={"base": default_base})
    if machine_cas:
        cas = list(machine_cas)
        image = image.model_copy(update={"ca_certificates": cas + [
            c for c in image.ca_certificates if c not in cas]})
    agent = _merge(_merge(_merge(AgentConfig(version=CLAUDE_CODE_VERSION), machine_agent),
                          defaults.agent), spec.agent)
    proxy = _merge(_merge(ProxyConfig(), defaults.proxy), spec.proxy)
    if proxy_base is not None:
        proxy = proxy.model_copy(update={"base": proxy_base})

    return Session(
        name=name,
        backend=pick("backend", DEFAULT_BACKEND),
        yolo=pick("yolo", False),
        allowed_domains=list(pick("allowed_domains", list(DEFAULT_ALLOWED_DOMAINS))),
        denied_requests=list(pick("denied_requests", [])),
        agent=agent,
        image=image,
        openshift=_merge(_merge(OpenShiftConfig(), defaults.openshift), spec.openshift),
        proxy=proxy,
        resources=_merge(_merge(DEFAULT_AGENT, defaults.resources), spec.resources),
        waivers=dict(spec.waivers or {}),
        setup=pick("setup", setup_fallback.setup if setup_fallback else None),
        venv=pick("venv", setup_fallback.venv if setup_fallback and setup_fallback.venv
                  else "none"),
        github_writes=list(pick("github_writes", [])),
        image_source=image_source,
    )
