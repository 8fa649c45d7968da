"""The podman baseline: what the bench session's containers are, and the same objects made
with plain podman commands (bench/podman_baseline.sh)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import BenchError, podman_lines, run, timed

BENCH_DIR = Path(__file__).resolve().parent
BASELINE_SCRIPT = BENCH_DIR / "podman_baseline.sh"
BASELINE_PREFIX = "bench-baseline"
ROLES = ("proxy", "gateway", "agent")
# Variables podman sets in every container (not the session's settings).
_PODMAN_ENV = frozenset({"HOSTNAME", "container", "TERM", "HOME"})


@dataclass(frozen=True)
class SessionFacts:
    """What the baseline copies from the session paude created."""

    proxy_image: str
    agent_image: str
    # Per role: a bash file setting env_names, their values and run_args (limits, mounts).
    env_files: Mapping[str, str]
    container_ids: tuple[str, ...]


def session_facts(session: str) -> SessionFacts:
    """Image tags, settings and container ids of a live session's containers."""
    found: dict[str, dict[str, Any]] = {}
    ids: list[str] = []
    for line in podman_lines("ps", "--filter", f"label=paude.session={session}",
                             "--format", "{{.Names}} {{.ID}}"):
        name, container_id = line.split()
        ids.append(container_id)
        found[name] = json.loads(run(["podman", "container", "inspect", name]).stdout)[0]
    names = {role: f"paude-{session}-{role}" for role in ROLES}
    missing = [n for n in names.values() if n not in found]
    if missing:
        raise BenchError(f"expected {', '.join(missing)} to be running; found {sorted(found)}")
    proxy = found[names["proxy"]]
    subnet_ips = _fixed_addresses(proxy, found[names["gateway"]])
    files = {role: _env_file(found[name], session, subnet_ips) for role, name in names.items()}
    return SessionFacts(proxy["ImageName"], found[names["agent"]]["ImageName"], files,
                        tuple(sorted(ids)))


def _fixed_addresses(proxy: Mapping[str, Any], gateway: Mapping[str, Any]) -> dict[str, str]:
    """The proxy's and gateway's addresses on the internal network, to be swapped for the
    baseline's own."""
    def internal_ip(container: Mapping[str, Any]) -> str:
        networks = (container.get("NetworkSettings") or {}).get("Networks") or {}
        for net_name, net in networks.items():
            if net_name.endswith("-internal"):
                return str(net.get("IPAddress") or "")
        raise BenchError(f"{container.get('Name')} is not on an internal network")
    return {internal_ip(proxy): "@PROXY_IP@", internal_ip(gateway): "@GATEWAY_IP@"}


def _env_file(container: Mapping[str, Any], session: str, addresses: Mapping[str, str]) -> str:
    """The bash file podman_baseline.sh sources for one container: the variables paude set
    (not those of its image), its limits and its bind mounts."""
    image = json.loads(run(["podman", "image", "inspect", str(container["Image"])]).stdout)[0]
    inherited = set((image.get("Config") or {}).get("Env") or [])
    names: list[str] = []
    lines: list[str] = []
    for entry in (container.get("Config") or {}).get("Env") or []:
        key, _, value = str(entry).partition("=")
        if key in _PODMAN_ENV or entry in inherited:
            continue
        value = value.replace(f"paude-{session}-", "@PREFIX@-")
        for address, token in addresses.items():
            value = value.replace(address, token)
        names.append(key)
        lines.append(f"{key}={shlex.quote(value)}")
    host = container.get("HostConfig") or {}
    args = ["--memory", str(host.get("Memory") or 0), "--memory-swap",
            str(host.get("MemorySwap") or 0), "--cpus", str(int(host.get("NanoCpus") or 0) / 1e9),
            "--pids-limit", str(host.get("PidsLimit") or -1)]
    for mount in container.get("Mounts") or []:
        if mount.get("Type") == "bind":
            mode = "" if mount.get("RW") else ":ro"
            args += ["--volume", f"{mount['Source']}:{mount['Destination']}{mode}"]
    lines.append(f"env_names=({' '.join(names)})")
    lines.append(f"run_args=({' '.join(shlex.quote(a) for a in args)})")
    return "\n".join(lines) + "\n"


def baseline_env(base_env: Mapping[str, str], facts: SessionFacts, settle: float,
                 env_dir: Path) -> dict[str, str]:
    """Environment for podman_baseline.sh; writes the per-container files to env_dir."""
    env_dir.mkdir(mode=0o700, exist_ok=True)
    for role, content in facts.env_files.items():
        # The proxy's file holds the session's throwaway CA key: owner-only.
        path = env_dir / f"{role}.sh"
        path.touch(mode=0o600)
        path.write_text(content, encoding="utf-8")
    return {**base_env, "BASELINE_PREFIX": BASELINE_PREFIX,
            "BASELINE_PROXY_IMAGE": facts.proxy_image,
            "BASELINE_AGENT_IMAGE": facts.agent_image,
            "BASELINE_ENV_DIR": str(env_dir),
            "BASELINE_SETTLE": f"{settle:g}"}


def time_baseline(base_env: Mapping[str, str], facts: SessionFacts, settle: float,
                  env_dir: Path) -> float:
    """Seconds for podman_baseline.sh to bring the session up; removed again untimed."""
    env = baseline_env(base_env, facts, settle, env_dir)
    try:
        seconds, _ = timed(["bash", str(BASELINE_SCRIPT), "up"], env=env)
    finally:
        run(["bash", str(BASELINE_SCRIPT), "down"], env=env)
    return seconds


def time_podman_start(session: str) -> float:
    """Seconds for `podman start` of a stopped session's containers (the plain command
    `paude start` replaces); they are stopped again untimed."""
    names = [f"paude-{session}-{role}" for role in ROLES]
    seconds, _ = timed(["podman", "start", *names])
    run(["podman", "stop", "--time", "1", *names])
    return seconds
