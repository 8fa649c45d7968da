"""The agent container's environment variables that paude owns: the repository's
`image.env` / devcontainer `containerEnv` may set any other name, never these."""

from __future__ import annotations

# The proxy (egress), the trust store (what TLS the agent's clients accept), the model
# gateway (where model requests and their placeholder credential go) and paude's own
# protocol with its entrypoint. Overriding any of them from the repository would let the
# agent's definition route around, or reconfigure, the sandbox.
_PROXY = frozenset({"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "FTP_PROXY"})
_TRUST = frozenset({"SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE",
                    "GIT_SSL_CAINFO", "GIT_SSL_NO_VERIFY", "PIP_CERT", "NODE_EXTRA_CA_CERTS",
                    "NODE_TLS_REJECT_UNAUTHORIZED", "CARGO_HTTP_CAINFO"})
_GATEWAY = frozenset({"ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY",
                      "ANTHROPIC_VERTEX_BASE_URL", "ANTHROPIC_VERTEX_PROJECT_ID",
                      "CLAUDE_CODE_USE_VERTEX", "CLAUDE_CODE_SKIP_VERTEX_AUTH",
                      "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "CLAUDE_CODE_OAUTH_TOKEN"})
RESERVED = _PROXY | _TRUST | _GATEWAY
RESERVED_PREFIX = "PAUDE_"


def reserved_reason(name: str) -> str | None:
    """Why paude owns the variable `name` (None: the repository may set it)."""
    upper = name.upper()
    if upper.startswith(RESERVED_PREFIX):
        return "PAUDE_* variables are paude's own"
    if upper in _PROXY:
        return "the proxy variables are the agent's only way out"
    if upper in _TRUST:
        return "it decides which certificates the agent's clients trust"
    if upper in _GATEWAY:
        return "it points the agent at paude's model gateway"
    return None


def check_name(name: str) -> str:
    """Validator for a repository-chosen variable name: refuse the names paude owns."""
    reason = reserved_reason(name)
    if reason is not None:
        raise ValueError(f"{name} is set by paude and cannot be overridden ({reason}); "
                         "remove it from image.env / containerEnv")
    return name
