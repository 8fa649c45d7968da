"""The refresh of a podman session, run by paude itself while the engine starts.

A plan reads every object back from podman so that changes made by hand show. In the
engine that is a refresh pass before the preview: one more start of the dynamic provider,
then every read, and only then the program and the preview. paude runs the same reads,
the providers' own `read` functions, in threads of its own process while the engine starts
a preview without a refresh. When every object reads as the state records it (the test
the engine's refresh applies: the same outputs and inputs), that preview is the plan.
When anything differs, or cannot be judged here, the caller runs the preview again with
the engine's refresh, which reports and records it as before.

"Cannot be judged" is anything this module does not fully understand: a resource type it
has no provider for, a pending operation, a read that fails, or a value the state holds
encrypted other than the containers' secret variables, whose names (all a read looks at)
the state keeps in the clear beside them."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from pulumi.dynamic import ResourceProvider

from paude.engine_text import SECRET_SIG

from . import batchread
from .resources import ContainerProvider, ImageProvider, NetworkProvider, VolumeProvider

# What the engine's refresh would ask of each type (stacks/podman/resources.py).
PROVIDERS: dict[str, type[ResourceProvider]] = {
    "pulumi-python:dynamic/podman:Image": ImageProvider,
    "pulumi-python:dynamic/podman:Network": NetworkProvider,
    "pulumi-python:dynamic/podman:Volume": VolumeProvider,
    "pulumi-python:dynamic/podman:Container": ContainerProvider,
}
# Types whose read returns the state as it is (stacks/session_ca.py: the state is the CA).
STATE_ONLY = frozenset({"pulumi-python:dynamic/paude:SessionCA"})
PROVIDER_KEY = "__provider"


def start(deployment: Mapping[str, Any]) -> Future[bool]:
    """Run `unchanged` in a thread of its own; a daemon, so that a command ending early
    (an error, Ctrl+C) never waits for podman."""
    future: Future[bool] = Future()

    def run() -> None:
        try:
            future.set_result(unchanged(deployment))
        except BaseException as exc:  # handed to whoever waits, as a failure to judge
            future.set_exception(exc)

    threading.Thread(target=run, name="paude-prerefresh", daemon=True).start()
    return future


Job = tuple[type[ResourceProvider], Mapping[str, Any]]


def judgeable(deployment: Mapping[str, Any]) -> bool:
    """Whether paude can judge this deployment itself (cheap: no reads). A stack from
    before the secret variables' names were recorded cannot be, until its containers are
    next recreated; its plans keep the engine's refresh."""
    return _jobs(deployment) is not None


def unchanged(deployment: Mapping[str, Any]) -> bool:
    """True when every object of the deployment reads as the state records it; False when
    something differs or cannot be judged here (the engine's refresh then decides)."""
    jobs = _jobs(deployment)
    if not jobs:
        return False
    with batchread.primed(_wanted(jobs)), ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        return all(pool.map(_reads_as_recorded, jobs))


def _wanted(jobs: list[Job]) -> dict[str, list[str]]:
    """What the reads will ask podman, by kind (images read themselves: freshness.py)."""
    kinds = {ContainerProvider: "container", NetworkProvider: "network",
             VolumeProvider: "volume"}
    wanted: dict[str, list[str]] = {}
    for provider, resource in jobs:
        if provider in kinds:
            wanted.setdefault(kinds[provider], []).append(str(resource.get("id")))
    return wanted


def _jobs(deployment: Mapping[str, Any]) -> list[Job] | None:
    """The reads to make, or None when something cannot be judged here."""
    if deployment.get("pending_operations"):
        return None
    jobs: list[Job] = []
    for resource in deployment.get("resources") or []:
        kind = str(resource.get("type") or "")
        if kind.startswith("pulumi:") or kind in STATE_ONLY:
            continue  # the stack itself and provider references; the CA
        provider = PROVIDERS.get(kind)
        if provider is None or resource.get("delete") or resource.get("pendingReplacement"):
            return None
        if not (_judgeable(_without_provider(resource.get("outputs")))
                and _judgeable(_without_provider(resource.get("inputs")))):
            return None
        jobs.append((provider, resource))
    return jobs or None


def _reads_as_recorded(job: Job) -> bool:
    provider, resource = job
    outputs = _without_provider(resource.get("outputs"))
    inputs = _without_provider(resource.get("inputs"))
    ident = resource.get("id")
    try:
        result = provider().read(str(ident), copy.deepcopy(outputs))
    except Exception:  # the engine's refresh reports it properly
        return False
    if result.id != ident or _comparable(result.outs or {}) != _comparable(outputs):
        return False
    return result.inputs is None or _comparable(result.inputs) == _comparable(inputs)


def _without_provider(props: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (props or {}).items() if k != PROVIDER_KEY}


def _comparable(props: Mapping[str, Any]) -> Any:
    """The properties as compared: the encrypted secret variables stand for their value
    (each encryption of one value differs; a read passes them through untouched, and the
    engine, which decrypts, finds them equal for that reason)."""
    plain = _without_provider(props)
    if _is_secret(plain.get("secret_env")):
        plain["secret_env"] = "[secret]"
    return _normal(plain)


def _is_secret(value: Any) -> bool:
    return isinstance(value, Mapping) and SECRET_SIG in value


def _judgeable(props: Mapping[str, Any]) -> bool:
    """No encrypted value a read would need: only `secret_env` may be one, and only when
    its names are recorded in the clear (what the drift check compares is the names)."""
    for key, value in props.items():
        if key == "secret_env" and isinstance(props.get("secret_env_names"), list):
            continue
        if SECRET_SIG in json.dumps(value):
            return False
    return True


def _normal(value: Any) -> Any:
    """The value as the engine compares it: JSON, with whole floats as integers (the
    state writes numbers without telling integers from floats)."""
    if isinstance(value, Mapping):
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normal(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
