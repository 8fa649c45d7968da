"""The sandbox image builds run in: RUN steps share a network namespace whose only
neighbour is a squid that allows the build allowlist, like the agent's own proxy.

podman build cannot join a named network (only private, host, none or ns:PATH), so a
holder container sits on an internal network and the build joins its namespace. The
build's own process gets a scrubbed environment: the proxy variables, which podman hands
to RUN steps, and nothing of paude's (no passphrase, no credentials)."""

from __future__ import annotations

import contextlib
import os
import secrets
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

from paude import proc, proxylog

from . import podman

PROXY_PORT = 3128
EGRESS_NETWORK = "paude-build-egress"
# What a build needs from the host's environment to run podman at all.
_PASS_THROUGH = ("PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "XDG_RUNTIME_DIR",
                 "XDG_CONFIG_HOME", "XDG_DATA_HOME", "CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF",
                 "CONTAINERS_REGISTRIES_CONF", "REGISTRY_AUTH_FILE", "BUILDAH_ISOLATION")


@dataclass(frozen=True)
class BuildNetwork:
    """Where a sandboxed build's RUN steps live."""

    namespace: str  # podman build --network value
    proxy_url: str
    proxy: str  # the build proxy container, for its access log

    def env(self) -> dict[str, str]:
        """The environment of `podman build`: podman passes the proxy variables on to every
        RUN step (--http-proxy, on by default)."""
        base = {k: v for k, v in os.environ.items() if k in _PASS_THROUGH}
        proxies = {k: self.proxy_url for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
                                                "https_proxy", "FTP_PROXY", "ftp_proxy")}
        return {**base, **proxies, "NO_PROXY": "localhost,127.0.0.1",
                "no_proxy": "localhost,127.0.0.1"}

    def refused(self) -> list[str]:
        """Hosts the build proxy refused, for an error that says what to allow."""
        log = proc.run([podman.PODMAN, "exec", self.proxy, "cat", "/var/log/squid/access.log"],
                       check=False)
        return sorted({_host(r.url) for r in proxylog.blocked(log.stdout)})


def _host(url: str) -> str:
    # CONNECT requests log host:port, plain HTTP a full URL.
    if "://" in url:
        return urllib.parse.urlsplit(url).hostname or url
    return url.rsplit(":", 1)[0]


SANDBOX_LABEL = "paude.build-sandbox"


def _labels(role: str, owner: dict[str, str] | None = None) -> dict[str, str]:
    return {**(owner or {}), "paude.managed": "true", "paude.role": role, SANDBOX_LABEL: "true"}


@contextlib.contextmanager
def sandbox(proxy_image: str, squid_conf_b64: str,
            owner: dict[str, str] | None = None) -> Iterator[BuildNetwork]:
    """Start a build proxy and a namespace holder; remove both (and their networks) after.

    `owner` holds the session's labels (paude.session, paude.repository): a build killed
    with its paude leaves a sandbox that the session's next build, or its destroy, removes.
    The session lock makes one build per session at a time, so any sandbox of the session
    found at the start is such a leftover."""
    if owner:
        sweep(owner)
    key = secrets.token_hex(4)
    internal = f"paude-build-{key}"
    proxy, holder = f"paude-build-{key}-proxy", f"paude-build-{key}-netns"
    try:
        proc.run(podman.network_create_argv(internal, internal=True, dns=False,
                                            labels=_labels("build-network", owner)))
        _ensure_egress()
        subnet = ((podman.inspect("network", internal) or {}).get("subnets") or [{}])[0]
        address = _last_host(str(subnet.get("subnet", "")))
        hardening = ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
        proc.run([podman.PODMAN, "run", "--detach", "--name", proxy, *hardening,
                  "--network", f"{internal}:ip={address}", "--network", EGRESS_NETWORK,
                  "--env", f"PAUDE_SQUID_CONF_B64={squid_conf_b64}",
                  *podman.label_args(_labels("build-proxy", owner)), proxy_image])
        proc.run([podman.PODMAN, "run", "--detach", "--name", holder, *hardening,
                  "--network", internal, "--dns", "none", "--entrypoint", "sleep",
                  *podman.label_args(_labels("build-netns", owner)), proxy_image, "infinity"])
        found = podman.inspect("container", holder) or {}
        pid = int((found.get("State") or {}).get("Pid") or 0)
        if pid <= 0:
            raise RuntimeError(f"the build sandbox {holder} did not start")
        _wait_port(holder, address, proxy)
        yield BuildNetwork(f"ns:/proc/{pid}/ns/net", f"http://{address}:{PROXY_PORT}", proxy)
    finally:
        for name in (holder, proxy):
            podman.remove([podman.PODMAN, "rm", "--force", "--time", "0", name])
        podman.remove([podman.PODMAN, "network", "rm", "--force", internal])


def sweep(owner: dict[str, str]) -> list[str]:
    """Remove the build sandboxes carrying these session labels: containers, then networks."""
    filters = [f"--filter=label={k}={v}" for k, v in {**owner, SANDBOX_LABEL: "true"}.items()]
    removed: list[str] = []
    for listing, field, removal in ((["ps", "--all"], ".Names", ["rm", "--force", "--time", "0"]),
                                    (["network", "ls"], ".Name", ["network", "rm", "--force"])):
        found = proc.run([podman.PODMAN, *listing, *filters, "--format", f"{{{{{field}}}}}"],
                         check=False, log_output=False)
        names = found.stdout.split() if found.ok else []
        for name in names:
            podman.remove([podman.PODMAN, *removal, name])
        removed += names
    return removed


def _ensure_egress() -> None:
    """The build proxies' way out: one network shared by every build, kept between them."""
    if podman.inspect("network", EGRESS_NETWORK) is not None:
        return
    result = proc.run(podman.network_create_argv(EGRESS_NETWORK, internal=False, dns=True,
                                                 labels=_labels("build-egress")), check=False)
    # Two builds starting together may both create it; one wins, both go on.
    if not result.ok and podman.inspect("network", EGRESS_NETWORK) is None:
        raise proc.classify_failure(result)


def _last_host(subnet: str) -> str:
    import ipaddress

    return str(ipaddress.ip_network(subnet).broadcast_address - 1)


def _wait_port(holder: str, address: str, proxy: str, timeout: float = 30.0) -> None:
    """Poll the proxy's port from inside the sandbox; a proxy that exits is an error."""
    probe = f"exec 3<>/dev/tcp/{address}/{PROXY_PORT}"
    deadline = time.monotonic() + timeout
    while True:
        if proc.run([podman.PODMAN, "exec", holder, "bash", "-c", probe], check=False).ok:
            return
        state = ((podman.inspect("container", proxy) or {}).get("State") or {})
        if not state.get("Running") or time.monotonic() > deadline:
            logs = proc.run([podman.PODMAN, "logs", "--tail", "15", proxy], check=False)
            raise RuntimeError("the build proxy did not start:\n"
                               + (logs.stdout + logs.stderr).strip()[-1500:])
        time.sleep(0.1)


_HOST_PROXY = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy",
               "no_proxy")


def host_env() -> dict[str, str]:
    """The environment of a pull, or of paude's own proxy image build (no repository
    content): what podman needs, and the host's own proxy settings; nothing else."""
    return {k: v for k, v in os.environ.items() if k in _PASS_THROUGH + _HOST_PROXY}
