"""The model gateway's host side: which credentials it holds, what it serves, and what the
agent is told instead.

The gateway (templates/gateway.py, in its own container) is the only holder of the model
credentials. The agent sees Claude Code's documented gateway variables pointing at it and
a placeholder token; the real values reach only the gateway, as Pulumi secrets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from paude.errors import PaudeError

if TYPE_CHECKING:  # only a type here: importing it loads pydantic, which start never needs
    from paude.domains import Allowlist

GATEWAY_PORT = 8080
# What the agent holds instead of a credential: it opens nothing anywhere.
PLACEHOLDER = "paude-gateway-placeholder"
# Host variables carrying an Anthropic credential, in the order they are preferred, and
# how the gateway presents each upstream. CLAUDE_CODE_OAUTH_TOKEN is `claude setup-token`'s.
ANTHROPIC_VARS = (("ANTHROPIC_API_KEY", "api_key"), ("ANTHROPIC_AUTH_TOKEN", "auth_token"),
                  ("CLAUDE_CODE_OAUTH_TOKEN", "oauth"))
ANTHROPIC_UPSTREAM = "https://api.anthropic.com"
VERTEX_UPSTREAM = "https://{region}-aiplatform.googleapis.com"
# The hosts the gateway (never the agent) reaches through the proxy, per route.
ROUTE_HOSTS = {"claude": ("api.anthropic.com",),
               "vertexai": ("aiplatform.googleapis.com", "oauth2.googleapis.com")}
ROUTE_REGEXES = {"vertexai": (r"^[a-z0-9-]+-aiplatform\.googleapis\.com$",)}
# The GitHub route (templates/gateway_github.py): git and the API with the token of
# `paude start --github-token` added by the gateway, read-only.
GITHUB_UPSTREAM = "https://github.com"
GITHUB_API_UPSTREAM = "https://api.github.com"
GITHUB_HOSTS = ("github.com", "api.github.com")
# Where the gateway reads the token, and its git path (the template's own constants).
GITHUB_TOKEN_FILE = "/tmp/paude-github-token"
GITHUB_GIT_PATH = "/github/"
_GOOGLE_FIELDS = {"authorized_user": ("client_id", "client_secret", "refresh_token"),
                  "service_account": ("client_email", "private_key")}
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class GatewayCredentials:
    """The host's model credentials, and where each came from (named in plans and errors)."""

    anthropic: str = field(default="", repr=False)
    anthropic_mode: str = ""
    anthropic_source: str = ""
    google: str = field(default="", repr=False)
    google_source: str = ""
    vertex: bool = False
    vertex_project: str = ""

    def secret_env(self) -> dict[str, str]:
        """The gateway container's secret variables."""
        env = {}
        if self.anthropic:
            env["PAUDE_GATEWAY_ANTHROPIC_CREDENTIAL"] = self.anthropic
        if self.google:
            env["PAUDE_GATEWAY_GOOGLE_CREDENTIALS"] = self.google
        return env

    def sources(self) -> list[str]:
        """Where the credentials come from, for plans (names, never values)."""
        return [s for s in (self.anthropic_source, self.google_source) if s]


def gather(home: Path, environ: Mapping[str, str]) -> GatewayCredentials:
    """Read the host's model credentials; reads files, writes nothing, never fails (see
    check())."""
    anthropic, mode, source = "", "", ""
    for var, kind in ANTHROPIC_VARS:
        if environ.get(var):
            anthropic, mode, source = environ[var], kind, var
            break
    vertex = environ.get("CLAUDE_CODE_USE_VERTEX", "").lower() in _TRUE
    google, google_source = "", ""
    if vertex:  # the Google credential enters the gateway only when Vertex AI is in use
        path = adc_path(home, environ)
        if path is not None:
            google_source = str(path)
            try:
                google = path.read_text(encoding="utf-8")
            except OSError:
                google = ""
    project = environ.get("ANTHROPIC_VERTEX_PROJECT_ID") or environ.get("GOOGLE_CLOUD_PROJECT")
    return GatewayCredentials(anthropic, mode, source, google, google_source, vertex,
                              project or "")


def adc_path(home: Path, environ: Mapping[str, str]) -> Path | None:
    """GOOGLE_APPLICATION_CREDENTIALS, else gcloud's application-default credentials."""
    explicit = environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if explicit:
        return Path(explicit).expanduser()
    config = Path(environ.get("CLOUDSDK_CONFIG") or home / ".config" / "gcloud")
    path = config / "application_default_credentials.json"
    return path if path.exists() else None


def check(creds: GatewayCredentials, *, needs_model: bool, allow: Allowlist) -> None:
    """Refuse, at plan time, a session whose model credential is missing or unusable; the
    error names the variable or file to set."""
    # A route is needed only by an agent that calls the model; a stand-in agent needs none.
    if creds.vertex:
        _check_google(creds)
        if needs_model and "vertexai" not in allow.routes:
            raise PaudeError("CLAUDE_CODE_USE_VERTEX is set but the session's allowed_domains "
                             "has no 'vertexai' (the model gateway's Vertex AI route)",
                             hint="add vertexai (or default) to allowed_domains in paude.yaml")
        return
    if not creds.anthropic:
        if needs_model:
            raise PaudeError(
                "no model credential: the agent runs Claude Code, and its gateway needs one",
                hint="set ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN, or CLAUDE_CODE_OAUTH_TOKEN "
                     "(a subscription token from `claude setup-token`); or set "
                     "CLAUDE_CODE_USE_VERTEX=1 with ANTHROPIC_VERTEX_PROJECT_ID and Google "
                     "credentials (`gcloud auth application-default login`)")
        return
    if needs_model and "claude" not in allow.routes:
        raise PaudeError(f"{creds.anthropic_source} is set but the session's allowed_domains "
                         "has no 'claude' (the model gateway's Anthropic API route)",
                         hint="add claude (or default) to allowed_domains in paude.yaml")


def _check_google(creds: GatewayCredentials) -> None:
    fix = ("run `gcloud auth application-default login`, or set "
           "GOOGLE_APPLICATION_CREDENTIALS to a service-account key file")
    if not creds.google_source:
        raise PaudeError("CLAUDE_CODE_USE_VERTEX is set but no Google credentials were found "
                         "(no GOOGLE_APPLICATION_CREDENTIALS, no gcloud application-default "
                         "credentials)", hint=fix)
    where = creds.google_source
    if not creds.google:
        raise PaudeError(f"cannot read the Google credentials file {where}", hint=fix)
    try:
        info = json.loads(creds.google)
    except json.JSONDecodeError as exc:
        raise PaudeError(f"{where} is not JSON ({exc.msg} at line {exc.lineno})",
                         hint=fix) from None
    kind = info.get("type") if isinstance(info, dict) else None
    if kind not in _GOOGLE_FIELDS:
        raise PaudeError(f"{where}: credential type {kind!r} is not supported by the model "
                         "gateway (authorized_user or service_account)", hint=fix)
    missing = [k for k in _GOOGLE_FIELDS[kind] if not info.get(k)]
    if missing:
        raise PaudeError(f"{where}: the {kind} credential lacks {', '.join(missing)}", hint=fix)
    if not creds.vertex_project:
        raise PaudeError("CLAUDE_CODE_USE_VERTEX is set but no Vertex AI project is",
                         hint="set ANTHROPIC_VERTEX_PROJECT_ID (or GOOGLE_CLOUD_PROJECT)")


def github_route(allow: Allowlist) -> bool:
    """The gateway serves GitHub where the session lets the agent reach it itself
    (`github` in allowed_domains, or github.com named)."""
    return allow.unrestricted or "github.com" in allow.hosts


def gateway_hosts(allow: Allowlist) -> list[str]:
    """The hosts the gateway reaches through the proxy: its routes' (never the agent's)."""
    hosts = [h for r in allow.routes for h in ROUTE_HOSTS[r]]
    return hosts + list(GITHUB_HOSTS) if github_route(allow) else hosts


def config(creds: GatewayCredentials, allow: Allowlist, *, proxy_url: str,
           log_file: str | None, github_writes: Sequence[str] = ()) -> dict[str, object]:
    """The gateway's configuration (no secrets: those travel as secret variables)."""
    return {
        "port": GATEWAY_PORT, "proxy": proxy_url, "log_file": log_file,
        "anthropic_upstream": ANTHROPIC_UPSTREAM if "claude" in allow.routes else None,
        "anthropic_mode": creds.anthropic_mode or "api_key",
        "vertex_upstream": VERTEX_UPSTREAM if "vertexai" in allow.routes else None,
        "vertex_project": creds.vertex_project or None,
        # Always: whether the gateway may reach GitHub is the proxy's decision
        # (gateway_hosts), so allowing GitHub changes the proxy alone, never the gateway.
        "github_upstream": GITHUB_UPSTREAM, "github_api_upstream": GITHUB_API_UPSTREAM,
        # Where a push may use the user's token (github_writes); read-only without.
        "github_writes": list(github_writes),
    }


def agent_env(creds: GatewayCredentials, gateway_url: str) -> dict[str, str]:
    """What the agent is told: Claude Code's gateway variables and a placeholder."""
    if creds.vertex:
        return {"CLAUDE_CODE_USE_VERTEX": "1", "CLAUDE_CODE_SKIP_VERTEX_AUTH": "1",
                "ANTHROPIC_VERTEX_BASE_URL": f"{gateway_url}/vertex/v1",
                **({"ANTHROPIC_VERTEX_PROJECT_ID": creds.vertex_project}
                   if creds.vertex_project else {})}
    return {"ANTHROPIC_BASE_URL": gateway_url, "ANTHROPIC_AUTH_TOKEN": PLACEHOLDER}
