"""Image platforms: the host's, and whether podman can build and run another one here
(only with user-mode emulation registered with the kernel, e.g. qemu-user-static)."""

from __future__ import annotations

import platform as _platform
from pathlib import Path

PLATFORMS = ("linux/amd64", "linux/arm64")
# platform -> the machine names the kernel reports, and the binfmt_misc entry of its
# emulator.
_MACHINES = {"linux/amd64": ("x86_64", "amd64"), "linux/arm64": ("aarch64", "arm64")}
_EMULATORS = {"linux/amd64": "qemu-x86_64", "linux/arm64": "qemu-aarch64"}
BINFMT = Path("/proc/sys/fs/binfmt_misc")


def host_platform() -> str | None:
    """The host's platform in podman's spelling (None: neither of PLATFORMS)."""
    machine = _platform.machine().lower()
    return next((p for p, names in _MACHINES.items() if machine in names), None)


def emulated(wanted: str, binfmt: Path = BINFMT) -> bool:
    """True when the kernel runs binaries of `wanted` through a registered emulator."""
    entry = binfmt / _EMULATORS.get(wanted, "")
    try:
        return entry.is_file() and entry.read_text(encoding="utf-8").startswith("enabled")
    except OSError:
        return False


def unavailable(wanted: str | None, binfmt: Path = BINFMT) -> str | None:
    """Why images of `wanted` cannot be built and run here, or None when they can."""
    if wanted is None or wanted == host_platform() or emulated(wanted, binfmt):
        return None
    return (f"the image platform {wanted} is not this machine's "
            f"({host_platform() or _platform.machine()}) and no emulator for it is "
            f"registered ({binfmt / _EMULATORS[wanted]} is missing): install "
            "qemu-user-static (binfmt-support) to build and run it, or remove image.platform")
