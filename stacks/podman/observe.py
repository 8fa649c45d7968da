"""What a running container really is, against what its stack declared: drift.

A container can be changed, or swapped for a look-alike of the same name, outside paude
(`podman update`, `podman rm` and `podman run --privileged -v /:/host ...` under the same
name, an edit inside the proxy). The plan must say so, and apply must put the declared
container back. Each difference is one readable line; none carries a secret's value.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from paude import proc
from paude.backends.base import SQUID_CONF

from . import podman

# podman's default capability set (containers.conf): what `--cap-drop ALL` removes.
DEFAULT_CAPS = frozenset({
    "CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_MKNOD", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SETFCAP",
    "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID", "CAP_SYS_CHROOT"})
# Variables podman itself sets in every container.
_PODMAN_ENV = frozenset({"HOSTNAME", "container", "TERM", "HOME"})


def drift(found: Mapping[str, Any], props: Mapping[str, Any], image: Mapping[str, Any]
          ) -> list[str]:
    """Differences between an inspected container and its declared props; `image` is the
    image's own Config (the variables and user a container inherits are not drift)."""
    host: Mapping[str, Any] = found.get("HostConfig") or {}
    config: Mapping[str, Any] = found.get("Config") or {}
    lines: list[str] = []
    if props.get("container_id") and found.get("Id") != props["container_id"]:
        lines.append("replaced outside paude: another container has its name")
    if host.get("Privileged"):
        lines.append("privileged")
    for mode in ("NetworkMode", "PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode"):
        if str(host.get(mode) or "") == "host":
            lines.append(f"shares the host's namespace ({mode})")
    lines += _capabilities(host, props)
    declared_opts = set(props.get("security_opt") or [])
    running_opts = set(host.get("SecurityOpt") or [])
    if declared_opts - running_opts:
        lines.append(f"security options removed: {', '.join(sorted(declared_opts - running_opts))}")
    # Options a runtime adds by itself (an SELinux label) are not drift; lifting
    # confinement is.
    lifted = sorted(o for o in running_opts - declared_opts
                    if any(w in o for w in ("unconfined", "disable", "unmask", "spc_t")))
    if lifted:
        lines.append(f"security options added: {', '.join(lifted)}")
    user = str(props.get("user") or image.get("User") or "")
    if str(config.get("User") or "") != user:
        lines.append(f"user {config.get('User') or 'root'} (declared {user or 'root'})")
    if bool(host.get("ReadonlyRootfs")) != bool(props.get("read_only")):
        lines.append("read-only root " + ("on" if host.get("ReadonlyRootfs") else "off"))
    lines += _mounts(found.get("Mounts") or [], props.get("volumes") or [])
    lines += _env(config.get("Env") or [], props, _env_of(image))
    # An image's EXPOSE lists a port with no binding: only a bound one is published.
    ports = sorted(str(p) for p, bound in (host.get("PortBindings") or {}).items() if bound)
    if ports:
        lines.append(f"ports published on the host: {', '.join(ports)}")
    if host.get("Devices"):
        lines.append("host devices added")
    restart = str((host.get("RestartPolicy") or {}).get("Name") or "")
    if restart not in ("", "no") and restart != str(props.get("restart") or ""):
        lines.append(f"restart policy {restart} (declared {props.get('restart') or 'none'})")
    if restart in ("", "no") and props.get("restart"):
        lines.append(f"restart policy none (declared {props['restart']})")
    hosts = sorted(str(h) for h in host.get("ExtraHosts") or [])
    if props.get("add_hosts") is not None and hosts != sorted(
            str(h) for h in props.get("add_hosts") or []):
        lines.append(f"host entries {', '.join(hosts) or 'none'}")
    labels = config.get("Labels") or {}
    for key, value in sorted((props.get("labels") or {}).items()):
        if labels.get(key) != value:
            lines.append(f"label {key} is {labels.get(key)!r}")
    return lines


def _capabilities(host: Mapping[str, Any], props: Mapping[str, Any]) -> list[str]:
    if "ALL" not in [str(c).upper() for c in props.get("cap_drop") or []]:
        return []
    kept = (DEFAULT_CAPS - set(host.get("CapDrop") or [])) | set(host.get("CapAdd") or [])
    return [f"capabilities kept: {', '.join(sorted(kept))}"] if kept else []


def _mount_line(mount: Mapping[str, Any]) -> str:
    source = mount.get("Name") if mount.get("Type") == "volume" else mount.get("Source")
    return f"{source}:{mount.get('Destination')}{'' if mount.get('RW') else ':ro'}"


def _mounts(running: Sequence[Mapping[str, Any]], declared: Sequence[Any]) -> list[str]:
    want = set()
    for entry in declared:
        parts = str(entry).split(":")
        if len(parts) >= 2:
            opts = parts[2].split(",") if len(parts) > 2 else []
            want.add(f"{parts[0]}:{parts[1]}{':ro' if 'ro' in opts else ''}")
    have = {_mount_line(m) for m in running}
    lines = [f"mount added: {m}" for m in sorted(have - want)]
    lines += [f"mount missing: {m}" for m in sorted(want - have)]
    return lines


def _env(running: Sequence[str], props: Mapping[str, Any],
         image_env: Mapping[str, str]) -> list[str]:
    have = dict(str(e).partition("=")[::2] for e in running)
    declared = {str(k): str(v) for k, v in (props.get("env") or {}).items()}
    names = props.get("secret_env_names")  # the values may be encrypted; never compared
    secret = set(names) if isinstance(names, list) else set(props.get("secret_env") or {})
    added, changed = [], []
    for key in sorted(set(have) | set(declared)):
        if key in secret:
            continue  # a secret's value is never compared into a plan
        if key in declared:
            if have.get(key) != declared[key]:
                changed.append(f"environment {key} {'changed' if key in have else 'removed'}")
        elif key not in _PODMAN_ENV and image_env.get(key) != have[key]:
            added.append(f"environment {key} added")
    # What was added first: a plan shows only the first few lines of a container's drift.
    return added + changed


def _env_of(image: Mapping[str, Any]) -> dict[str, str]:
    return dict(str(e).partition("=")[::2] for e in image.get("Env") or [])


def image_config(image: str) -> dict[str, Any]:
    """An image's Config (its variables and user), {} when it is gone."""
    found = podman.inspect("image", image) or {}
    return dict(found.get("Config") or {})


def proxy_config(name: str, props: Mapping[str, Any], pid: int = 0) -> list[str]:
    """The squid configuration inside a running proxy (main process `pid`) against the
    declared one."""
    encoded = (props.get("env") or {}).get("PAUDE_SQUID_CONF_B64")
    if not encoded:
        return []
    try:
        declared = base64.b64decode(str(encoded), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return []
    # From the host when it can (a `podman exec` costs a third of a second of every plan).
    found = read_in_container(pid, SQUID_CONF) if pid > 0 else None
    if found is None:
        result = proc.run([podman.PODMAN, "exec", name, "cat", SQUID_CONF], check=False,
                          log_output=False)
        if not result.ok:
            return [f"squid configuration unreadable ({SQUID_CONF})"]
        found = result.stdout
    if found != declared:
        return [f"squid configuration edited inside the proxy ({SQUID_CONF})"]
    return []


_NO_FOLLOW = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_READ = 1 << 20


def read_in_container(pid: int, path: str, proc_root: Path = Path("/proc")) -> str | None:
    """A regular file inside a running container, read through /proc/PID/root; None when it
    cannot be read that way (then ask the container itself).

    No symbolic link on the way is followed: the host resolves an absolute link against
    its own root, so a link in the container would make paude read a file of the host's."""
    try:
        folder = os.open(proc_root / str(pid) / "root", os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    parts = [p for p in path.split("/") if p not in ("", ".")]
    try:
        if not parts or ".." in parts:
            return None
        for part in parts[:-1]:
            inner = os.open(part, _NO_FOLLOW | os.O_DIRECTORY, dir_fd=folder)
            os.close(folder)
            folder = inner
        # Non-blocking: a FIFO put there must not hang the plan.
        fd = os.open(parts[-1], _NO_FOLLOW | os.O_NONBLOCK, dir_fd=folder)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_READ:
                return None
            with os.fdopen(os.dup(fd), "rb") as handle:
                return handle.read(_MAX_READ).decode("utf-8")
        finally:
            os.close(fd)
    except (OSError, UnicodeDecodeError):
        return None
    finally:
        os.close(folder)
