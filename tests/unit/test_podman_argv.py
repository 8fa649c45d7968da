"""Exact podman argv per operation, and inspect/wait/remove with proc.run patched."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from paude.errors import CommandFailedError
from paude.proc import CommandResult
from paude.stacks.podman import podman

LABELS = {"paude.session": "demo", "paude.managed": "true"}


class FakeRun:
    """Stands in for proc.run: records argv and answers from a function of argv."""

    def __init__(self, answer: Callable[[tuple[str, ...]], tuple[int, str, str]]) -> None:
        self.answer = answer
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: Sequence[str], *, check: bool = True,
                 **_kw: Any) -> CommandResult:
        args = tuple(argv)
        self.calls.append(args)
        code, out, err = self.answer(args)
        result = CommandResult(args, code, out, err)
        assert not check, "podman helpers decide about failures themselves"
        return result


# ---------------------------------------------------------------- argv builders


def test_label_args_are_sorted() -> None:
    assert podman.label_args({"b": "2", "a": "1"}) == ["--label", "a=1", "--label", "b=2"]


def test_internal_network_without_dns() -> None:
    assert podman.network_create_argv("paude-demo-internal", internal=True, dns=False,
                                      labels=LABELS) == [
        "podman", "network", "create", "--internal", "--disable-dns",
        "--label", "paude.managed=true", "--label", "paude.session=demo",
        "paude-demo-internal",
    ]


def test_egress_network_with_dns() -> None:
    assert podman.network_create_argv("paude-demo-egress", internal=False, dns=True,
                                      labels={}) == [
        "podman", "network", "create", "paude-demo-egress"]


def test_volume_create_argv() -> None:
    assert podman.volume_create_argv("paude-demo-workspace", labels=LABELS) == [
        "podman", "volume", "create",
        "--label", "paude.managed=true", "--label", "paude.session=demo",
        "paude-demo-workspace",
    ]


def test_build_argv() -> None:
    assert podman.build_argv("localhost/paude-agent:0123456789abcdef", "/tmp/ctx",
                             build_args={"Z": "1", "A": "x y"},
                             labels={"paude.managed": "true"}) == [
        "podman", "build", "--tag", "localhost/paude-agent:0123456789abcdef",
        "--file", "/tmp/ctx/Containerfile", "--pull=never",
        "--build-arg", "A=x y", "--build-arg", "Z=1",
        "--label", "paude.managed=true",
        "/tmp/ctx",
    ]


def test_build_argv_names_the_ignore_file() -> None:
    argv = podman.build_argv("localhost/paude-userbase:0123456789abcdef", "/repo/ctx",
                             build_args={}, labels={}, file="/repo/Dockerfile",
                             ignore_file="/repo/ctx/.containerignore")
    assert argv[argv.index("--ignorefile") + 1] == "/repo/ctx/.containerignore"
    assert argv[-1] == "/repo/ctx"


def test_create_argv_full_spec() -> None:
    spec = {
        "name": "paude-demo-agent", "hostname": "paude-demo-agent",
        "networks": ["paude-demo-internal", "net:ip=1.2.3.4"],
        "add_hosts": ["paude-demo-proxy:10.89.3.254"],
        "dns": "none", "user": "paude",
        "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
        "read_only": True, "tmpfs": ["/tmp"],
        "volumes": ["paude-demo-workspace:/workspace"],
        "env": {"Z_VAR": "z", "HTTP_PROXY": "http://paude-demo-proxy:3128", "A": "a b"},
        "labels": {"paude.role": "agent", "paude.managed": "true"},
        "restart": "unless-stopped",
        "image": "localhost/paude-agent:0123456789abcdef",
        "command": ["sleep", "infinity"],
        "container_id": "ignored", "allowlist": ["ignored.example.com"],
        "secret_env": {"ANTHROPIC_API_KEY": "sk-never-in-argv"},
        "sysctls": {"net.ipv6.conf.all.disable_ipv6": "1"},
    }
    argv = podman.create_argv(spec)
    assert not any("sk-never-in-argv" in a for a in argv)
    assert argv == [
        "podman", "create", "--name", "paude-demo-agent",
        "--hostname", "paude-demo-agent",
        "--network", "paude-demo-internal", "--network", "net:ip=1.2.3.4",
        "--add-host", "paude-demo-proxy:10.89.3.254",
        "--dns", "none",
        "--user", "paude",
        "--cap-drop", "ALL",
        "--security-opt", "no-new-privileges",
        "--sysctl", "net.ipv6.conf.all.disable_ipv6=1",
        "--read-only",
        "--tmpfs", "/tmp",
        "--volume", "paude-demo-workspace:/workspace",
        "--env", "A=a b", "--env", "HTTP_PROXY=http://paude-demo-proxy:3128",
        "--env", "Z_VAR=z", "--env", "ANTHROPIC_API_KEY",
        "--label", "paude.managed=true", "--label", "paude.role=agent",
        "--restart", "unless-stopped",
        "localhost/paude-agent:0123456789abcdef", "sleep", "infinity",
    ]


def test_create_argv_minimal_spec_has_no_optional_flags() -> None:
    assert podman.create_argv({"name": "c", "hostname": "h", "networks": [], "image": "img"}) == [
        "podman", "create", "--name", "c", "--hostname", "h", "img"]


# ---------------------------------------------------------------- inspect()


def test_inspect_returns_the_first_object(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRun(lambda _a: (0, json.dumps([{"Id": "abc", "Name": "n"}]), ""))
    monkeypatch.setattr(podman.proc, "run", fake)
    assert podman.inspect("network", "n") == {"Id": "abc", "Name": "n"}
    assert fake.calls == [("podman", "network", "inspect", "n")]


def test_inspect_empty_list_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(podman.proc, "run", FakeRun(lambda _a: (0, "[]", "")))
    assert podman.inspect("volume", "v") is None


@pytest.mark.parametrize("stderr", [
    'Error: no such container "x"',
    "Error: unable to find network with name or ID paude-demo-internal: network not found",
    "Error: paude-demo-workspace: no such volume",
    "Error: localhost/paude-agent:abc: image not known",
])
def test_inspect_missing_object_is_none(monkeypatch: pytest.MonkeyPatch, stderr: str) -> None:
    monkeypatch.setattr(podman.proc, "run", FakeRun(lambda _a: (125, "[]", stderr)))
    assert podman.inspect("container", "x") is None


def test_inspect_other_failures_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    stderr = "Error: cannot connect to Podman socket: permission denied"
    monkeypatch.setattr(podman.proc, "run", FakeRun(lambda _a: (125, "", stderr)))
    with pytest.raises(CommandFailedError) as exc:
        podman.inspect("container", "x")
    assert exc.value.argv == ["podman", "container", "inspect", "x"]
    assert "permission denied" in exc.value.message


# ---------------------------------------------------------------- remove()


def test_remove_treats_already_gone_as_success(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRun(lambda _a: (1, "", "Error: no such volume paude-demo-workspace"))
    monkeypatch.setattr(podman.proc, "run", fake)
    podman.remove(["podman", "volume", "rm", "paude-demo-workspace"])
    assert fake.calls == [("podman", "volume", "rm", "paude-demo-workspace")]


def test_remove_raises_on_other_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRun(lambda _a: (2, "", "Error: volume is being used by container abc"))
    monkeypatch.setattr(podman.proc, "run", fake)
    with pytest.raises(CommandFailedError, match="being used"):
        podman.remove(["podman", "volume", "rm", "paude-demo-workspace"])


def test_remove_tries_once_more_when_a_mount_is_still_busy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # What a killed `podman rm` left: the container's shm mount, busy for a moment.
    answers = iter([(125, "", "Error: cleaning up storage: unlinkat /var/lib/containers/"
                     "storage/overlay-containers/abc/userdata/shm: device or resource busy"),
                    (0, "", "")])
    fake = FakeRun(lambda _a: next(answers))
    monkeypatch.setattr(podman.proc, "run", fake)
    monkeypatch.setattr(podman.time, "sleep", lambda _s: None)
    podman.remove(["podman", "rm", "--force", "c"])
    assert len(fake.calls) == 2


def test_remove_still_fails_when_the_mount_stays_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    busy = (125, "", "Error: unlinkat .../userdata/shm: device or resource busy")
    monkeypatch.setattr(podman.proc, "run", FakeRun(lambda _a: busy))
    monkeypatch.setattr(podman.time, "sleep", lambda _s: None)
    with pytest.raises(CommandFailedError, match="resource busy"):
        podman.remove(["podman", "rm", "--force", "c"])


def test_changes_finish_even_when_paude_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []

    def run(argv: Sequence[str], **kw: Any) -> CommandResult:
        seen.append(kw)
        return CommandResult(tuple(argv), 0, "", "")

    monkeypatch.setattr(podman.proc, "run", run)
    podman.change(["podman", "network", "create", "n"])
    podman.remove(["podman", "rm", "c"])
    assert [kw.get("finish_alone") for kw in seen] == [True, True]


_LEAK = ("Error: IPAM error: requested ip address 10.89.0.254 is already allocated to "
         "container ID 5a4e0c3b2a1f00000000000000000000000000000000000000000000000000aa")
_SPEC = {"name": "paude-demo-proxy", "networks": [
    "paude-demo-internal:ip=10.89.0.254,mac=02:00:0a:59:00:fe", "paude-demo-egress"]}


def test_a_fixed_address_held_by_a_gone_container_is_explained(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(podman, "inspect", lambda _kind, _name: None)
    made = CommandResult(("podman", "run"), 126, "", _LEAK)
    error = podman.create_failure(made, _SPEC)
    assert isinstance(error, RuntimeError)
    message = str(error)
    assert "10.89.0.254 on paude-demo-internal" in message
    assert "5a4e0c3b2a1f" in message and "restart the machine" in message


def test_a_fixed_address_held_by_a_live_container_is_podmans_own_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Control: the holder exists (a real conflict), so nothing is claimed about a leak.
    monkeypatch.setattr(podman, "inspect", lambda _kind, _name: {"Id": "5a4e"})
    error = podman.create_failure(CommandResult(("podman", "run"), 126, "", _LEAK), _SPEC)
    assert isinstance(error, CommandFailedError)
    assert "restart the machine" not in error.message


# ---------------------------------------------------------------- wait_running()


@dataclass
class Clock:
    """A fake monotonic clock that only moves when the code under test sleeps."""

    now: float = 1000.0
    slept: list[float] = field(default_factory=list)

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(podman, "time", SimpleNamespace(monotonic=fake.monotonic,
                                                         sleep=fake.sleep))
    return fake


def _states(monkeypatch: pytest.MonkeyPatch,
            states: Sequence[dict[str, Any] | None]) -> list[str]:
    """Make inspect() answer each state in turn (the last one repeats)."""
    asked: list[str] = []

    def fake_inspect(kind: str, name: str) -> dict[str, Any] | None:
        asked.append(f"{kind} {name}")
        return states[min(len(asked) - 1, len(states) - 1)]

    monkeypatch.setattr(podman, "inspect", fake_inspect)
    return asked


RUNNING = {"Id": "cid", "State": {"Running": True, "Status": "running"}, "RestartCount": 0}


def test_wait_running_returns_id_after_settling(monkeypatch: pytest.MonkeyPatch,
                                                clock: Clock) -> None:
    created = {"Id": "cid", "State": {"Running": False, "Status": "created"}}
    asked = _states(monkeypatch, [created, RUNNING])
    assert podman.wait_running("paude-demo-proxy", settle=1.0) == "cid"
    assert set(asked) == {"container paude-demo-proxy"}
    # It polled until the container had been up for the whole settle period.
    assert 1.0 <= sum(clock.slept) < 1.5
    assert all(s <= 0.1 for s in clock.slept)


def _fail_logs(monkeypatch: pytest.MonkeyPatch) -> FakeRun:
    fake = FakeRun(lambda _a: (0, "squid: FATAL: bad acl\n", "paude-proxy: rejected\n"))
    monkeypatch.setattr(podman.proc, "run", fake)
    return fake


def test_wait_running_fails_with_logs_when_container_exits(monkeypatch: pytest.MonkeyPatch,
                                                           clock: Clock) -> None:
    _states(monkeypatch, [{"Id": "cid", "State": {"Running": False, "Status": "exited"}}])
    logs = _fail_logs(monkeypatch)
    with pytest.raises(RuntimeError) as exc:
        podman.wait_running("paude-demo-proxy")
    assert "paude-demo-proxy did not stay running (status exited)" in str(exc.value)
    assert "squid: FATAL: bad acl" in str(exc.value)
    assert "paude-proxy: rejected" in str(exc.value)
    assert logs.calls == [("podman", "logs", "--tail", "15", "paude-demo-proxy")]


def test_wait_running_fails_when_container_restarted(monkeypatch: pytest.MonkeyPatch,
                                                     clock: Clock) -> None:
    _states(monkeypatch, [RUNNING, {**RUNNING, "RestartCount": 1}])
    _fail_logs(monkeypatch)
    with pytest.raises(RuntimeError, match="did not stay running"):
        podman.wait_running("paude-demo-proxy", settle=5.0)


def test_wait_running_fails_when_container_vanishes(monkeypatch: pytest.MonkeyPatch,
                                                    clock: Clock) -> None:
    _states(monkeypatch, [None])
    _fail_logs(monkeypatch)
    with pytest.raises(RuntimeError, match=r"status missing"):
        podman.wait_running("paude-demo-agent")


def test_wait_running_times_out(monkeypatch: pytest.MonkeyPatch, clock: Clock) -> None:
    _states(monkeypatch, [{"Id": "cid", "State": {"Running": False, "Status": "created"}}])
    with pytest.raises(RuntimeError, match="did not start within 3s"):
        podman.wait_running("paude-demo-agent", timeout=3.0)
    assert 3.0 <= sum(clock.slept) <= 3.2
