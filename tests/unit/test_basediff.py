"""Resource steps between two declarations of a session, and the programs under mocks."""

from __future__ import annotations

from typing import Any

import pytest

from paude import basediff
from paude.mockrun import Declared, declare
from paude.models import PaudeFile, resolve
from paude.stacks.podman.program import make_program
from paude.summary import summarize

CONTAINER = "pulumi-python:dynamic/podman:Container"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
SECRET = basediff._SECRET_SIG


def d(type_: str, inputs: dict[str, Any], **kw: Any) -> Declared:
    return Declared("x", type_, inputs, **kw)


def test_a_podman_container_is_replaced_by_its_providers_rule() -> None:
    step = basediff.change("agent", d(CONTAINER, {"env": {"A": "1"}, "waivers": {}}),
                           d(CONTAINER, {"env": {"A": "2"}, "waivers": {}}))
    assert (step.op, step.replace_keys, step.type) == ("replace", ("env",), "podman:Container")
    same = basediff.change("agent", d(CONTAINER, {"env": {}}), d(CONTAINER, {"env": {}}))
    assert same.op == "same"


def test_inputs_a_provider_ignores_are_no_change() -> None:
    volume = "pulumi-python:dynamic/podman:Volume"
    # The volume provider ignores labels to protect data: so does the plan.
    step = basediff.change("workspace", d(volume, {"name": "v", "labels": {"a": "1"}}),
                           d(volume, {"name": "v", "labels": {"a": "2"}}))
    assert step.op == "same"


def test_kubernetes_steps() -> None:
    def pvc(**spec: Any) -> Declared:
        return d(PVC, {"metadata": {"name": "w", "namespace": "n"}, "spec": spec},
                 protect=True, retain_on_delete=True)

    grow = basediff.change("workspace", pvc(resources={"requests": {"storage": "10Gi"}}),
                           pvc(resources={"requests": {"storage": "20Gi"}}))
    assert (grow.op, grow.diff_keys) == ("update", ("spec",))
    shrink = basediff.change("workspace", pvc(resources={"requests": {"storage": "10Gi"}}),
                             pvc(resources={"requests": {"storage": "5Gi"}}))
    assert shrink.op == "replace" and shrink.retained
    klass = basediff.change("workspace", pvc(storageClassName="a"), pvc(storageClassName="b"))
    assert klass.replace_keys == ("spec.storageClassName",)
    moved = basediff.change(
        "proxy-config", d("kubernetes:core/v1:ConfigMap", {"metadata": {"namespace": "a"}}),
        d("kubernetes:core/v1:ConfigMap", {"metadata": {"namespace": "b"}}))
    assert moved.replace_keys == ("metadata.namespace",)


def test_ignored_fields_are_not_changes() -> None:
    sts = "kubernetes:apps/v1:StatefulSet"
    old = d(sts, {"spec": {"replicas": 0, "x": 1}}, ignore_changes=("spec.replicas",))
    new = d(sts, {"spec": {"replicas": 1, "x": 1}}, ignore_changes=("spec.replicas",))
    assert basediff.change("agent", old, new).op == "same"
    # Control: a field that is not ignored is a change.
    new = d(sts, {"spec": {"replicas": 1, "x": 2}}, ignore_changes=("spec.replicas",))
    assert basediff.change("agent", old, new).op == "update"


def test_secrets_are_compared_by_digest_never_shown() -> None:
    one = basediff.plain({"secret_env": {SECRET: "x", "value": {"TOKEN": "hunter2"}}})
    two = basediff.plain({"secret_env": {SECRET: "x", "value": {"TOKEN": "other"}}})
    assert "hunter2" not in repr(one) and one != two
    assert str(one["secret_env"]).startswith("<secret sha256:")


def test_created_deleted_and_moved_to_another_backend() -> None:
    new = basediff.change("agent", None, d(CONTAINER, {}))
    gone = basediff.change("workspace", d(PVC, {}, retain_on_delete=True), None)
    other = basediff.change("workspace", d(PVC, {}), d(CONTAINER, {}))
    assert (new.op, gone.op, gone.retained, other.op) == ("create", "delete", True, "replace")


def session(spec: dict[str, Any]) -> Any:
    return resolve(PaudeFile.model_validate({"sessions": {"demo": spec}}), "demo")


@pytest.mark.parametrize(("before", "after", "kind"), [
    ({}, {"allowed_domains": ["default", "github"]}, "egress-widened"),
    ({"allowed_domains": ["default", "github"]}, {}, "egress-narrowed"),
    ({}, {"yolo": True}, "yolo-toggled"),
    ({}, {"image": {"packages": ["gcc"]}}, "image-rebuilt"),
])
def test_the_live_plans_statements_from_two_declarations(before: dict[str, Any],
                                                         after: dict[str, Any],
                                                         kind: str) -> None:
    old = declare(make_program(session(before), "/repo"))
    new = declare(make_program(session(after), "/repo"))
    changes = basediff.changes(old, new)
    assert kind in {i.kind for i in summarize(changes, new_session=False)}
    # Control: the same declaration on both sides changes nothing.
    assert all(c.op == "same" for c in basediff.changes(old, declare(
        make_program(session(before), "/repo"))))


def test_mocks_declare_without_touching_anything() -> None:
    declared = declare(make_program(session({}), "/repo"))
    assert declared["workspace"].protect and declared["workspace"].retain_on_delete
    assert declared["proxy"].inputs["networks"][0].startswith("paude-demo-internal:ip=")
    assert not any(k.startswith("__") for r in declared.values() for k in r.inputs)
