"""What must hold for every accepted definition: its rendered files have exactly the shape
of the templates (no value adds a line, a directive or an instruction), and both stack
programs run under mocks and declare well-formed objects."""

from __future__ import annotations

import base64
import json
import re
import shlex
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from paude import domains
from paude import gateway as model_gateway
from paude.egress import Rule
from paude.errors import PaudeError
from paude.fields import YOLO_FLAG
from paude.models import Session
from paude.render import render
from paude.stacks.openshift.objects import GATEWAY_PROXY_PORT
from paude.stacks.openshift.program import make_program as cluster_program
from paude.stacks.podman.images import (
    AGENT_BASE_PACKAGES,
    CLAUDE_CODE_VERSION,
    VENV_PACKAGES,
    agent_build,
    proxy_build,
)
from paude.stacks.podman.program import make_program, squid_conf
from tests.unit.pulumi_mocks import RecordingMocks, run_pulumi
from tests.unit.test_k8s_manifests import MODELS, OPENSHIFT_FIELDS, _check_openshift, manifests

_RULE_HOST = re.compile(r"acl paude_[ad][0-9]+_host dstdomain -n ")
_RULE_PATH = re.compile(r"acl paude_[ad][0-9]+_path urlpath_regex -i ")
_PATTERN = re.compile(r"[A-Za-z0-9\-._~!$&()*+,;=:@/%?^\[\]{}|\\]+")
_HOST = re.compile(r"\.?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+")
_ENV = re.compile(r'ENV ([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\$]|\\[\\"$])*)"')
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.\-]+(=[A-Za-z0-9.+~:\-]+)?")
PODMAN_RESOURCES = {"agent-image", "proxy-image", "internal-network", "egress-network",
                    "workspace", "proxy", "agent", "gateway", "session-ca"}
K8S_KINDS = {"ConfigMap", "Deployment", "Service", "NetworkPolicy", "PersistentVolumeClaim",
             "StatefulSet"}


def _pairs(real: str, model: str) -> list[tuple[str, str]]:
    real_lines, model_lines = real.split("\n"), model.split("\n")
    assert len(real_lines) == len(model_lines), (
        "a value changed the number of lines:\n" + real)
    for line in real_lines:
        # podman's Containerfile parser and squid's config reader split lines at \n (and
        # drop a \r before it); other characters str.splitlines() breaks at are text to them.
        assert "\r" not in line and "\x00" not in line, f"a line break inside {line!r}"
    return list(zip(real_lines, model_lines, strict=True))


def check_squid(conf: str, session: str, allowed: list[Any], denied: list[Any] | None = None,
                gateway_port: int | None = None) -> None:
    """squid.conf is the template's shape with only host names, methods, path patterns and
    the group regexes filled in: no value adds a directive, an option or a comment. The
    gateway's hosts are paude's own (model_gateway.ROUTE_HOSTS, GITHUB_HOSTS), chosen by
    group words only."""
    allow = domains.expand(allowed, denied or [])

    def views(rules: tuple[Rule, ...], kind: str) -> list[dict[str, object]]:
        return [{"index": i, "host": f"{kind}{i}.example", "methods": r.methods,
                 "regexes": tuple(f"R{j}" for j in range(len(r.regexes))),
                 "source": r.source, "inspects": r.inspects} for i, r in enumerate(rules)]

    inspected = domains.squid_names(allow.inspected)
    hosts = [h for r in allow.routes for h in model_gateway.ROUTE_HOSTS[r]]
    hosts += model_gateway.GITHUB_HOSTS if model_gateway.github_route(allow) else ()
    model = render("squid.conf.j2", session="SESSION", unrestricted=allow.unrestricted,
                   domains=[f"d{i}.example" for i in range(len(allow.domains))],
                   regexes=list(allow.regexes),
                   inspected=[f"i{i}.example" for i in range(len(inspected))],
                   rules=views(allow.rules, "a"), denies=views(allow.denies, "d"),
                   gateway=True, gateway_port=gateway_port,
                   gateway_domains=hosts,
                   gateway_regexes=[p for r in allow.routes
                                    for p in model_gateway.ROUTE_REGEXES.get(r, ())])
    names = []
    for got, want in _pairs(conf, model):
        words, shape = got.split(), want.split()
        if want.startswith("acl paude_allowed dstdomain -n "):
            assert words[:4] == shape[:4] and len(words) == 5, got
            assert _HOST.fullmatch(words[4]), got
            names.append(words[4])
        elif want.startswith("acl paude_inspected dstdomain -n ") or _RULE_HOST.match(want):
            assert words[:4] == shape[:4] and len(words) == len(shape), got
            assert all(_HOST.fullmatch(w) for w in words[4:]), got
        elif _RULE_PATH.match(want):
            # One word per pattern, each only URL and regex characters (egress.validate_path).
            assert words[:4] == shape[:4] and len(words) == len(shape), got
            assert all(_PATTERN.fullmatch(w) for w in words[4:]), got
        elif "SESSION" in want:
            assert got == want.replace("SESSION", session), (got, want)
        else:
            assert got == want, (got, want)
    assert names == list(allow.domains)


def check_agent_containerfile(session: Session, text: str) -> None:
    """The agent's Containerfile is the template's, with the base, packages and env filled
    in, each on its own line and quoted."""
    image = session.image
    install = session.agent.install
    extra = ["curl"] if install == "native" else ["nodejs", "npm"] if install == "npm" else []
    base_packages = [*AGENT_BASE_PACKAGES, *extra]
    packages = [*image.packages, *(p for p in VENV_PACKAGES if p not in image.packages
                                   and session.venv != "none")]
    model = render("Containerfile.agent.j2", base="BASE", base_packages=base_packages,
                   packages=[f"p{i}" for i in range(len(packages))],
                   setup="s" if image.setup else None,
                   env={f"E{i}": "v" for i in range(len(image.env))},
                   install=install, ca_certificates=bool(image.ca_certificates),
                   claude_code_version=session.agent.version or CLAUDE_CODE_VERSION)
    env = []
    for got, want in _pairs(text, model):
        if want == "FROM BASE":
            assert got.startswith("FROM ") and len(got.split()) == 2, got
        elif "apt-get install" in want:
            head = want[:want.index("bash")]
            assert got.startswith(head) and got.endswith(" \\"), got
            words = got[len(head):-2].split(" ")
            assert words == [*base_packages, *packages], got
            assert all(_PACKAGE.fullmatch(w) for w in words), got
        elif want.startswith("ENV E"):
            match = _ENV.fullmatch(got)
            assert match, got
            env.append((match[1], re.sub(r"\\(.)", r"\1", match[2])))
        else:
            assert got == want, (got, want)
    assert env == list(image.env.items())


def check_proxy_containerfile(session: Session, text: str) -> None:
    """The proxy's Containerfile takes nothing from paude.yaml but the machine's base."""
    model = render("Containerfile.proxy.j2", base="BASE",
                   ca_certificates=bool(session.image.ca_certificates))
    for got, want in _pairs(text, model):
        if want == "FROM BASE":
            assert got == f"FROM {session.proxy.base}", got
        else:
            assert got == want, (got, want)


def check_renders(session: Session) -> None:
    """squid.conf and both Containerfiles."""
    check_squid(squid_conf(session), session.name, session.allowed_domains,
                session.denied_requests)
    try:
        agent = agent_build(session)
        proxy = proxy_build(session)
    except PaudeError as exc:  # a CA file that cannot be read: a refusal, named
        assert "image.ca_certificates" in exc.render()
        return
    check_agent_containerfile(session, agent.files["Containerfile"])
    check_proxy_containerfile(session, proxy.files["Containerfile"])
    if session.image.setup:
        assert agent.files["paude-setup.sh"].rstrip("\n") == session.image.setup.rstrip("\n")


def refused(exc: BaseException) -> None:
    """A program may refuse what validation cannot know (a CA file that is gone, a
    Dockerfile for an in-cluster build), but only with a paude error naming the field;
    under mocks it arrives wrapped in the runtime's own exceptions."""
    inner: BaseException | None = exc
    while inner is not None and not isinstance(inner, PaudeError):
        inner = inner.__cause__ or inner.__context__
    if inner is None:
        raise exc
    text = inner.render()
    assert "Traceback" not in text
    assert any(field in text for field in ("ca_certificates", "dockerfile")), text


def _agent_command(session: Session, env: dict[str, Any]) -> None:
    flags = [YOLO_FLAG] if session.yolo else []
    line = env.get("PAUDE_AGENT_ONCE_CMD", env["PAUDE_AGENT_CMD"])
    assert shlex.split(line) == [*session.agent.command, *flags, *session.agent.args]


def run_podman_program(session: Session, root: Path) -> None:
    """The podman program declares its seven objects (eight with a Dockerfile), all
    labelled with the session, the proxy configured with the checked squid.conf and the
    agent's command line splitting back into its arguments."""
    try:
        program = make_program(session, str(root))
    except PaudeError as exc:  # image.dockerfile missing or unusable, or a feature that is
        # not a folder of the repository: refused before running
        assert "image.dockerfile" in exc.render() or "image.context" in exc.render() \
            or "Dockerfile" in exc.render() or "features." in exc.render(), exc.render()
        return
    try:
        run = run_pulumi(program, RecordingMocks())
    except Exception as exc:
        refused(exc)
        return
    expected = PODMAN_RESOURCES | ({"base-image"} if session.image.dockerfile else set())
    assert set(run.resources) == expected
    for name in expected - {"agent-image", "proxy-image", "base-image", "session-ca"}:
        inputs = run.inputs(name)
        assert inputs["labels"]["paude.session"] == session.name
        assert inputs["name"].startswith(f"paude-{session.name}-")
    proxy = run.inputs("proxy")
    conf = base64.b64decode(proxy["env"]["PAUDE_SQUID_CONF_B64"]).decode()
    check_squid(conf, session.name, session.allowed_domains, session.denied_requests)
    _agent_command(session, run.inputs("agent")["env"])
    assert run.exports["session"] == session.name


def run_cluster_program(session: Session, root: Path) -> None:
    """The OpenShift / Kubernetes program's objects are valid YAML manifests of the expected
    kinds that the Kubernetes client reads back unchanged."""
    session = session.model_copy(update={"backend": "openshift"})
    try:
        run = run_pulumi(cluster_program(session, str(root)), RecordingMocks())
    except Exception as exc:
        refused(exc)
        return
    docs = manifests(run)
    text = yaml.safe_dump_all(docs, sort_keys=True)
    assert list(yaml.safe_load_all(text)) == docs
    kinds = {d["kind"] for d in docs}
    assert K8S_KINDS <= kinds <= K8S_KINDS | {"Namespace", "Secret", *OPENSHIFT_FIELDS}, kinds
    namespace = session.openshift.namespace or "default"
    api = client.ApiClient()
    for doc in docs:
        meta = doc["metadata"]
        if doc["kind"] != "Namespace":
            assert meta["namespace"] == namespace
            assert meta["name"].startswith(f"paude-{session.name}"), meta["name"]
        if doc["kind"] in OPENSHIFT_FIELDS:
            _check_openshift(doc)
            continue
        if doc["kind"] == "Namespace":
            continue
        body = json.loads(json.dumps(doc).replace('"<secret>"', '"x"'))
        obj = api.deserialize(json.dumps(body), MODELS[doc["kind"]], "application/json")
        assert api.sanitize_for_serialization(obj) == body, doc["kind"]
        if doc["kind"] == "ConfigMap":
            check_squid(doc["data"]["squid.conf"], session.name, session.allowed_domains,
                        session.denied_requests, GATEWAY_PROXY_PORT)
