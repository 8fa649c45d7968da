"""The OpenShift / Kubernetes stack under Pulumi mocks: every resource and security field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from paude.credentials import AgentIdentity, StagedFile
from paude.models import PaudeFile, Session, resolve
from paude.stacks.openshift import objects
from paude.stacks.openshift.program import RENDER_PLACEHOLDER_IP, make_program
from tests.unit.pulumi_mocks import RecordingMocks, Run, run_pulumi

CLUSTER_IP = "172.30.12.34"
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's marker of a secret value
K8S = {"ConfigMap": "kubernetes:core/v1:ConfigMap", "Service": "kubernetes:core/v1:Service",
       "PVC": "kubernetes:core/v1:PersistentVolumeClaim", "Secret": "kubernetes:core/v1:Secret",
       "Deployment": "kubernetes:apps/v1:Deployment",
       "StatefulSet": "kubernetes:apps/v1:StatefulSet",
       "NetworkPolicy": "kubernetes:networking.k8s.io/v1:NetworkPolicy",
       "Namespace": "kubernetes:core/v1:Namespace"}

VARIANTS: dict[str, dict[str, Any]] = {
    "minimal": {},
    "namespaced": {"openshift": {"namespace": "team-a", "context": "prod",
                                 "pvc_size": "50Gi", "storage_class": "fast-ssd"},
                   "yolo": True, "allowed_domains": ["default", "github"]},
    "registry": {"openshift": {"namespace": "dev", "image_registry": "registry.example.com/ai"},
                 "agent": {"args": ["--model", "opus"]}},
}


def session_of(spec: dict[str, Any]) -> Session:
    return resolve(PaudeFile.model_validate({"sessions": {"demo": {"backend": "openshift",
                                                                   **spec}}}), "demo")


def identity(tmp_path: Path) -> AgentIdentity:
    adc = StagedFile(tmp_path / "adc.json", tmp_path / "stage" / "adc.json",
                     "/home/paude/.config/gcloud/application_default_credentials.json",
                     '{"refresh_token": "r"}')
    return AgentIdentity((adc,), (), {"GOOGLE_CLOUD_PROJECT": "p"}, {"ANTHROPIC_API_KEY": "sk"})


def run(spec: dict[str, Any], ident: AgentIdentity | None = None) -> Run:
    key = repr((spec, ident))
    if key not in _RUNS:  # a program run takes a second or two: share them across tests
        _RUNS[key] = run_pulumi(make_program(session_of(spec), "/repo", ident),
                                RecordingMocks(cluster_ip=CLUSTER_IP))
    return _RUNS[key]


_RUNS: dict[str, Run] = {}


def of_type(result: Run, kind: str) -> dict[str, dict[str, Any]]:
    return {n: result.inputs(n) for n, a in result.resources.items() if a.typ == K8S[kind]}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_resource_is_declared(variant: str) -> None:
    result = run(VARIANTS[variant])
    kinds = sorted(a.typ for a in result.resources.values())
    assert kinds.count(K8S["NetworkPolicy"]) == 6
    for kind in ("ConfigMap", "PVC", "StatefulSet"):
        assert kinds.count(K8S[kind]) == 1, kind
    # The proxy's and the model gateway's.
    assert kinds.count(K8S["Service"]) == kinds.count(K8S["Deployment"]) == 2
    assert result.exports["backend"] == "openshift"
    assert result.exports["git_remote_url"] == "paude::demo"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_pod_is_locked_down(variant: str) -> None:
    result = run(VARIANTS[variant])
    pods = [r["spec"]["template"]["spec"] for kind in ("Deployment", "StatefulSet")
            for r in of_type(result, kind).values()]
    assert len(pods) == 3
    for pod in pods:
        assert pod["automountServiceAccountToken"] is False
        assert pod["enableServiceLinks"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["runAsNonRoot"] is True
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert sc["privileged"] is False  # stated, so a hand-set true is reclaimed
        assert not any("hostPath" in v for v in pod.get("volumes", []))
        assert "hostNetwork" not in pod and "hostPID" not in pod


def test_agent_has_no_dns_and_reaches_its_proxy_by_address() -> None:
    agent = of_type(run({}), "StatefulSet")["agent"]
    pod = agent["spec"]["template"]["spec"]
    assert pod["dnsPolicy"] == "None" and pod["dnsConfig"] == {"nameservers": ["127.0.0.1"]}
    # The mocks give every Service one address: one entry for both names (the API server
    # keys the list by ip, and refuses two entries with the same one).
    assert pod["hostAliases"] == [{"ip": CLUSTER_IP,
                                   "hostnames": ["paude-demo-proxy", "paude-demo-gateway"]}]
    assert objects.host_aliases([("10.0.0.1", "p"), ("10.0.0.2", "g")]) == [
        {"ip": "10.0.0.1", "hostnames": ["p"]}, {"ip": "10.0.0.2", "hostnames": ["g"]}]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["ANTHROPIC_BASE_URL"] == "http://paude-demo-gateway:8080"
    assert env["ANTHROPIC_AUTH_TOKEN"] == "paude-gateway-placeholder"
    for key in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        assert env[key] == "http://paude-demo-proxy:3128"
    assert "paude-demo-proxy" in env["NO_PROXY"] and "localhost" in env["NO_PROXY"]
    assert agent["spec"]["replicas"] == 1


def test_network_policies_isolate_the_session() -> None:
    policies = {n.removeprefix("policy-"): p["spec"]
                for n, p in of_type(run({}), "NetworkPolicy").items()}
    deny = policies["default-deny"]
    assert deny["podSelector"] == {"matchLabels": {"paude.io/session": "demo"}}
    assert sorted(deny["policyTypes"]) == ["Egress", "Ingress"] and "egress" not in deny
    agent = policies["agent-egress"]["egress"]
    assert agent == [{"to": [{"podSelector": {"matchLabels": {
        "paude.io/session": "demo", "paude.io/role": "proxy"}}}],
        "ports": [{"protocol": "TCP", "port": 3128}]}, {"to": [{"podSelector": {"matchLabels": {
            "paude.io/session": "demo", "paude.io/role": "gateway"}}}],
        "ports": [{"protocol": "TCP", "port": 8080}]}]
    # The gateway: reached by the agent only, and reaches only the proxy's gateway port.
    assert policies["gateway-ingress"]["ingress"] == [{"from": [{"podSelector": {
        "matchLabels": {"paude.io/session": "demo", "paude.io/role": "agent"}}}],
        "ports": [{"protocol": "TCP", "port": 8080}]}]
    assert policies["gateway-egress"]["egress"] == [{"to": [{"podSelector": {"matchLabels": {
        "paude.io/session": "demo", "paude.io/role": "proxy"}}}],
        "ports": [{"protocol": "TCP", "port": 3129}]}]
    ingress = policies["proxy-ingress"]["ingress"]
    assert ingress[0]["from"] == [{"podSelector": {"matchLabels": {
        "paude.io/session": "demo", "paude.io/role": "agent"}}}]
    ports = {(p["protocol"], p["port"]) for p in policies["proxy-egress"]["egress"][0]["ports"]}
    assert ports == {("TCP", 80), ("TCP", 443), ("UDP", 53), ("TCP", 53)}


def test_pvc_size_class_and_retention() -> None:
    result = run(VARIANTS["namespaced"])
    pvc = of_type(result, "PVC")["workspace"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert pvc["spec"]["storageClassName"] == "fast-ssd"
    assert pvc["metadata"]["namespace"] == "team-a"
    assert result.requests["workspace"].retainOnDelete is True
    assert result.requests["workspace"].protect is True
    assert result.requests["agent"].ignoreChanges == ["spec.replicas"]


def test_credentials_are_a_secret_mounted_read_only(tmp_path: Path) -> None:
    result = run({}, identity(tmp_path))
    secret = of_type(result, "Secret")["credentials"]["stringData"]
    # A Pulumi secret (encrypted in state), carried under the secret signature.
    assert SECRET_SIG in secret
    assert set(secret["value"]) == {"file-0", "ANTHROPIC_API_KEY"}
    pod = of_type(result, "StatefulSet")["agent"]["spec"]["template"]["spec"]
    mounts = pod["containers"][0]["volumeMounts"]
    cred = [m for m in mounts if m["name"] == "credentials"]
    adc = "/home/paude/.config/gcloud/application_default_credentials.json"
    assert cred == [{"name": "credentials", "readOnly": True, "subPath": "file-0",
                     "mountPath": adc}]
    env = pod["containers"][0]["env"]
    key = next(e for e in env if e["name"] == "ANTHROPIC_API_KEY")
    assert key == {"name": "ANTHROPIC_API_KEY", "valueFrom": {"secretKeyRef": {
        "name": "paude-demo-credentials", "key": "ANTHROPIC_API_KEY"}}}
    assert "sk" not in str([e.get("value") for e in env])


def test_allowlist_lives_in_the_configmap_and_restarts_only_the_proxy() -> None:
    narrow = run({"allowed_domains": ["pypi"]})
    wide = run({"allowed_domains": ["pypi", "github"]})
    conf = of_type(wide, "ConfigMap")["proxy-config"]["data"]["squid.conf"]
    assert "dstdomain -n github.com" in conf
    def template(r: Run, kind: str, name: str) -> Any:
        return of_type(r, kind)[name]["spec"]["template"]
    assert template(narrow, "StatefulSet", "agent") == template(wide, "StatefulSet", "agent")
    assert template(narrow, "Deployment", "gateway") == template(wide, "Deployment", "gateway")
    assert (template(narrow, "Deployment", "proxy")["metadata"]["annotations"]
            != template(wide, "Deployment", "proxy")["metadata"]["annotations"])


def test_registry_prefixes_the_images() -> None:
    result = run(VARIANTS["registry"])
    image = of_type(result, "StatefulSet")["agent"]["spec"]["template"]["spec"][
        "containers"][0]["image"]
    assert image.startswith("registry.example.com/ai/paude-agent:")


def test_render_mode_uses_a_placeholder_for_the_proxy_address(tmp_path: Path) -> None:
    program = make_program(session_of({}), "/repo", render_dir=str(tmp_path))
    result = run_pulumi(program, RecordingMocks(cluster_ip=CLUSTER_IP))
    pod = of_type(result, "StatefulSet")["agent"]["spec"]["template"]["spec"]
    assert pod["hostAliases"][0]["ip"] == RENDER_PLACEHOLDER_IP


def test_render_mode_never_writes_credentials(tmp_path: Path) -> None:
    from paude.stacks.openshift.program import REDACTED

    program = make_program(session_of({}), "/repo", identity(tmp_path),
                           render_dir=str(tmp_path / "out"))
    result = run_pulumi(program, RecordingMocks(cluster_ip=CLUSTER_IP))
    data = of_type(result, "Secret")["credentials"]["stringData"]
    values = data["value"] if SECRET_SIG in data else data
    assert values == {"file-0": REDACTED, "ANTHROPIC_API_KEY": REDACTED}


# ---------------------------------------------------------------- images


def _pod_images(result: Run) -> dict[str, str]:
    return {kind: next(iter(of_type(result, kind).values()))["spec"]["template"]["spec"][
        "containers"][0]["image"] for kind in ("StatefulSet", "Deployment")}


def test_registry_images_are_built_locally_and_pushed_before_the_pods() -> None:
    result = run(VARIANTS["registry"])
    pushes = {n: a for n, a in result.resources.items() if a.typ.endswith("cluster:PushedImage")}
    assert sorted(pushes) == ["agent-image", "proxy-image"]
    images = _pod_images(result)
    agent, proxy = (dict(pushes[n].inputs) for n in ("agent-image", "proxy-image"))
    # The pods pull exactly what was pushed: the same content-addressed tag.
    assert agent["remote"] == images["StatefulSet"]
    assert proxy["remote"] == images["Deployment"]
    assert agent["remote"].rsplit(":", 1)[1] == agent["tag"].rsplit(":", 1)[1]
    assert agent["tls_verify"] is True
    assert "FROM docker.io/library/debian:bookworm-slim" in agent["files"]["Containerfile"]
    assert agent["base_images"] == ["docker.io/library/debian:bookworm-slim"]
    for workload in ("agent", "proxy"):
        deps = set(result.requests[workload].dependencies)
        assert any(d.endswith("::agent-image") for d in deps) and \
            any(d.endswith("::proxy-image") for d in deps), (workload, deps)
    assert result.requests["agent-image"].retainOnDelete is True
    # No in-cluster build objects when a registry is configured.
    assert not any("BuildConfig" in str(a.inputs.get("kind")) for a in result.resources.values())


def test_openshift_builds_in_the_cluster_without_a_registry() -> None:
    result = run(VARIANTS["namespaced"])
    kinds = {n: dict(a.inputs).get("kind") for n, a in result.resources.items()}
    assert kinds["agent-imagestream"] == "ImageStream"
    assert kinds["agent-buildconfig"] == "BuildConfig"
    bc = result.inputs("agent-buildconfig")
    assert bc["apiVersion"] == "build.openshift.io/v1"
    assert bc["spec"]["source"] == {"type": "Binary", "binary": {}}
    assert bc["spec"]["strategy"]["type"] == "Docker"
    target = bc["spec"]["output"]["to"]
    assert target["kind"] == "ImageStreamTag" and target["name"].startswith("paude-demo-agent:")
    images = _pod_images(result)
    tag = target["name"].split(":", 1)[1]
    assert images["StatefulSet"] == (
        f"image-registry.openshift-image-registry.svc:5000/team-a/paude-demo-agent:{tag}")
    build = result.inputs("agent-build")
    assert build["build_config"] == "paude-demo-agent" and build["tag"] == tag
    assert build["oc"] == ["oc", "--context", "prod", "--namespace", "team-a"]
    assert "Containerfile" in build["files"]
    assert any(d.endswith("::agent-buildconfig") for d in result.requests["agent-build"]
               .dependencies)
    assert any(d.endswith("::agent-build") for d in result.requests["agent"].dependencies)


def test_in_cluster_builds_refuse_a_repository_dockerfile() -> None:
    from paude.errors import ConfigError

    spec = {"image": {"dockerfile": "Dockerfile"}}
    with pytest.raises(ConfigError) as err:
        run_pulumi(make_program(session_of(spec), "/repo"), RecordingMocks())
    assert "openshift.image_registry" in (err.value.hint or "")


def test_pull_secret_skip_await_and_waivers() -> None:
    reason = "research sandbox, approved in SEC-42"
    result = run({"openshift": {"image_registry": "r.example/x", "image_pull_secret": "pull",
                                "wait_for_ready": False, "registry_tls_verify": False},
                  "yolo": True, "allowed_domains": ["all"],
                  "waivers": {"yolo-unrestricted-egress": reason}})
    for kind in ("StatefulSet", "Deployment"):
        obj = next(iter(of_type(result, kind).values()))
        assert obj["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "pull"}]
        # Not awaited, so a replacement must not find the old one still terminating.
        annotations = obj["metadata"]["annotations"]
        assert annotations["pulumi.com/skipAwait"] == "true"
        assert annotations["pulumi.com/deletionPropagationPolicy"] == "background"
    for kind in ("ConfigMap", "Service"):
        obj = next(iter(of_type(result, kind).values()))
        assert obj["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true", kind
    agent = of_type(result, "StatefulSet")["agent"]
    assert agent["metadata"]["annotations"]["paude.io/waiver-yolo-unrestricted-egress"] == reason
    assert result.inputs("agent-image")["tls_verify"] is False
    waits = run(VARIANTS["registry"])
    # Waiting is the default; taking back fields changed by hand always applies.
    assert of_type(waits, "StatefulSet")["agent"]["metadata"]["annotations"] == {
        "pulumi.com/patchForce": "true"}


def test_namespace_is_created_protected_and_first_when_asked() -> None:
    result = run({"openshift": {"namespace": "made", "create_namespace": True,
                                "image_registry": "r.example/x"}})
    ns = of_type(result, "Namespace")["namespace"]
    assert ns["metadata"]["name"] == "made"
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert result.requests["namespace"].protect is True
    assert result.requests["namespace"].retainOnDelete is True
    for name, args in result.resources.items():
        if args.typ.startswith("kubernetes:") and name != "namespace" \
                and "providers" not in args.typ:
            deps = result.requests[name].dependencies
            assert any(d.endswith("::namespace") for d in deps), name
    assert "Namespace" not in str([a.typ for a in run(VARIANTS["minimal"]).resources.values()])


def test_the_model_credential_is_the_gateway_s_secret_only(tmp_path: Path) -> None:
    from paude.gateway import GatewayCredentials

    creds = GatewayCredentials("sk-ant-cluster-real", "api_key", "ANTHROPIC_API_KEY")
    result = run({}, AgentIdentity((), (), {}, {}, creds))
    secrets = of_type(result, "Secret") if "Secret" in K8S else {
        n: result.inputs(n) for n, a in result.resources.items()
        if a.typ == "kubernetes:core/v1:Secret"}
    # The model credential is the gateway's; the inspection CA's key is the proxy's.
    assert set(secrets) == {"gateway-credentials", "proxy-ca"}
    assert "sk-ant-cluster-real" not in repr(secrets["proxy-ca"])
    proxy = of_type(result, "Deployment")["proxy"]["spec"]["template"]["spec"]
    assert {"name": "PAUDE_CA_KEY", "valueFrom": {"secretKeyRef": {
        "name": "paude-demo-proxy-ca", "key": "PAUDE_CA_KEY"}}} in proxy["containers"][0]["env"]
    agent = of_type(result, "StatefulSet")["agent"]["spec"]["template"]["spec"]
    assert "PAUDE_CA_KEY" not in repr(agent) and "PAUDE_SESSION_CA" in repr(agent)
    gateway = of_type(result, "Deployment")["gateway"]["spec"]["template"]["spec"]
    env = gateway["containers"][0]["env"]
    assert {"name": "PAUDE_GATEWAY_ANTHROPIC_CREDENTIAL", "valueFrom": {"secretKeyRef": {
        "name": "paude-demo-gateway-credentials",
        "key": "PAUDE_GATEWAY_ANTHROPIC_CREDENTIAL"}}} in env
    assert gateway["containers"][0]["args"] == ["gateway"]
    agent = of_type(result, "StatefulSet")["agent"]
    assert "sk-ant-cluster-real" not in repr(agent)
    config = of_type(result, "ConfigMap")["proxy-config"]["data"]["squid.conf"]
    assert "http_port 3129 name=gateway" in config
    assert "http_access allow paude_gateway CONNECT paude_model" in config
