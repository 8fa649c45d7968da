"""podman argv builders and inspect helpers used by the Podman stack's providers."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from paude import proc, sizing
from paude.procfs import PROC

from . import batchread, readiness

PODMAN = "podman"


def label_args(labels: Mapping[str, str]) -> list[str]:
    """--label flags in a stable order."""
    args: list[str] = []
    for key in sorted(labels):
        args += ["--label", f"{key}={labels[key]}"]
    return args


def network_create_argv(name: str, *, internal: bool, dns: bool,
                        labels: Mapping[str, str]) -> list[str]:
    """argv creating a bridge network; internal networks have no route out."""
    argv = [PODMAN, "network", "create"]
    if internal:
        argv.append("--internal")
    if not dns:
        # podman's resolver on a network forwards outside names even when the network
        # is internal: a DNS tunnel out of the sandbox. The agent's network has none.
        argv.append("--disable-dns")
    return [*argv, *label_args(labels), name]


def volume_create_argv(name: str, *, labels: Mapping[str, str]) -> list[str]:
    """argv creating a named volume."""
    return [PODMAN, "volume", "create", *label_args(labels), name]


def build_argv(tag: str, context_dir: str, *, build_args: Mapping[str, str],
               labels: Mapping[str, str], file: str | None = None,
               no_cache: bool = False, platform: str | None = None,
               ignore_file: str | None = None) -> list[str]:
    """argv building an image from a context directory (default file: its Containerfile)."""
    # --pull=never: a missing base is pulled before the build, outside its sandbox.
    argv = [PODMAN, "build", "--tag", tag, "--file", file or f"{context_dir}/Containerfile",
            "--pull=never"]
    if no_cache:
        argv.append("--no-cache")
    if platform:
        argv += ["--platform", platform]
    if ignore_file:
        argv += ["--ignorefile", ignore_file]
    for key in sorted(build_args):
        argv += ["--build-arg", f"{key}={build_args[key]}"]
    return [*argv, *label_args(labels), context_dir]


def push_argv(local: str, remote: str, *, tls_verify: bool, digest_file: str) -> list[str]:
    """`podman push` of a local image to a registry, recording the pushed digest."""
    return [PODMAN, "push", f"--tls-verify={'true' if tls_verify else 'false'}",
            "--digestfile", digest_file, local, remote]


# `podman search --list-tags` stops at 25 tags unless told otherwise; content-hash tags
# of many definitions accumulate in one repository.
_TAG_LIMIT = 1_000_000


def registry_tags(repository: str, *, tls_verify: bool) -> set[str] | None:
    """The tags a registry holds for a repository (REGISTRY/PATH), through podman with the
    user's own registry credentials and TLS settings: empty when the repository is gone,
    None when the registry cannot be read (unreachable, refused)."""
    result = proc.run([PODMAN, "search", "--list-tags", "--limit", str(_TAG_LIMIT),
                       f"--tls-verify={'true' if tls_verify else 'false'}", "--format", "json",
                       repository], check=False, log_output=False)
    if not result.ok:
        # The registry answers 404 for a repository with no tags left.
        return set() if "404" in result.stderr else None
    try:
        found = json.loads(result.stdout or "[]")
        return {str(t) for entry in found for t in entry.get("Tags") or []}
    except (ValueError, TypeError, AttributeError):
        return None


def create_argv(spec: Mapping[str, Any], *, start: bool = False) -> list[str]:
    """argv creating a container from a container spec; with `start`, creating and
    starting it in one podman call (`run --detach`).

    Secret variables appear as bare `--env KEY`: podman takes their values from its own
    environment, so they never show in argv, process lists or logs."""
    verb = ["run", "--detach"] if start else ["create"]
    argv = [PODMAN, *verb, "--name", spec["name"], "--hostname", spec["hostname"]]
    for network in spec["networks"]:
        argv += ["--network", network]
    for host in spec.get("add_hosts", []):
        argv += ["--add-host", host]
    if spec.get("dns"):
        argv += ["--dns", spec["dns"]]
    if spec.get("user"):
        argv += ["--user", spec["user"]]
    for cap in spec.get("cap_drop", []):
        argv += ["--cap-drop", cap]
    for opt in spec.get("security_opt", []):
        argv += ["--security-opt", opt]
    sysctls = spec.get("sysctls") or {}
    for key in sorted(sysctls):
        argv += ["--sysctl", f"{key}={sysctls[key]}"]
    if spec.get("read_only"):
        argv.append("--read-only")
    for tmpfs in spec.get("tmpfs", []):
        argv += ["--tmpfs", tmpfs]
    for mount in spec.get("volumes", []):
        argv += ["--volume", mount]
    env = spec.get("env", {})
    for key in sorted(env):
        argv += ["--env", f"{key}={env[key]}"]
    for key in sorted(spec.get("secret_env") or {}):
        argv += ["--env", key]
    argv += label_args(spec.get("labels", {}))
    if spec.get("restart"):
        argv += ["--restart", spec["restart"]]
    limits = spec.get("limits")
    if limits is not None:
        argv += sizing.podman_args(sizing.Limits.from_props(limits))
    return [*argv, spec["image"], *spec.get("command", [])]


def inspect(kind: str, name: str) -> dict[str, Any] | None:
    """`podman KIND inspect NAME` as a dict, or None when the object does not exist."""
    primed = batchread.lookup(kind, name)
    if primed is not None:
        return primed
    result = proc.run([PODMAN, kind, "inspect", name], check=False, log_output=False)
    if not result.ok:
        if is_missing(result.stderr):
            return None
        raise proc.classify_failure(result)
    data = json.loads(result.stdout or "[]")
    return data[0] if data else None


def wait_running(name: str, *, ready: Mapping[str, Any] | None = None, settle: float = 1.0,
                 timeout: float = 60.0) -> str:
    """Wait until a new container is running and ready; returns the container id.

    Ready: its `ready` probe answers (a port listened on, a child its entrypoint starts
    when set up; stacks/podman/readiness.py). A container that exits or restarts first
    fails: a proxy whose entrypoint rejects its configuration exits before its port opens,
    and reporting success for it would leave a session without its proxy. Without a probe,
    or where /proc cannot be read, it must stay up for `settle` seconds instead.

    Once podman has named the container's main process, the probe polls /proc alone; podman
    is asked again only when that process is gone (an exit, a restart). A `podman inspect`
    per poll cost a tenth of a second of CPU each, and three containers polling together
    on a small machine slowed the very start they waited for."""
    deadline = time.monotonic() + timeout
    up_since: float | None = None
    while True:
        found = inspect("container", name)
        state = (found or {}).get("State") or {}
        restarts = int((found or {}).get("RestartCount") or 0)
        if found is not None and state.get("Running") and restarts == 0:
            pid = int(state.get("Pid") or 0)
            probed = readiness.ready(pid, ready) if ready and pid > 0 else None
            while probed is False and _alive(pid) and time.monotonic() <= deadline:
                time.sleep(0.02)
                probed = readiness.ready(pid, ready) if ready else None
            if probed and _alive(pid):
                return str(found.get("Id", ""))
            if probed is None:
                up_since = up_since or time.monotonic()
                if time.monotonic() - up_since >= settle:
                    return str(found.get("Id", ""))
            # Otherwise its process ended: the inspect above says how (or the deadline).
        elif found is None or restarts > 0 or state.get("Status") in ("exited", "stopped"):
            logs = proc.run([PODMAN, "logs", "--tail", "15", name], check=False)
            tail = "\n".join((logs.stdout + logs.stderr).strip().splitlines()[-15:])
            raise RuntimeError(f"container {name} did not stay running "
                               f"(status {state.get('Status', 'missing')}):\n{tail}")
        if time.monotonic() > deadline:
            what = "start" if up_since is None and not state.get("Running") else "get ready"
            raise RuntimeError(f"container {name} did not {what} within {timeout:.0f}s")
        time.sleep(0.05 if ready else 0.1)


def _alive(pid: int) -> bool:
    """The process still runs (a zombie does not: it has exited)."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def change(argv: Sequence[str], *, env: Mapping[str, str] | None = None,
           check: bool = True) -> proc.CommandResult:
    """Run a podman command that creates, starts or removes something: it finishes even
    when paude, its engine or this plugin is killed meanwhile, because podman cannot be
    stopped inside some of these steps without leaving damage no later command repairs
    (proc._run_to_the_end)."""
    return proc.run(argv, env=env, check=check, finish_alone=True)


def remove(argv: Sequence[str]) -> None:
    """Run a removal command, treating 'already gone' as success."""
    result = change(argv, check=False)
    if result.ok or is_missing(result.stderr):
        return
    if _mount_busy(result.stderr):
        # A removal that was itself stopped partway (before removals finished on their
        # own) can leave the container's shm mount held for a moment; once more settles it.
        time.sleep(0.5)
        result = change(argv, check=False)
        if result.ok or is_missing(result.stderr):
            return
    raise proc.classify_failure(result)


def _mount_busy(stderr: str) -> bool:
    return "device or resource busy" in stderr.lower()


_LEAKED = re.compile(r"requested ip address (\S+) is already allocated to container ID (\w+)")


def create_failure(made: proc.CommandResult, spec: Mapping[str, Any]) -> Exception:
    """Why a container could not be made, naming the one failure podman does not recover
    from by itself: a fixed address still recorded for a container that is gone."""
    leaked = _LEAKED.search(made.stderr)
    if leaked is None or inspect("container", leaked.group(2)) is not None:
        return proc.classify_failure(made)
    address, holder = leaked.group(1), leaked.group(2)
    network = next((str(n).split(":", 1)[0] for n in spec.get("networks") or []
                    if f"ip={address}," in f"{n},"), "its network")
    # The engine shows a provider's exception message, not a PaudeError's hint.
    return RuntimeError(
        f"cannot start {spec['name']}: podman still records its address {address} on "
        f"{network} as taken by container {holder[:12]}, which no longer exists (a podman "
        "command was killed while it set that container's network up). podman 4 keeps this "
        "record until the machine restarts, even past `podman network rm`: restart the "
        "machine, then apply again. paude's own podman commands finish even when paude is "
        "killed; only a podman process killed by itself leaves this.")


def name_in_use(stderr: str) -> bool:
    """podman refused a create because the name is taken."""
    return "already in use" in stderr.lower()


def is_missing(stderr: str) -> bool:
    """podman's stderr says the object named does not exist (as opposed to failing)."""
    text = stderr.lower()
    return any(s in text for s in (
        "no such", "not found", "unable to find", "no container with", "not known"))
