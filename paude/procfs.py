"""What the host's /proc says about a container's processes: cheap reads that spare a
`podman exec` (a third of a second each) where the kernel already has the answer."""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")
_LISTEN = "0A"  # the TCP state column of /proc/net/tcp{,6}


def listening(pid: int, port: int, proc: Path = PROC) -> bool | None:
    """True when a TCP socket in the process's network namespace listens on `port`."""
    wanted = f":{port:04X}"
    readable = False
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / str(pid) / "net" / table).read_text(encoding="ascii").splitlines()
        except FileNotFoundError:
            continue  # gone (the next inspect says so), or no IPv6
        except (OSError, UnicodeDecodeError):
            return None
        readable = True
        for line in lines[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[3] == _LISTEN and fields[1].endswith(wanted):
                return True
    return False if readable or not (proc / str(pid)).exists() else None


def has_child(pid: int, command: str, proc: Path = PROC) -> bool | None:
    """True when a direct child of the process runs `command` (its comm name)."""
    try:
        children = (proc / str(pid) / "task" / str(pid) / "children").read_text(
            encoding="ascii").split()
    except FileNotFoundError:
        # Gone, or a kernel without the children file (then: the old wait).
        return False if not (proc / str(pid)).exists() else None
    except (OSError, UnicodeDecodeError):
        return None
    for child in children:
        try:
            if (proc / child / "comm").read_text(encoding="utf-8").strip() == command:
                return True
        except (OSError, UnicodeDecodeError):
            continue  # exited meanwhile
    return False
