"""The Podman stack program under Pulumi mocks: what a session declares, resource by resource."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from paude.credentials import AgentIdentity
from paude.domains import expand
from paude.gateway import PLACEHOLDER, GatewayCredentials
from paude.models import PaudeFile, Session, resolve
from paude.stacks.podman.images import agent_build, dockerfile_build, proxy_build
from paude.stacks.podman.program import CA_BUNDLE, make_program, squid_conf
from tests.unit.pulumi_mocks import TEST_CA_CERT, RecordingMocks, Run, run_pulumi

SUBNET = "10.89.3.0/24"
PROXY_IP = "10.89.3.254"
GATEWAY_IP = "10.89.3.253"
OWNER = "/repo"
PROXY_URL = "http://paude-demo-proxy:3128"
DYNAMIC = "pulumi-python:dynamic/podman:"


def session_of(spec: dict[str, Any]) -> Session:
    return resolve(PaudeFile.model_validate({"sessions": {"demo": spec}}), "demo")


def run_program(session: Session, owner: str = OWNER) -> Run:
    """Run make_program(session, owner) under mocks and resolve its exports."""
    return run_pulumi(make_program(session, owner), RecordingMocks(SUBNET))


@pytest.fixture(scope="module")
def default_run() -> Iterator[Run]:
    yield run_program(session_of({}))


# ---------------------------------------------------------------- the resources


def test_nine_dynamic_resources(default_run: Run) -> None:
    assert {name: args.typ for name, args in default_run.resources.items()} == {
        "session-ca": "pulumi-python:dynamic/paude:SessionCA",
        "agent-image": DYNAMIC + "Image",
        "proxy-image": DYNAMIC + "Image",
        "internal-network": DYNAMIC + "Network",
        "egress-network": DYNAMIC + "Network",
        "workspace": DYNAMIC + "Volume",
        "proxy": DYNAMIC + "Container",
        "agent": DYNAMIC + "Container",
        "gateway": DYNAMIC + "Container",
    }
    for args in default_run.resources.values():
        assert args.custom
        # The provider travels with the resource (stored in state by reference).
        assert isinstance(args.inputs.get("__provider"), str)


def test_the_ca_key_goes_to_the_proxy_alone_as_a_secret(default_run: Run) -> None:
    proxy, agent = default_run.inputs("proxy"), default_run.inputs("agent")
    assert proxy["env"]["PAUDE_CA_CERT"] == agent["env"]["PAUDE_SESSION_CA"] == TEST_CA_CERT
    # A secret in state: the engine sees it wrapped (sig, value).
    assert proxy["secret_env"]["value"] == {"PAUDE_CA_KEY": "<test CA key>"}
    assert "<test CA key>" not in repr(agent) + repr(default_run.inputs("gateway"))
    assert agent["env"]["GIT_SSL_CAINFO"] == agent["env"]["SSL_CERT_FILE"] == CA_BUNDLE


def test_every_object_carries_discovery_labels(default_run: Run) -> None:
    for name in ("internal-network", "egress-network", "workspace", "proxy", "agent",
                 "gateway"):
        assert default_run.inputs(name)["labels"] == {
            "paude.managed": "true", "paude.session": "demo", "paude.role": name,
            "paude.repository": OWNER}


def test_internal_network_has_no_route_out_and_no_dns(default_run: Run) -> None:
    net = default_run.inputs("internal-network")
    assert (net["name"], net["internal"], net["dns"]) == ("paude-demo-internal", True, False)


def test_egress_network_has_dns(default_run: Run) -> None:
    net = default_run.inputs("egress-network")
    assert (net["name"], net["internal"], net["dns"]) == ("paude-demo-egress", False, True)


def test_agent_container_is_locked_down(default_run: Run) -> None:
    agent = default_run.inputs("agent")
    assert agent["name"] == agent["hostname"] == "paude-demo-agent"
    assert agent["networks"] == ["paude-demo-internal"]
    assert agent["user"] == "paude"
    assert agent["cap_drop"] == ["ALL"]
    assert agent["security_opt"] == ["no-new-privileges"]
    assert agent["dns"] == "none"
    # No IPv6: a link-local address would reach the host without the proxy.
    assert agent["sysctls"] == {"net.ipv6.conf.all.disable_ipv6": "1",
                                "net.ipv6.conf.default.disable_ipv6": "1"}
    assert "privileged" not in agent and "cap_add" not in agent


def test_agent_reaches_only_the_proxy_and_the_gateway(default_run: Run) -> None:
    env = default_run.inputs("agent")["env"]
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        assert env[key] == PROXY_URL
    assert env["NO_PROXY"] == env["no_proxy"] == (
        "localhost,127.0.0.1,::1,paude-demo-proxy,paude-demo-gateway")
    assert env["PAUDE_SESSION"] == "demo"
    # Without DNS the agent finds its proxy and gateway through hosts entries for their
    # fixed addresses.
    assert default_run.inputs("agent")["add_hosts"] == [
        f"paude-demo-proxy:{PROXY_IP}", f"paude-demo-gateway:{GATEWAY_IP}"]
    # Claude Code's gateway variables and a placeholder: no credential in the agent.
    assert env["ANTHROPIC_BASE_URL"] == "http://paude-demo-gateway:8080"
    assert env["ANTHROPIC_AUTH_TOKEN"] == PLACEHOLDER
    assert env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"


def test_agent_mounts_only_the_workspace_volume(default_run: Run) -> None:
    volumes = default_run.inputs("agent")["volumes"]
    workspace = default_run.inputs("workspace")["name"]
    assert workspace == "paude-demo-workspace"
    assert volumes == [f"{workspace}:/paude"]
    for mount in volumes:
        source = mount.split(":", 1)[0]
        assert source == workspace, f"host path or foreign volume mounted: {mount}"


def test_agent_starts_alongside_the_proxy_on_its_network(default_run: Run) -> None:
    assert default_run.inputs("agent")["image"] == agent_build(session_of({})).tag
    deps = list(default_run.requests["agent"].dependencies)
    # The entrypoint waits for the proxy's port; the engine need not order them.
    assert not any(d.endswith("::proxy") for d in deps)
    assert any(d.endswith("::internal-network") for d in deps)
    assert any(d.endswith("::agent-image") for d in deps)


def test_proxy_is_on_both_networks_at_its_fixed_address(default_run: Run) -> None:
    proxy = default_run.inputs("proxy")
    # A fixed MAC with the fixed address: a replaced proxy is reachable at once.
    assert proxy["networks"] == [f"paude-demo-internal:ip={PROXY_IP},mac=02:50:0a:59:03:fe",
                                 "paude-demo-egress"]
    assert proxy["image"] == proxy_build(session_of({})).tag
    assert proxy["cap_drop"] == ["ALL"] and proxy["security_opt"] == ["no-new-privileges"]
    assert proxy["restart"] == "unless-stopped"


def test_proxy_carries_the_rendered_allowlist(default_run: Run) -> None:
    session = session_of({})
    proxy = default_run.inputs("proxy")
    conf = base64.b64decode(proxy["env"]["PAUDE_SQUID_CONF_B64"]).decode()
    assert conf == squid_conf(session)
    assert proxy["env"]["PAUDE_GATEWAY_IP"] == GATEWAY_IP
    assert proxy["allowlist"] == [*expand(["default"]).describe(), "model gateway: claude",
                                  "model gateway: vertexai"]


def test_images_are_content_addressed(default_run: Run) -> None:
    session = session_of({})
    for name, spec in (("agent-image", agent_build(session)),
                       ("proxy-image", proxy_build(session))):
        image = default_run.inputs(name)
        assert image["tag"] == spec.tag
        assert image["files"] == spec.files
        assert image["labels"] == {"paude.managed": "true", "paude.build-digest": spec.digest}


def test_images_and_workspace_are_retained_on_delete(default_run: Run) -> None:
    retained = {name for name, request in default_run.requests.items()
                if request.HasField("retainOnDelete") and request.retainOnDelete}
    assert retained == {"agent-image", "proxy-image", "workspace"}


def test_exports(default_run: Run) -> None:
    exports = default_run.exports
    assert exports["session"] == "demo"
    assert exports["backend"] == "podman"
    assert exports["owner"] == OWNER
    assert exports["agent_container"] == "paude-demo-agent"
    assert exports["proxy_container"] == "paude-demo-proxy"
    assert exports["workspace_volume"] == "paude-demo-workspace"
    assert exports["networks"] == ["paude-demo-internal", "paude-demo-egress"]
    assert exports["agent_image_id"] == "sha256:agent-image"
    assert exports["allowed_domains"] == expand(["default"]).describe()
    assert exports["egress_unrestricted"] is False
    assert exports["git_remote_name"] == "paude-demo"
    assert exports["git_remote_url"] == "paude::demo"


# ---------------------------------------------------------------- what a change touches


def test_allowlist_change_reconfigures_only_the_proxy(default_run: Run) -> None:
    widened = run_program(session_of({"allowed_domains": ["default", ".example.com"]}))
    differs = {name for name in default_run.resources
               if widened.inputs(name) != default_run.inputs(name)}
    assert differs == {"proxy"}
    assert widened.exports["allowed_domains"][0] == ".example.com"


def test_package_change_touches_only_the_agent_image_and_agent(default_run: Run) -> None:
    changed = run_program(session_of({"image": {"packages": ["make"]}}))
    differs = {name for name in default_run.resources
               if changed.inputs(name) != default_run.inputs(name)}
    assert differs == {"agent-image", "agent"}


def test_unrestricted_session_says_so(default_run: Run) -> None:
    unrestricted = run_program(session_of({"allowed_domains": ["all"]}))
    assert unrestricted.exports["egress_unrestricted"] is True
    assert unrestricted.exports["allowed_domains"] == ["* (all domains: unrestricted)"]
    conf = base64.b64decode(unrestricted.inputs("proxy")["env"]["PAUDE_SQUID_CONF_B64"])
    assert b"http_access allow all\n" in conf
    # The agent stays on the internal network behind the proxy even then.
    assert unrestricted.inputs("agent") == default_run.inputs("agent")


# ---------------------------------------------------------------- the user's Dockerfile


def test_dockerfile_session_builds_a_base_image_first(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM docker.io/library/python:3.12\n")
    session = session_of({"image": {"dockerfile": "Dockerfile", "build_args": {"V": "1"}}})
    run = run_program(session, str(tmp_path))
    assert set(run.resources) == {"base-image", "agent-image", "proxy-image", "internal-network",
                                  "egress-network", "workspace", "proxy", "agent", "gateway",
                                  "session-ca"}
    base = run.inputs("base-image")
    spec = dockerfile_build(session, tmp_path)
    assert spec is not None
    assert base["tag"] == spec.tag
    assert base["build_args"] == {"V": "1"}
    assert base["context_dir"] == str(tmp_path.resolve())
    assert base["dockerfile"] == str((tmp_path / "Dockerfile").resolve())
    image = run.inputs("agent-image")
    assert f"FROM {spec.tag}\n" in image["files"]["Containerfile"]
    assert "context_dir" not in image
    assert any(d.endswith("::base-image") for d in run.requests["agent-image"].dependencies)
    # The proxy never builds on the repository's Dockerfile.
    proxy_file = run.inputs("proxy-image")["files"]["Containerfile"]
    assert spec.tag not in proxy_file
    assert not any(d.endswith("::base-image") for d in run.requests["proxy-image"].dependencies)
    retained = {name for name, request in run.requests.items()
                if request.HasField("retainOnDelete") and request.retainOnDelete}
    assert retained == {"base-image", "agent-image", "proxy-image", "workspace"}


def test_headless_prompt_runs_once_then_the_agent_is_interactive() -> None:
    from paude.stacks.podman.program import agent_commands

    headless = session_of({"yolo": True,
                           "agent": {"args": '-p "refactor the auth module"'}})
    assert agent_commands(headless) == {
        "PAUDE_AGENT_ONCE_CMD":
            "claude --dangerously-skip-permissions -p 'refactor the auth module'",
        "PAUDE_AGENT_CMD": "claude --dangerously-skip-permissions"}
    interactive = session_of({"agent": {"args": ["--model", "opus"]}})
    assert agent_commands(interactive) == {"PAUDE_AGENT_CMD": "claude --model opus"}


# ---------------------------------------------------------------- the model gateway

KEY = "sk-ant-mock-real-key-123456"
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's marker of a secret value


def secret(value: Any) -> Any:
    assert isinstance(value, dict) and SECRET_SIG in value, f"not a Pulumi secret: {value}"
    return value["value"]


def identity_with(creds: GatewayCredentials) -> AgentIdentity:
    return AgentIdentity((), (), {}, {}, creds)


def test_gateway_holds_the_credential_as_a_secret_and_the_agent_none() -> None:
    creds = GatewayCredentials(KEY, "api_key", "ANTHROPIC_API_KEY")
    run = run_pulumi(make_program(session_of({}), OWNER, identity_with(creds)),
                     RecordingMocks(SUBNET))
    gateway = run.inputs("gateway")
    assert secret(gateway["secret_env"]) == {"PAUDE_GATEWAY_ANTHROPIC_CREDENTIAL": KEY}
    assert gateway["networks"] == [f"paude-demo-internal:ip={GATEWAY_IP},mac=02:50:0a:59:03:fd"]
    assert gateway["image"] == proxy_build(session_of({})).tag
    assert gateway["command"] == ["gateway"] and gateway["dns"] == "none"
    assert gateway["cap_drop"] == ["ALL"]
    assert gateway["credential_sources"] == ["ANTHROPIC_API_KEY"]
    config = json.loads(gateway["env"]["PAUDE_GATEWAY_CONFIG"])
    assert config["proxy"] == f"http://{PROXY_IP}:3128"
    assert config["anthropic_upstream"] == "https://api.anthropic.com"
    agent = run.inputs("agent")
    assert KEY not in json.dumps(agent) and secret(agent["secret_env"]) == {}
    assert KEY not in json.dumps({k: v for k, v in gateway.items() if k != "secret_env"})


def test_vertex_agent_gets_the_gateway_base_url_and_skips_auth() -> None:
    creds = GatewayCredentials(google='{"type": "authorized_user"}', google_source="/adc.json",
                               vertex=True, vertex_project="proj-1")
    run = run_pulumi(make_program(session_of({}), OWNER, identity_with(creds)),
                     RecordingMocks(SUBNET))
    env = run.inputs("agent")["env"]
    assert env["ANTHROPIC_VERTEX_BASE_URL"] == "http://paude-demo-gateway:8080/vertex/v1"
    assert env["CLAUDE_CODE_SKIP_VERTEX_AUTH"] == env["CLAUDE_CODE_USE_VERTEX"] == "1"
    assert "authorized_user" not in json.dumps(run.inputs("agent"))
    assert set(secret(run.inputs("gateway")["secret_env"])) == {
        "PAUDE_GATEWAY_GOOGLE_CREDENTIALS"}


def test_rotating_the_credential_changes_only_the_gateway() -> None:
    def inputs(key: str) -> dict[str, Any]:
        creds = GatewayCredentials(key, "api_key", "ANTHROPIC_API_KEY")
        run = run_pulumi(make_program(session_of({}), OWNER, identity_with(creds)),
                         RecordingMocks(SUBNET))
        return {name: run.inputs(name) for name in run.resources}

    before, after = inputs(KEY), inputs(KEY + "-rotated")
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"gateway"}
