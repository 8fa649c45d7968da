"""A small NetworkPolicy evaluator (the Kubernetes semantics paude relies on), for tests.

A pod is isolated for a direction when any policy selecting it lists that policy type;
an isolated pod's traffic is allowed when some selecting policy has a rule whose peers
and ports match. Only the features paude's policies use are modelled: podSelector
matchLabels peers in the same namespace, rules without `to`/`from` (any peer), and
protocol/port lists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Endpoint:
    """A pod (with labels) or an address outside the cluster (labels None)."""

    name: str
    labels: Mapping[str, str] | None


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str] | None) -> bool:
    if labels is None:
        return False
    wanted = selector.get("matchLabels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def _port_ok(rule: Mapping[str, Any], protocol: str, port: int) -> bool:
    ports = rule.get("ports")
    if not ports:
        return True
    return any(p.get("protocol", "TCP") == protocol and int(p["port"]) == port for p in ports)


def _peer_ok(peers: Sequence[Mapping[str, Any]] | None, other: Endpoint) -> bool:
    if not peers:
        return True
    return any("podSelector" in p and _selects(p["podSelector"], other.labels) for p in peers)


def _direction_ok(policies: Sequence[Mapping[str, Any]], pod: Endpoint, other: Endpoint,
                  kind: str, protocol: str, port: int) -> bool:
    if pod.labels is None:
        return True  # not a pod of ours: not governed by these policies
    selecting = [p for p in policies if _selects(p["podSelector"], pod.labels)
                 and kind in p.get("policyTypes", [])]
    if not selecting:
        return True
    key, peer_key = ("egress", "to") if kind == "Egress" else ("ingress", "from")
    return any(_peer_ok(rule.get(peer_key), other) and _port_ok(rule, protocol, port)
               for p in selecting for rule in p.get(key, []))


def allowed(policies: Sequence[Mapping[str, Any]], src: Endpoint, dst: Endpoint,
            protocol: str, port: int) -> bool:
    """Whether a connection src -> dst:port is allowed by both ends' policies."""
    return (_direction_ok(policies, src, dst, "Egress", protocol, port)
            and _direction_ok(policies, dst, src, "Ingress", protocol, port))
