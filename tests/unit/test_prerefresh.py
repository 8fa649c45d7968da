"""paude's own refresh of a podman session (prerefresh.py), and how a preview uses it."""

from __future__ import annotations

import copy
from concurrent.futures import Future
from typing import Any

import pytest
from pulumi import automation as auto
from pulumi.dynamic import ReadResult, ResourceProvider

from paude import engine
from paude.errors import EngineError
from paude.stacks.podman import prerefresh

SECRET = {prerefresh.SECRET_SIG: "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "v1:aaa"}
# Another encryption of the same value: every encryption draws a new nonce.
SECRET_AGAIN = {prerefresh.SECRET_SIG: "1b47061264138c4ac30d75fd1eb44270", "ciphertext": "v1:bbb"}
CONTAINER = "pulumi-python:dynamic/podman:Container"


class Live(ResourceProvider):
    """Reads back whatever `LIVE` says the object is now (None: as recorded)."""

    LIVE: dict[str, Any] = {}
    INPUTS: dict[str, Any] = {}

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        if id_ == "broken":
            raise RuntimeError("podman: database is locked")
        outs = {**props, **self.LIVE.get(id_, {})}
        inputs = self.INPUTS.get(id_)
        return ReadResult(id_, outs, inputs=None if inputs is None else {**props, **inputs})


@pytest.fixture(autouse=True)
def live(monkeypatch: pytest.MonkeyPatch) -> type[Live]:
    monkeypatch.setattr(prerefresh, "PROVIDERS", {CONTAINER: Live})
    Live.LIVE, Live.INPUTS = {}, {}
    return Live


def resource(ident: str, outputs: dict[str, Any], inputs: dict[str, Any] | None = None,
             kind: str = CONTAINER) -> dict[str, Any]:
    return {"type": kind, "id": ident, "urn": f"urn:pulumi:s::paude::{kind}::{ident}",
            "outputs": {"__provider": "pickled", **outputs},
            "inputs": {"__provider": "pickled", **(inputs if inputs is not None else outputs)}}


def deployment(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resources": [{"type": "pulumi:pulumi:Stack", "urn": "stack"},
                          {"type": "pulumi:providers:pulumi-python", "urn": "p", "id": "x"},
                          {"type": "pulumi-python:dynamic/paude:SessionCA", "id": "ca",
                           "outputs": {"key_pem": SECRET}},
                          *resources]}


def test_objects_as_recorded_are_unchanged() -> None:
    state = deployment(resource("a", {"image": "x", "limits": {"cpus": 2.0}}),
                       resource("b", {"networks": ["n"]}))
    assert prerefresh.judgeable(state)
    assert prerefresh.unchanged(state) is True


@pytest.mark.parametrize("live_change", [
    {"a": {"drift": ["mount added: /:/host"]}},
    {"b": {"networks": ["n", "paude-other-egress"]}},
])
def test_a_changed_object_is_a_change(live: type[Live], live_change: dict[str, Any]) -> None:
    live.LIVE = live_change
    state = deployment(resource("a", {"image": "x"}), resource("b", {"networks": ["n"]}))
    assert prerefresh.unchanged(state) is False


def test_changed_inputs_are_a_change(live: type[Live]) -> None:
    live.INPUTS = {"a": {"image": "y"}}
    assert prerefresh.unchanged(deployment(resource("a", {"image": "x"}))) is False
    live.INPUTS = {"a": {}}  # control: the inputs a read returns, as recorded
    assert prerefresh.unchanged(deployment(resource("a", {"image": "x"}))) is True


def test_encrypted_secret_variables_with_their_names_are_judged() -> None:
    outputs = {"secret_env": SECRET, "secret_env_names": ["PAUDE_CA_KEY"], "image": "x"}
    state = deployment(resource("a", outputs, {**outputs, "secret_env": SECRET_AGAIN}))
    assert prerefresh.judgeable(state)
    assert prerefresh.unchanged(state) is True


@pytest.mark.parametrize("outputs", [
    {"secret_env": SECRET},                                 # a stack from before the names
    {"env": {"TOKEN": SECRET}, "secret_env_names": []},     # encrypted anywhere else
])
def test_what_only_the_engine_can_decrypt_is_left_to_it(outputs: dict[str, Any]) -> None:
    state = deployment(resource("a", outputs))
    assert not prerefresh.judgeable(state)
    assert prerefresh.unchanged(state) is False


@pytest.mark.parametrize("state", [
    {**deployment(resource("a", {})), "pending_operations": [{"type": "creating"}]},
    deployment(resource("a", {}, kind="kubernetes:apps/v1:StatefulSet")),
    deployment({**resource("a", {}), "delete": True}),
    deployment(),  # nothing to read
])
def test_what_this_module_does_not_understand_is_not_judged(state: dict[str, Any]) -> None:
    assert not prerefresh.judgeable(state)
    assert prerefresh.unchanged(state) is False


def test_a_failing_read_is_left_to_the_engine() -> None:
    state = deployment(resource("a", {}), resource("broken", {}))
    assert prerefresh.judgeable(state)
    assert prerefresh.unchanged(state) is False


def test_a_gone_object_is_a_change(monkeypatch: pytest.MonkeyPatch) -> None:
    class Gone(Live):
        def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
            return ReadResult(None, {})

    monkeypatch.setattr(prerefresh, "PROVIDERS", {CONTAINER: Gone})
    assert prerefresh.unchanged(deployment(resource("a", {}))) is False


def test_the_reads_get_a_copy_of_the_state() -> None:
    state = deployment(resource("a", {"image": "x", "labels": {"k": "v"}}))
    before = copy.deepcopy(state)
    prerefresh.unchanged(state)
    assert state == before


def test_start_hands_a_failure_to_whoever_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(_deployment: object) -> bool:
        raise OSError("podman is gone")

    monkeypatch.setattr(prerefresh, "unchanged", boom)
    with pytest.raises(OSError):
        prerefresh.start({}).result(timeout=10)


# ---------------------------------------------------------------- the preview


class FakeStack:
    """Records each preview's refresh flag; `fail` makes the speculative one fail."""

    def __init__(self, fail: bool = False) -> None:
        self.refreshes: list[bool] = []
        self.fail = fail

    def preview(self, *, refresh: bool, **_kw: Any) -> None:
        self.refreshes.append(refresh)
        if self.fail and not refresh:
            raise auto.CommandError(auto.CommandResult("", "error: boom", 255))


def settled(value: bool | BaseException) -> Future[bool]:
    future: Future[bool] = Future()
    if isinstance(value, BaseException):
        future.set_exception(value)
    else:
        future.set_result(value)
    return future


def handle(stack: FakeStack) -> engine.StackHandle:
    return engine.StackHandle("demo", stack, False)  # type: ignore[arg-type]


def test_a_preview_stands_when_paudes_refresh_found_nothing() -> None:
    stack = FakeStack()
    h = handle(stack)
    engine.preview(h, observed=settled(True))
    assert stack.refreshes == [False]
    assert h.in_sync == [True]  # so the update after it skips its refresh too


@pytest.mark.parametrize("observed", [False, OSError("podman is gone")])
def test_otherwise_the_engine_refreshes_and_previews_again(
        observed: bool | BaseException) -> None:
    stack = FakeStack()
    engine.preview(handle(stack), observed=settled(observed))
    assert stack.refreshes == [False, True]


def test_without_paudes_refresh_the_engine_refreshes_once() -> None:
    stack = FakeStack()
    engine.preview(handle(stack))
    assert stack.refreshes == [True]


def test_a_failed_preview_on_the_recorded_state_is_reported() -> None:
    stack = FakeStack(fail=True)
    with pytest.raises(EngineError, match="boom"):
        engine.preview(handle(stack), observed=settled(True))
    assert stack.refreshes == [False]


def test_a_failed_preview_on_stale_state_is_tried_again_refreshed() -> None:
    stack = FakeStack(fail=True)
    engine.preview(handle(stack), observed=settled(False))
    assert stack.refreshes == [False, True]


# ---------------------------------------------------------------- when plans use it


def test_only_an_applied_podman_session_with_a_judgeable_state_is_read_by_paude(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from paude import sessions

    started: list[dict[str, Any]] = []

    def start(deployment: dict[str, Any]) -> Future[bool]:
        started.append(deployment)
        return settled(True)

    monkeypatch.setattr(prerefresh, "start", start)
    state = deployment(resource("a", {"image": "x"}))
    podman_session = SimpleNamespace(backend="podman")

    def observe(new: bool, exported: dict[str, Any], session: Any = podman_session) -> object:
        h = engine.StackHandle("demo", FakeStack(), new, dict(exported))  # type: ignore[arg-type]
        return sessions._observe(h, session)

    assert observe(False, state) is not None and started == [state]
    assert observe(True, state) is None                        # nothing applied yet
    assert observe(False, state, SimpleNamespace(backend="openshift")) is None
    assert observe(False, deployment(resource("a", {"secret_env": SECRET}))) is None
    assert observe(False, {}) is None                          # the state was not read
    assert len(started) == 1
