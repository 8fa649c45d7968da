"""Running a Pulumi program under mocks and recording what it declares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pulumi
import pytest
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

# What a session's inspection CA certificate looks like to the programs under test.
TEST_CA_CERT = "-----BEGIN CERTIFICATE-----\ntest-session-ca\n-----END CERTIFICATE-----\n"


class RecordingMocks(pulumi.runtime.Mocks):
    """Records every resource the program declares and answers like the providers would."""

    def __init__(self, subnet: str = "10.89.3.0/24", cluster_ip: str = "172.30.12.34") -> None:
        self.resources: dict[str, MockResourceArgs] = {}
        self.subnet = subnet
        self.cluster_ip = cluster_ip

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources[args.name] = args
        state = dict(args.inputs)
        if args.typ.endswith(":Network"):
            state["subnet"] = self.subnet
        if args.typ.endswith(":Image"):
            state["image_id"] = f"sha256:{args.name}"
        if args.typ.endswith(":SessionCA"):
            state.update(cert_pem=TEST_CA_CERT, key_pem="<test CA key>")
        if args.typ == "kubernetes:core/v1:Service":
            state["spec"] = {**state.get("spec", {}), "clusterIP": self.cluster_ip}
        return f"{args.name}-id", state

    def call(self, args: MockCallArgs) -> dict[str, Any]:
        raise AssertionError(f"the program made an unexpected call: {args.token}")


class RecordingMonitor(MockMonitor):
    """Keeps each registration request, which carries the resource options."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.requests: dict[str, Any] = {}

    def RegisterResource(self, request: Any) -> Any:
        self.requests[request.name] = request
        return super().RegisterResource(request)


@dataclass
class Run:
    """What one program run declared."""

    resources: dict[str, MockResourceArgs]
    requests: dict[str, Any]
    exports: dict[str, Any]

    def inputs(self, name: str) -> dict[str, Any]:
        return dict(self.resources[name].inputs)


def run_pulumi(program_fn: Callable[[], None], mocks: RecordingMocks) -> Run:
    """Run an inline program under mocks and resolve its exports."""
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.settings.reset_options()
    pulumi.runtime.set_mocks(mocks, preview=False, monitor=monitor)
    exported: dict[str, Any] = {}
    resolved: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pulumi, "export", lambda key, value: exported.__setitem__(key, value))

        @pulumi.runtime.test
        def program() -> pulumi.Output[Any]:
            program_fn()
            return pulumi.Output.all(**exported).apply(resolved.update)

        program()
    pulumi.runtime.settings.reset_options()
    return Run(mocks.resources, monitor.requests, resolved)
