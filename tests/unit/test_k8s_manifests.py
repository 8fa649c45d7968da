"""The OpenShift stack's manifests: golden files, schema validation, and isolation."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from kubernetes import client

from paude.credentials import AgentIdentity
from paude.gateway import GatewayCredentials
from tests.unit.k8s_policy import Endpoint, allowed
from tests.unit.test_openshift_program import SECRET_SIG, VARIANTS, Run, run

MODELS = {"ConfigMap": "V1ConfigMap", "Service": "V1Service", "Deployment": "V1Deployment",
          "StatefulSet": "V1StatefulSet", "PersistentVolumeClaim": "V1PersistentVolumeClaim",
          "Secret": "V1Secret", "NetworkPolicy": "V1NetworkPolicy"}


def _normal(value: Any) -> Any:
    # Mocks carry numbers as floats and secrets wrapped in Pulumi's secret envelope.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return {k: "<secret>" for k in value["value"]}
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (squid.conf) as literal blocks, readable in review."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def manifests(result: Run) -> list[dict[str, Any]]:
    """Every Kubernetes object the program declares, as it would be rendered."""
    docs = [_normal(result.inputs(name)) for name, args in result.resources.items()
            if args.typ.startswith("kubernetes:") and "providers" not in args.typ]
    return sorted(docs, key=lambda d: (d["kind"], d["metadata"]["name"]))


# A session with a model credential, as every session running Claude Code has: the
# gateway's Secret is part of the manifests (its values never are).
WITH_KEY = AgentIdentity((), (), {}, {}, GatewayCredentials("sk-ant-golden", "api_key",
                                                           "ANTHROPIC_API_KEY"))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_manifests_are_golden(variant: str, golden: Any) -> None:
    docs = manifests(run(VARIANTS[variant], WITH_KEY))
    text = yaml.dump_all(docs, Dumper=_BlockDumper, sort_keys=True, default_flow_style=False)
    # Image tags hash the templates; keep goldens about the manifests, not the tags.
    text = "\n".join(line.split(":", 1)[0] + ": <paude image>"
                     if line.strip().startswith("image: ") else line
                     for line in text.splitlines()) + "\n"
    text = re.sub(r":[0-9a-f]{16}\b", ":<tag>", text)
    golden.check(f"k8s/{variant}.yaml", text)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_manifests_are_valid_kubernetes_objects(variant: str) -> None:
    api = client.ApiClient()
    for doc in manifests(run(VARIANTS[variant])):
        if doc["kind"] in OPENSHIFT_FIELDS:
            _check_openshift(doc)
            continue
        model = MODELS[doc["kind"]]
        body = json.loads(json.dumps(doc).replace('"<secret>"', '"x"'))
        obj = api.deserialize(json.dumps(body), model, "application/json")
        # A field the schema does not know is dropped by the client: compare round trips.
        assert api.sanitize_for_serialization(obj) == body, (doc["kind"],
                                                             doc["metadata"]["name"])


# OpenShift's build kinds are not in the kubernetes client: the fields of build.openshift.io/v1
# and image.openshift.io/v1 that paude may use, from the OpenShift API reference.
OPENSHIFT_FIELDS = {
    "BuildConfig": ("build.openshift.io/v1", {
        "runPolicy", "source", "strategy", "output", "triggers", "resources", "postCommit",
        "completionDeadlineSeconds", "nodeSelector", "serviceAccount",
        "successfulBuildsHistoryLimit", "failedBuildsHistoryLimit"}),
    "ImageStream": ("image.openshift.io/v1", {"lookupPolicy", "tags", "dockerImageRepository"}),
}


def _check_openshift(doc: dict[str, Any]) -> None:
    api_version, fields = OPENSHIFT_FIELDS[doc["kind"]]
    assert doc["apiVersion"] == api_version
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(doc["spec"]) <= fields, set(doc["spec"]) - fields
    assert set(doc["metadata"]) <= {"name", "namespace", "labels", "annotations"}


def test_openshift_kind_check_catches_unknown_fields() -> None:
    good = {"apiVersion": "image.openshift.io/v1", "kind": "ImageStream",
            "metadata": {"name": "x"}, "spec": {"lookupPolicy": {"local": False}}}
    _check_openshift(good)
    with pytest.raises(AssertionError):
        _check_openshift({**good, "spec": {"lookupPolcy": {}}})


def test_network_policies_isolate_as_intended() -> None:
    docs = manifests(run({}))
    policies = [d["spec"] for d in docs if d["kind"] == "NetworkPolicy"]
    agent = Endpoint("agent", {"paude.io/session": "demo", "paude.io/role": "agent"})
    proxy = Endpoint("proxy", {"paude.io/session": "demo", "paude.io/role": "proxy"})
    stranger = Endpoint("another pod", {"app": "web"})
    other_proxy = Endpoint("other session's proxy",
                           {"paude.io/session": "other", "paude.io/role": "proxy"})
    dns = Endpoint("cluster DNS", {"k8s-app": "kube-dns"})
    outside = Endpoint("an address outside", None)

    assert allowed(policies, agent, proxy, "TCP", 3128)
    assert not allowed(policies, agent, proxy, "TCP", 80)
    assert not allowed(policies, agent, dns, "UDP", 53)
    assert not allowed(policies, agent, outside, "TCP", 443)
    assert not allowed(policies, agent, other_proxy, "TCP", 3128)
    assert not allowed(policies, stranger, proxy, "TCP", 3128)
    assert not allowed(policies, stranger, agent, "TCP", 22)
    assert allowed(policies, proxy, outside, "TCP", 443)
    assert allowed(policies, proxy, outside, "TCP", 80)
    assert allowed(policies, proxy, dns, "UDP", 53)
    assert not allowed(policies, proxy, outside, "TCP", 22)
    assert not allowed(policies, proxy, agent, "TCP", 22)


def test_the_evaluator_itself_can_say_yes_and_no() -> None:
    # Controls for the evaluator: no policies allow everything; a deny-all denies.
    a, b = Endpoint("a", {"x": "1"}), Endpoint("b", {"x": "2"})
    assert allowed([], a, b, "TCP", 1)
    deny = [{"podSelector": {"matchLabels": {"x": "1"}}, "policyTypes": ["Egress"]}]
    assert not allowed(deny, a, b, "TCP", 1)


def test_the_schema_check_catches_unknown_and_mistyped_fields() -> None:
    api = client.ApiClient()
    good = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
            "data": {"a": "b"}}
    for bad in ({**good, "dta": {"a": "b"}}, {**good, "metadata": {"nmae": "x"}}):
        obj = api.deserialize(json.dumps(bad), "V1ConfigMap", "application/json")
        assert api.sanitize_for_serialization(obj) != bad
    obj = api.deserialize(json.dumps(good), "V1ConfigMap", "application/json")
    assert api.sanitize_for_serialization(obj) == good
