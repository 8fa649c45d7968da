"""Reads the proxy's access log (squid `logformat paude`) into typed records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class ProxyRequest:
    """One request the agent sent through its proxy."""

    time: datetime
    client: str
    method: str
    url: str
    status: int
    result: str  # squid's code, e.g. TCP_DENIED, TCP_TUNNEL, TCP_MISS

    @property
    def blocked(self) -> bool:
        """Refused by the allowlist (or the port rules)."""
        return self.result.startswith("TCP_DENIED") or self.status == 403

    def to_json(self) -> dict[str, object]:
        """The JSON form printed by `paude blocked --json`."""
        return {"time": self.time.isoformat(), "client": self.client, "method": self.method,
                "url": self.url, "status": self.status, "result": self.result}


def parse(text: str) -> list[ProxyRequest]:
    """Parse `%ts.%03tu %>a %rm %ru %>Hs %Ss` lines; lines in another format are skipped."""
    records = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 6:
            continue
        stamp, client, method, url, status, result = parts
        try:
            when = datetime.fromtimestamp(float(stamp), tz=UTC)
            code = int(status)
        except ValueError:
            continue
        records.append(ProxyRequest(when, client, method, url, code, result))
    return records


def blocked(text: str) -> list[ProxyRequest]:
    """Only the refused requests, oldest first (the text may join several logs)."""
    return sorted((r for r in parse(text) if r.blocked), key=lambda r: r.time)
