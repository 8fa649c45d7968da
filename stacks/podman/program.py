"""The Podman stack program: one session's images, networks, volume and containers."""

from __future__ import annotations

import base64
import ipaddress
import json
import shlex
from collections.abc import Callable
from pathlib import Path

import pulumi

from paude import arch, domains, egress, naming, sizing
from paude import gateway as model_gateway
from paude.credentials import AgentIdentity, stage
from paude.fields import YOLO_FLAG
from paude.models import Session
from paude.render import render

from ..session_ca import SessionCA
from . import features
from .images import agent_build, dockerfile_build, image_props, proxy_build
from .resources import Container, Image, Network, Volume

PROXY_PORT = 3128
# The gateway's access log, in the proxy's format (`paude blocked` reads both).
GATEWAY_LOG = "/var/log/paude/gateway-access.log"
# The volume holds the repository (/paude/workspace, linked as /workspace) and the
# agent's state (/paude/home).
VOLUME_MOUNT = "/paude"


def labels(session: str, role: str, owner: str) -> dict[str, str]:
    """Discovery labels carried by every object of a session."""
    return {"paude.managed": "true", "paude.session": session, "paude.role": role,
            "paude.repository": owner}


def squid_conf(session: Session, *, gateway: bool = True, gateway_port: int | None = None
               ) -> str:
    """The proxy configuration rendered from the session's allowed_domains; the gateway
    reaches only the model hosts of its routes. It is admitted by its address (written to
    a file by the entrypoint, so the configuration stays known at plan time), or on a
    cluster by a port of its own that NetworkPolicies open to it alone."""
    allow = domains.expand(session.allowed_domains, session.denied_requests)
    hosts = model_gateway.gateway_hosts(allow)
    patterns = [p for r in allow.routes for p in model_gateway.ROUTE_REGEXES.get(r, ())]
    return render("squid.conf.j2", session=session.name, unrestricted=allow.unrestricted,
                  domains=list(allow.domains), regexes=list(allow.regexes),
                  inspected=list(domains.squid_names(allow.inspected)),
                  rules=_rule_views(allow.rules), denies=_rule_views(allow.denies),
                  gateway=gateway, gateway_port=gateway_port, gateway_domains=hosts,
                  gateway_regexes=patterns)


def _rule_views(rules: tuple[egress.Rule, ...]) -> list[dict[str, object]]:
    # Each rule keeps its position: its ACL names are numbered by it.
    return [{"index": i, "host": r.host, "methods": r.methods, "regexes": r.regexes,
             "source": r.source, "inspects": r.inspects} for i, r in enumerate(rules)]


# Where the agent's entrypoint writes the system roots plus the session's inspection CA,
# and the variables that point the usual clients (OpenSSL, curl, git, pip, node) at it.
CA_BUNDLE = "/tmp/paude-ca/bundle.pem"
TRUST_ENV = ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "GIT_SSL_CAINFO",
             "PIP_CERT", "NODE_EXTRA_CA_CERTS", "CARGO_HTTP_CAINFO")


def agent_trust_env(ca_cert: pulumi.Input[str]) -> dict[str, pulumi.Input[str]]:
    """The agent's environment for trusting the proxy's inspection CA."""
    return {"PAUDE_SESSION_CA": ca_cert, **{name: CA_BUNDLE for name in TRUST_ENV}}


def proxy_address(subnet: str) -> str:
    """The proxy's fixed address: the last host of the internal subnet (podman hands out
    addresses from the bottom, so the agent never takes it)."""
    network = ipaddress.ip_network(subnet)
    return str(network.broadcast_address - 1)


def gateway_address(subnet: str) -> str:
    """The gateway's fixed address, just below the proxy's (squid admits it by address)."""
    network = ipaddress.ip_network(subnet)
    return str(network.broadcast_address - 2)


def fixed_mac(address: str) -> str:
    """A locally administered MAC address made from a fixed IPv4 address. A replaced proxy
    (an allowlist change) or gateway keeps its address; with a new MAC as well, the agent's
    neighbour cache would send to the old one for half a minute, and egress would stall."""
    packed = ipaddress.ip_address(address).packed[-4:]
    return ":".join(["02", "50", *(f"{b:02x}" for b in packed)])


def fixed_network(network: pulumi.Output[str], address: pulumi.Output[str]
                  ) -> pulumi.Output[str]:
    """`--network NAME:ip=ADDRESS,mac=MAC` for a container with a fixed address."""
    return pulumi.Output.concat(network, ":ip=", address, ",mac=", address.apply(fixed_mac))


PRINT_FLAGS = ("-p", "--print")


def agent_commands(session: Session) -> dict[str, str]:
    """The agent's command lines, shell-quoted for tmux (each argument stays one argument).

    With a headless prompt (-p/--print) in agent.args, the full line runs once, on the
    first start; later starts run the agent interactively without the prompt."""
    flags = [YOLO_FLAG] if session.yolo else []
    full = shlex.join([*session.agent.command, *flags, *session.agent.args])
    prepare = setup_env(session)
    if any(a in PRINT_FLAGS or a.startswith("--print=") for a in session.agent.args):
        return {"PAUDE_AGENT_ONCE_CMD": full,
                "PAUDE_AGENT_CMD": shlex.join([*session.agent.command, *flags]), **prepare}
    return {"PAUDE_AGENT_CMD": full, **prepare}


def setup_env(session: Session) -> dict[str, str]:
    """What the agent's paude-setup reads: the setup command and the venv folders. Only
    text: the container runs them after the first push, the host never does."""
    env = {"PAUDE_SETUP": session.setup} if session.setup else {}
    if session.venv != "none":
        env["PAUDE_VENV"] = session.venv if isinstance(session.venv, str) else ":".join(
            session.venv)
    return env


def make_program(session: Session, owner: str, identity: AgentIdentity | None = None, *,
                 rebuild: str = "", files: Path | None = None) -> Callable[[], None]:
    """Return the inline Pulumi program for one session on podman.

    A non-empty `rebuild` (a fresh token per `create --rebuild`) rebuilds the images
    without the layer cache and so recreates the containers. `files`: where the
    repository's files are read, when not at `owner` (a base commit's, for a plan)."""
    identity = identity or AgentIdentity((), (), {}, {})

    # Outside the program: a missing Dockerfile is a definition error, reported before
    # the engine starts.
    base_spec = dockerfile_build(session, Path(owner), files=files)
    _, feature_files = features.build_files(session, files or Path(owner))

    def program() -> None:
        unbuildable = arch.unavailable(session.image.platform)
        if unbuildable is not None and not pulumi.runtime.is_dry_run():
            # Before any resource: an image replaced first would take the agent's container
            # down with it (deleted before replaced), and its build would then fail.
            raise RuntimeError(f"session {session.name}: {unbuildable}; nothing was changed")
        names = naming.PodmanNames(session.name)
        keep = pulumi.ResourceOptions(retain_on_delete=True)
        proxy_spec = proxy_build(session)
        proxy_image = Image("proxy-image", image_props(proxy_spec, rebuild), keep)
        # Builds that take anything from the repository run behind a build proxy made from
        # the proxy image (stacks/podman/buildbox.py), so they come after it.
        # The sandbox's objects carry the session's labels so a killed build's are found.
        owner_labels = {k: v for k, v in labels(session.name, "build", owner).items()
                        if k in ("paude.session", "paude.repository")}
        sandboxed = {"build_proxy_image": proxy_image.tag, "build_owner": owner_labels}
        base_tag: str | None = None
        after_base = pulumi.ResourceOptions(retain_on_delete=True, depends_on=[proxy_image])
        if base_spec is not None:
            base_image = Image("base-image", {**image_props(base_spec, rebuild), **sandboxed},
                               after_base)
            base_tag = base_spec.tag
            after_base = pulumi.ResourceOptions(retain_on_delete=True, depends_on=[base_image])
        agent_spec = agent_build(session, base_tag, feature_files)
        agent_image = Image("agent-image", {**image_props(agent_spec, rebuild), **sandboxed},
                            after_base)
        internal = Network("internal-network", {
            "name": names.internal_network, "internal": True, "dns": False,
            "labels": labels(session.name, "internal-network", owner),
        })
        egress = Network("egress-network", {
            "name": names.egress_network, "internal": False, "dns": True,
            "labels": labels(session.name, "egress-network", owner),
        })
        # Protected as well as retained: the engine refuses any plan that would delete or
        # replace the agent's work (destroy leaves it out; --delete-data removes it).
        workspace = Volume("workspace", {
            "name": names.workspace, "labels": labels(session.name, "workspace", owner),
        }, pulumi.ResourceOptions(retain_on_delete=True, protect=True))

        hardening = {"cap_drop": ["ALL"], "security_opt": ["no-new-privileges"]}
        if not pulumi.runtime.is_dry_run():
            stage(identity)  # the read-only mounts' sources; a plan writes nothing
        # A fixed proxy address lets the agent find it without any resolver, and survives
        # proxy replacement (an allowlist change must not restart the agent).
        proxy_ip = internal.subnet.apply(proxy_address)
        gateway_ip = internal.subnet.apply(gateway_address)
        conf = base64.b64encode(squid_conf(session).encode()).decode()
        allow = domains.expand(session.allowed_domains, session.denied_requests)
        # Made for every session, used where a rule needs it: a first method/path rule then
        # changes the proxy only, never the agent's trust.
        ca = SessionCA("session-ca", {"session": session.name})
        proxy = Container("proxy", {
            "name": names.proxy, "hostname": names.proxy,
            "image": proxy_image.tag, "image_id": proxy_image.image_id,
            "networks": [fixed_network(internal.name, proxy_ip), egress.name],
            "env": {"PAUDE_SQUID_CONF_B64": conf, "PAUDE_GATEWAY_IP": gateway_ip,
                    "PAUDE_CA_CERT": ca.cert_pem},
            "secret_env": pulumi.Output.secret(ca.key_pem.apply(
                lambda key: {"PAUDE_CA_KEY": key})),
            "secret_env_names": ["PAUDE_CA_KEY"],
            # Not a podman setting: recorded so plans can say how egress changes.
            "allowlist": allow.describe() + allow.describe_routes(),
            "labels": labels(session.name, "proxy", owner),
            "limits": sizing.PROXY.props(),
            # Ready once squid listens: its entrypoint checks the configuration first.
            "ready": {"port": PROXY_PORT},
            "restart": "unless-stopped", **hardening,
        })
        # The model gateway: the only holder of the model credentials, on the internal
        # network only; its upstream goes through the proxy, which lets it reach only the
        # model hosts. Rotating a credential replaces it alone.
        creds = identity.gateway
        gateway_conf = proxy_ip.apply(lambda ip: json.dumps(model_gateway.config(
            creds, allow, proxy_url=f"http://{ip}:{PROXY_PORT}", log_file=GATEWAY_LOG,
            github_writes=session.github_writes),
            sort_keys=True))
        gw = Container("gateway", {
            "name": names.gateway, "hostname": names.gateway,
            "image": proxy_image.tag, "image_id": proxy_image.image_id,
            "networks": [fixed_network(internal.name, gateway_ip)],
            "env": {"PAUDE_GATEWAY_CONFIG": gateway_conf},
            "secret_env": pulumi.Output.secret(creds.secret_env()),
            "secret_env_names": sorted(creds.secret_env()),
            "command": ["gateway"], "dns": "none",
            # Not podman settings: recorded so plans can name what the gateway holds.
            "credential_sources": creds.sources(),
            "routes": allow.describe_routes(),
            "github_writes": session.github_writes,
            "labels": labels(session.name, "gateway", owner),
            "limits": sizing.PROXY.props(),
            "ready": {"port": model_gateway.GATEWAY_PORT},
            "restart": "unless-stopped", **hardening,
        }, pulumi.ResourceOptions(depends_on=[internal]))
        gateway_url = f"http://{names.gateway}:{model_gateway.GATEWAY_PORT}"
        proxy_url = f"http://{names.proxy}:{PROXY_PORT}"
        no_proxy = f"localhost,127.0.0.1,::1,{names.proxy},{names.gateway}"
        agent = Container("agent", {
            "name": names.agent, "hostname": names.agent,
            "image": agent_image.tag, "image_id": agent_image.image_id,
            # The name as a plain string (the network is a dependency below), so the policy
            # pack can check the agent's isolation even in the plan of a new session.
            "networks": [names.internal_network],
            "volumes": [pulumi.Output.concat(workspace.name, ":", VOLUME_MOUNT),
                        *identity.mounts()],
            "env": {
                **identity.env,
                **model_gateway.agent_env(creds, gateway_url),
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
                "PAUDE_GATEWAY": f"{names.gateway}:{model_gateway.GATEWAY_PORT}",
                "HTTP_PROXY": proxy_url, "HTTPS_PROXY": proxy_url,
                "http_proxy": proxy_url, "https_proxy": proxy_url,
                "NO_PROXY": no_proxy, "no_proxy": no_proxy,
                "PAUDE_SESSION": session.name,
                **agent_trust_env(ca.cert_pem),
                **agent_commands(session),
            },
            "secret_env": pulumi.Output.secret(identity.secret_env),
            # In the clear beside the encrypted values: the names are all a read compares,
            # and paude's own refresh (prerefresh.py) cannot decrypt the state.
            "secret_env_names": sorted(identity.secret_env),
            "copy_in": [list(pair) for pair in identity.copies],
            # Not a podman setting: what of ~/.claude is copied in, for plans.
            "copied": identity.seed.describe(),
            "add_hosts": [pulumi.Output.concat(names.proxy, ":", proxy_ip),
                          pulumi.Output.concat(names.gateway, ":", gateway_ip)],
            "dns": "none",
            # An internal network still gives every interface an IPv6 link-local address,
            # and the host's bridge has one too: a path to host services that bypasses
            # the proxy. The agent gets no IPv6 at all.
            "sysctls": {"net.ipv6.conf.all.disable_ipv6": "1",
                        "net.ipv6.conf.default.disable_ipv6": "1"},
            "user": "paude", "labels": labels(session.name, "agent", owner),
            "limits": sizing.agent_limits(session.resources).props(),
            # Not a podman setting: the session's reviewed policy waivers.
            "waivers": dict(session.waivers),
            # The entrypoint starts `sleep` once the agent's tmux session is up (after the
            # proxy and the gateway answered it).
            "ready": {"child": "sleep"},
            **hardening,
        # Not after the proxy: both start together, and the agent's entrypoint waits for
        # the proxy's port before it starts the agent (a new session is up ~1 s sooner).
        }, pulumi.ResourceOptions(depends_on=[internal]))

        pulumi.export("session", session.name)
        pulumi.export("backend", "podman")
        pulumi.export("owner", owner)
        pulumi.export("agent_container", agent.name)
        pulumi.export("proxy_container", proxy.name)
        pulumi.export("gateway_container", gw.name)
        pulumi.export("gateway_routes", list(allow.routes))
        pulumi.export("workspace_volume", workspace.name)
        pulumi.export("networks", [internal.name, egress.name])
        pulumi.export("agent_image", agent_image.tag)
        pulumi.export("proxy_image", proxy_image.tag)
        pulumi.export("agent_image_id", agent_image.image_id)
        pulumi.export("allowed_domains", allow.describe())
        pulumi.export("egress_unrestricted", allow.unrestricted)
        pulumi.export("git_remote_name", naming.git_remote(session.name))
        pulumi.export("git_remote_url", naming.git_remote_url(session.name))

    return program
