"""Running a stack program under Pulumi mocks: what it would declare, with no engine, no
state and no provider touching anything.

The program runs in paude's own process against the SDK's mock monitor. Providers are
never called (no podman, no cluster): the mocks answer each registration with the inputs
it carried, and a few computed values (a network's subnet, a Service's address) with fixed
stand-ins, so that both sides of a comparison see the same."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

SUBNET = "10.89.0.0/24"  # a stand-in subnet for podman networks
CLUSTER_IP = "172.30.0.1"  # a stand-in address for Kubernetes Services


@dataclass(frozen=True)
class Declared:
    """One resource as the program declared it."""

    name: str
    type: str  # the type token, e.g. pulumi-python:dynamic/podman:Container
    inputs: dict[str, Any]
    protect: bool = False
    retain_on_delete: bool = False
    ignore_changes: tuple[str, ...] = ()


@dataclass
class _Mocks(pulumi.runtime.Mocks):
    resources: dict[str, MockResourceArgs] = field(default_factory=dict)

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources[args.name] = args
        state = dict(args.inputs)
        if args.typ.endswith(":Network"):
            state["subnet"] = SUBNET
        if args.typ.endswith(":Image"):
            state["image_id"] = f"sha256:{args.name}"
        if args.typ.endswith(":SessionCA"):
            # Made at apply; a declaration compares as the same CA on both sides.
            state.update(cert_pem="<the session's CA certificate>", key_pem="<its key>")
        if args.typ == "kubernetes:core/v1:Service":
            state["spec"] = {**state.get("spec", {}), "clusterIP": CLUSTER_IP}
        return f"{args.name}-id", state

    def call(self, args: MockCallArgs) -> tuple[dict[Any, Any], list[tuple[str, str]] | None]:
        # paude's programs make no provider calls; one that did would need a real provider.
        raise RuntimeError(f"the stack program made a provider call ({args.token})")


class _Monitor(MockMonitor):
    """Keeps each registration request: it carries the resource options."""

    def __init__(self, mocks: _Mocks) -> None:
        super().__init__(mocks)
        self.requests: dict[str, Any] = {}

    def RegisterResource(self, request: Any) -> Any:
        self.requests[request.name] = request
        return super().RegisterResource(request)  # type: ignore[no-untyped-call]


def declare(program: Callable[[], None]) -> dict[str, Declared]:
    """Run `program` under mocks and return every resource it declares, by logical name.

    Provider resources (pulumi:providers:*) are left out: they are configuration, not
    objects of the session."""
    mocks = _Mocks()
    monitor = _Monitor(mocks)
    pulumi.runtime.settings.reset_options()
    # preview=True: the programs write nothing during a plan (no credential staging).
    pulumi.runtime.set_mocks(mocks, preview=True, monitor=monitor)
    real_export = pulumi.export
    # Exports need the stack's root resource; they carry nothing a plan compares.
    pulumi.export = lambda *_args, **_kw: None

    @pulumi.runtime.test  # type: ignore[untyped-decorator]  # the SDK's is untyped
    def run() -> None:
        program()

    try:
        run()
    finally:
        pulumi.export = real_export
        pulumi.runtime.settings.reset_options()
    out: dict[str, Declared] = {}
    for name, args in mocks.resources.items():
        if args.typ.startswith("pulumi:providers:"):
            continue
        request = monitor.requests.get(name)
        out[name] = Declared(
            name=name, type=args.typ,
            inputs={k: v for k, v in dict(args.inputs).items() if not k.startswith("__")},
            protect=bool(getattr(request, "protect", False)),
            retain_on_delete=bool(getattr(request, "retainOnDelete", False)),
            ignore_changes=tuple(getattr(request, "ignoreChanges", ()) or ()))
    return out
