"""Reads the proxy's audit log (one JSON line per request, squid `logformat paude_json`)
and the gateway's log (squid's older `%ts %>a %rm %ru %>Hs %Ss` form) into typed records.

Every text field arrives URL-encoded by squid and stays so: the agent chose these URLs,
and decoding them would hand its control characters to the user's terminal."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class ProxyRequest:
    """One request the agent (or the model gateway) sent through the proxy."""

    time: datetime
    client: str
    method: str
    url: str
    status: int
    result: str  # squid's code, e.g. TCP_DENIED, TCP_TUNNEL, TCP_MISS
    host: str = ""
    path: str = ""
    decision: str = ""  # "allow" or "deny"; empty in the older format
    rule: str = ""  # the rule that decided (paude.yaml field, group or built-in)
    tls: str = ""  # "bump" (inspected), "splice" (tunnel), or empty
    error: str = ""  # squid's error code and detail, e.g. a failed TLS handshake

    @property
    def blocked(self) -> bool:
        """Refused by the allowlist, a rule, or the port rules."""
        if self.decision:
            return self.decision == "deny"
        return self.result.startswith("TCP_DENIED") or self.status == 403

    def to_json(self) -> dict[str, object]:
        """The JSON form printed by `paude blocked --json` and `paude log --json`."""
        return {"time": self.time.isoformat(), "client": self.client, "method": self.method,
                "host": self.host, "path": self.path, "url": self.url,
                "decision": self.decision or ("deny" if self.blocked else "allow"),
                "rule": self.rule, "status": self.status, "result": self.result,
                "inspected": self.tls == "bump", "error": self.error}


def _text(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    return "" if value in (None, "-") else str(value)


def _url(method: str, host: str, port: str, path: str, tls: str) -> str:
    if method == "CONNECT":
        return f"{host}:{port or 443}"
    scheme = "https" if tls == "bump" or port == "443" else "http"
    return f"{scheme}://{host}{path}"


def _from_json(line: str) -> ProxyRequest | None:
    try:
        record = json.loads(line)
        when = datetime.fromtimestamp(float(record["time"]), tz=UTC)
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(record, dict):
        return None
    method, host, port = _text(record, "method"), _text(record, "host"), _text(record, "port")
    path, tls = _text(record, "path"), _text(record, "tls")
    try:
        status = int(_text(record, "status") or 0)
    except ValueError:
        status = 0
    error = " ".join(filter(None, (_text(record, "error"), _text(record, "detail"))))
    return ProxyRequest(when, _text(record, "client"), method,
                        _url(method, host, port, path, tls), status, _text(record, "result"),
                        host=host, path=path, decision=_text(record, "decision"),
                        rule=_text(record, "rule"), tls=tls, error=error)


def _from_words(line: str) -> ProxyRequest | None:
    parts = line.split()
    if len(parts) != 6:
        return None
    stamp, client, method, url, status, result = parts
    try:
        when = datetime.fromtimestamp(float(stamp), tz=UTC)
        code = int(status)
    except ValueError:
        return None
    return ProxyRequest(when, client, method, url, code, result)


def parse(text: str) -> list[ProxyRequest]:
    """Parse audit lines of either format; anything else is skipped."""
    records = []
    for line in text.splitlines():
        record = _from_json(line) if line.startswith("{") else _from_words(line)
        if record is not None:
            records.append(record)
    return records


def requests(text: str) -> list[ProxyRequest]:
    """Every request, oldest first (the text may join several logs)."""
    return sorted(parse(text), key=lambda r: r.time)


def blocked(text: str) -> list[ProxyRequest]:
    """Only the refused requests, oldest first."""
    return [r for r in requests(text) if r.blocked]
