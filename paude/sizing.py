"""Resource limits: what one session's containers may take of the machine (or the node).

An agent is assumed hostile, and a runaway one is common: a fork bomb or a memory leak in
a test it runs must end inside its container, not take the user's machine down. So every
container gets a memory, CPU and process limit. The agent's are set in paude.yaml under
`resources` (safe defaults otherwise); the proxy's are small and fixed, since it only
relays. `unlimited` removes one of the agent's limits, which the policy pack reports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paude.cgroups import cgroup_reader
from paude.cgroups import memory_kills as memory_kills

if TYPE_CHECKING:
    from paude.resources_model import ResourcesConfig

UNLIMITED = "unlimited"

_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
          "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
_QUANTITY = re.compile(r"([0-9]+(?:\.[0-9]+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?")
_CPU = re.compile(r"([0-9]+(?:\.[0-9]+)?)(m)?")

# Bounds on what a session may ask for: below them the agent cannot start Claude Code,
# above them the number is a typo, not a machine.
MEMORY_MIN, MEMORY_MAX = 256 * 2**20, 4 * 2**40
CPUS_MIN, CPUS_MAX = Decimal("0.1"), Decimal(1024)
PIDS_MIN, PIDS_MAX = 64, 4_194_304




@dataclass(frozen=True)
class Limits:
    """One container's limits in plain units; None is no limit."""

    memory: int | None  # bytes
    cpus: str | None  # decimal CPUs, as podman and Kubernetes both read them
    pids: int | None

    @classmethod
    def of(cls, config: ResourcesConfig) -> Limits:
        """The limits a (merged) resources section sets."""
        memory = None if config.memory in (None, UNLIMITED) else _bytes(str(config.memory))
        cpus = None if config.cpus in (None, UNLIMITED) else _decimal_cpus(str(config.cpus))
        pids = None if config.pids in (None, UNLIMITED) else int(config.pids)
        return cls(memory, cpus, pids)

    @classmethod
    def from_props(cls, props: dict[str, Any]) -> Limits:
        """From a `limits` input as the engine hands it back: an unset limit (None) is
        dropped from the dict on the way, and whole numbers arrive as floats."""
        memory, pids = props.get("memory"), props.get("pids")
        cpus = props.get("cpus")
        return cls(None if memory is None else int(memory), None if cpus is None else str(cpus),
                   None if pids is None else int(pids))

    def props(self) -> dict[str, Any]:
        """The container resource's `limits` input (and what its read observes)."""
        return {"memory": self.memory, "cpus": self.cpus, "pids": self.pids}

    def unlimited(self) -> list[str]:
        """The kinds of limit this container runs without."""
        return [k for k, v in self.props().items() if v is None]

    def describe(self) -> str:
        """For plans and status: 'memory 4Gi, 2 CPUs, 4096 processes'."""
        parts = [f"memory {human_bytes(self.memory)}" if self.memory else "memory unlimited",
                 f"{self.cpus} CPU{'' if self.cpus == '1' else 's'}" if self.cpus
                 else "CPUs unlimited",
                 f"{self.pids} processes" if self.pids else "processes unlimited"]
        return ", ".join(parts)


# The proxy relays and logs; squid's memory cache is 8 MB (templates/squid.conf.j2).
PROXY = Limits(memory=256 * 2**20, cpus="1", pids=256)


def agent_limits(config: ResourcesConfig) -> Limits:
    """The agent's limits: the session's resources over the defaults."""
    from paude.resources_model import DEFAULT_AGENT

    merged = DEFAULT_AGENT.model_copy(update=config.model_dump(exclude_unset=True))
    return Limits.of(merged)


def podman_args(limits: Limits) -> list[str]:
    """podman create flags. No swap beyond the memory limit (swap would let a hog push the
    host into swapping); an unset pids limit is -1, as podman's own default is 2048."""
    # Numbers come back from the engine as floats (256.0), which podman refuses.
    args: list[str] = []
    if limits.memory is not None:
        args += ["--memory", str(int(limits.memory)), "--memory-swap", str(int(limits.memory))]
    if limits.cpus is not None:
        args += ["--cpus", str(limits.cpus)]
    args += ["--pids-limit", str(int(limits.pids) if limits.pids is not None else -1)]
    return args


def observed(host_config: dict[str, Any]) -> dict[str, Any]:
    """A container's limits as `podman inspect` reports them (HostConfig), in props form."""
    memory = int(host_config.get("Memory") or 0)
    nano = int(host_config.get("NanoCpus") or 0)
    if not nano and host_config.get("CpuQuota") and host_config.get("CpuPeriod"):
        nano = int(host_config["CpuQuota"]) * 10**9 // int(host_config["CpuPeriod"])
    pids = int(host_config.get("PidsLimit") or 0)
    return {"memory": memory or None,
            "cpus": _decimal_cpus(str(Decimal(nano) / 10**9)) if nano else None,
            "pids": pids if pids > 0 else None}


CPU_REQUEST = Decimal("0.25")


def live(pid: int, root: Path = Path("/")) -> dict[str, Any] | None:
    """A running container's limits as its cgroups enforce them (props form), or None when
    they cannot be read. `podman update` changes these and not what inspect reports, so a
    limit changed by hand is only seen here."""
    read = cgroup_reader(pid, root)
    if read is None:
        return None
    memory = read("memory", "memory.limit_in_bytes", "memory.max")
    pids = read("pids", "pids.max", "pids.max")
    quota = read("cpu", "cpu.cfs_quota_us", "cpu.max")
    period = read("cpu", "cpu.cfs_period_us", "cpu.max")
    if memory is None or pids is None or quota is None or period is None:
        return None
    try:
        if quota.split()[0] in ("max", "-1"):
            cpus = None
        else:
            # v2's cpu.max holds "QUOTA PERIOD"; v1 keeps them in two files.
            q, p = (quota.split() if " " in quota else (quota, period))[:2]
            cpus = _decimal_cpus(str(Decimal(q) / Decimal(p)))
        size = None if memory == "max" or int(memory) >= 2**62 else int(memory)
        count = None if pids == "max" else int(pids)
    except (ValueError, InvalidOperation, ArithmeticError):
        return None
    return {"memory": size, "cpus": cpus, "pids": count}


def kubernetes(limits: Limits) -> dict[str, Any]:
    """A container's `resources`, requests and limits both (a ResourceQuota an administrator
    sets on the namespace refuses pods without them). Memory is requested in full, since a
    node short of it evicts or kills; CPU only a quarter core, since it is shared by
    throttling and a full request would keep the session off a busy node. The process
    limit is the node's (kubelet podPidsLimit): Kubernetes has no per-container field."""
    limit: dict[str, str] = {}
    request: dict[str, str] = {}
    if limits.memory is not None:
        limit["memory"] = request["memory"] = human_bytes(limits.memory)
    if limits.cpus is not None:
        limit["cpu"] = _k8s_cpu(Decimal(limits.cpus))
        request["cpu"] = _k8s_cpu(min(Decimal(limits.cpus), CPU_REQUEST))
    return {"requests": request, "limits": limit} if limit else {}


def _k8s_cpu(count: Decimal) -> str:
    # The API server's canonical form ("250m", "2"), so a rendered manifest reads back as
    # written and a live diff sees no change.
    return str(int(count)) if count == count.to_integral_value() else f"{int(count * 1000)}m"


def human_bytes(size: int) -> str:
    """The largest binary unit that divides the size exactly: 4Gi, 512Mi, 1536Mi."""
    for unit in ("Ti", "Gi", "Mi", "Ki"):
        if size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return str(size)


def _bytes(text: str) -> int:
    match = _QUANTITY.fullmatch(text)
    assert match is not None  # validated by the model
    return int(Decimal(match.group(1)) * _UNITS[match.group(2) or ""])


def _decimal_cpus(text: str) -> str:
    match = _CPU.fullmatch(text)
    assert match is not None
    count = Decimal(match.group(1)) / (1000 if match.group(2) else 1)
    # Normalised ("2.0" and "2000m" are both "2") so a plan compares equal values equal.
    return format(count.normalize(), "f")


def limits_in(inputs: dict[str, Any]) -> dict[str, Any] | None:
    """A container resource's limits in props form: podman's `limits` input, or a cluster
    workload's first container `resources.limits`; None when the inputs carry none."""
    value = inputs.get("limits")
    if isinstance(value, dict):
        return Limits.from_props(value).props()
    try:
        container = inputs["spec"]["template"]["spec"]["containers"][0]
        found = container["resources"]["limits"]
    except (KeyError, IndexError, TypeError):
        return None
    if not isinstance(found, dict):
        return None
    memory = found.get("memory")
    cpu = found.get("cpu")
    return {"memory": _bytes(str(memory)) if memory and _QUANTITY.fullmatch(str(memory)) else None,
            "cpus": _decimal_cpus(str(cpu)) if cpu and _CPU.fullmatch(str(cpu)) else None,
            "pids": None}


_SHOWN = {"memory": "memory", "cpus": "CPUs", "pids": "processes"}


def _show(kind: str, value: Any) -> str:
    if value is None:
        return "unlimited"
    return human_bytes(int(value)) if kind == "memory" else str(value)


def changes(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(raised, lowered): one line per limit, 'memory 4Gi -> 8Gi'. Removing a limit raises it."""
    raised: list[str] = []
    lowered: list[str] = []
    for kind in ("memory", "cpus", "pids"):
        a, b = old.get(kind), new.get(kind)
        if a == b:
            continue
        line = f"{_SHOWN[kind]} {_show(kind, a)} -> {_show(kind, b)}"
        wider = b is None or (a is not None and Decimal(str(b)) > Decimal(str(a)))
        (raised if wider else lowered).append(line)
    return raised, lowered
