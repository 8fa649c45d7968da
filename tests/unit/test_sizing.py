"""Resource limits: paude.yaml's `resources`, podman flags, Kubernetes resources, what podman
reports back, and the plan's statements about them."""

from __future__ import annotations

from typing import Any

import pytest

from paude import sizing
from paude.config import load_paude_file
from paude.errors import ConfigError
from paude.models import PaudeFile, resolve
from paude.results import ResourceChange
from paude.stacks.podman.podman import create_argv
from paude.summary import summarize


def limits_of(spec: dict[str, Any]) -> sizing.Limits:
    session = resolve(PaudeFile.model_validate({"sessions": {"demo": spec}}), "demo")
    return sizing.agent_limits(session.resources)


def test_defaults_are_safe_and_a_session_overrides_one_limit_at_a_time() -> None:
    assert limits_of({}) == sizing.Limits(memory=4 * 2**30, cpus="2", pids=4096)
    assert limits_of({"resources": {"memory": "8Gi"}}) == sizing.Limits(8 * 2**30, "2", 4096)
    assert limits_of({"resources": {"cpus": "500m", "pids": "unlimited"}}) == \
        sizing.Limits(4 * 2**30, "0.5", None)
    file = PaudeFile.model_validate({"defaults": {"resources": {"cpus": 4}},
                                     "sessions": {"demo": {"resources": {"memory": "2G"}}}})
    merged = sizing.agent_limits(resolve(file, "demo").resources)
    assert merged == sizing.Limits(2 * 10**9, "4", 4096)


@pytest.mark.parametrize(("field", "value", "says"), [
    ("memory", "10", "outside 256Mi..4Ti"),
    ("memory", "lots", "not a memory size"),
    ("memory", "5Ti", "outside 256Mi..4Ti"),
    ("memory", "1e9", "not a memory size"),
    ("memory", True, "a memory size"),
    ("cpus", 0, "outside 0.1..1024"),
    ("cpus", "two", "not a number of CPUs"),
    ("cpus", "99999", "outside 0.1..1024"),
    ("pids", 10, "outside 64..4194304"),
    ("pids", "4096", "a whole number"),
    ("pids", 1.5, "a whole number"),
])
def test_absurd_or_unparsable_limits_name_the_field(tmp_path: Any, field: str, value: Any,
                                                    says: str) -> None:
    path = tmp_path / "paude.yaml"
    shown = value if not isinstance(value, str) else f"'{value}'"
    path.write_text(f"version: 1\nsessions:\n  demo:\n    resources:\n      {field}: "
                    f"{str(shown).lower() if isinstance(value, bool) else shown}\n")
    with pytest.raises(ConfigError) as caught:
        load_paude_file(path)
    text = caught.value.render()
    assert f"sessions.demo.resources.{field}" in text and says in text, text
    assert "paude.yaml:5" in text


def test_podman_flags_cap_swap_and_lift_podman_s_own_process_default() -> None:
    spec = {"name": "c", "hostname": "c", "networks": [], "image": "img",
            "limits": sizing.Limits(2**30, "1.5", 512).__dict__}
    argv = create_argv(spec)
    assert argv[argv.index("--memory") + 1] == str(2**30)
    assert argv[argv.index("--memory-swap") + 1] == str(2**30)
    assert argv[argv.index("--cpus") + 1] == "1.5"
    assert argv[argv.index("--pids-limit") + 1] == "512"
    assert argv[-1] == "img"  # flags come before the image
    free = create_argv({**spec, "limits": sizing.Limits(None, None, None).__dict__})
    assert "--memory" not in free and "--cpus" not in free
    assert free[free.index("--pids-limit") + 1] == "-1"  # not podman's silent 2048
    assert "--pids-limit" not in create_argv({k: v for k, v in spec.items() if k != "limits"})
    # The engine hands numbers back as floats.
    floats = create_argv({**spec, "limits": {"memory": 2.0**30, "cpus": "1.5", "pids": 512.0}})
    assert floats[floats.index("--memory") + 1] == str(2**30)
    assert floats[floats.index("--pids-limit") + 1] == "512"
    # ...and drop the keys of unset limits.
    dropped = create_argv({**spec, "limits": {"memory": 2.0**30, "cpus": "1"}})
    assert dropped[dropped.index("--pids-limit") + 1] == "-1"


def test_what_podman_reports_reads_back_as_the_declared_limits() -> None:
    declared = sizing.Limits(4 * 2**30, "2", 4096)
    reported = {"Memory": 4 * 2**30, "MemorySwap": 4 * 2**30, "NanoCpus": 2_000_000_000,
                "PidsLimit": 4096}
    assert sizing.observed(reported) == declared.props()
    quota = {"Memory": 4 * 2**30, "CpuQuota": 150000, "CpuPeriod": 100000, "PidsLimit": 4096}
    assert sizing.observed(quota)["cpus"] == "1.5"
    assert sizing.observed({"PidsLimit": 0}) == {"memory": None, "cpus": None, "pids": None}
    # A limit raised by hand reads back different: drift.
    assert sizing.observed({**reported, "Memory": 8 * 2**30}) != declared.props()


def test_kubernetes_requests_memory_in_full_and_a_little_cpu() -> None:
    assert sizing.kubernetes(sizing.Limits(4 * 2**30, "2", 4096)) == {
        "requests": {"memory": "4Gi", "cpu": "250m"}, "limits": {"memory": "4Gi", "cpu": "2"}}
    assert sizing.kubernetes(sizing.Limits(2**30, "0.1", None))["requests"]["cpu"] == "100m"
    assert sizing.kubernetes(sizing.Limits(2**30, "1.5", None))["limits"]["cpu"] == "1500m"
    assert sizing.kubernetes(sizing.Limits(None, None, None)) == {}
    statefulset = {"spec": {"template": {"spec": {"containers": [
        {"resources": sizing.kubernetes(sizing.Limits(3 * 2**29, "1", None))}]}}}}
    assert sizing.limits_in(statefulset) == {"memory": 3 * 2**29, "cpus": "1", "pids": None}


def change(name: str, op: str, old: dict[str, Any] | None, new: dict[str, Any]
           ) -> ResourceChange:
    return ResourceChange(name, "podman:Container", op,
                          old_inputs={"limits": old} if old is not None else {},
                          new_inputs={"limits": new}, replace_keys=("limits",))


def statements(*changes: ResourceChange, new: bool = False) -> list[tuple[str, str, bool]]:
    return [(i.kind, i.text + "".join(f" [{d}]" for d in i.details), i.security)
            for i in summarize(changes, new_session=new)
            if i.kind.startswith("limits")]


DEFAULT = sizing.Limits(4 * 2**30, "2", 4096).props()


def test_plan_says_a_raised_limit_loudly_and_a_lowered_one_plainly() -> None:
    raised = {**DEFAULT, "memory": 8 * 2**30, "pids": None}
    assert statements(change("agent", "replace", DEFAULT, raised)) == [
        ("limits-raised", "agent limits raised [memory 4Gi -> 8Gi] [processes 4096 -> unlimited]",
         True)]
    lowered = {**DEFAULT, "cpus": "1"}
    assert statements(change("agent", "replace", DEFAULT, lowered)) == [
        ("limits-lowered", "agent limits lowered [CPUs 2 -> 1]", False)]
    assert statements(change("agent", "same", DEFAULT, DEFAULT)) == []


def test_plan_shows_limits_of_a_new_session_and_of_an_upgraded_container() -> None:
    assert statements(change("agent", "create", None, DEFAULT),
                      change("proxy", "create", None, sizing.PROXY.props()), new=True) == [
        ("limits-set", "agent limits: memory 4Gi, 2 CPUs, 4096 processes", False)]
    # A container from before limits existed gets them: said once, not as a raise.
    assert statements(change("proxy", "replace", None, sizing.PROXY.props())) == [
        ("limits-set", "proxy limits: memory 256Mi, 1 CPU, 256 processes", False)]
    none = {"cpus": "2", "pids": 4096.0}  # as the engine hands an unset limit back
    assert statements(change("agent", "create", None, none), new=True)[0][0] == "limits-removed"


def fake_cgroups(root: Any, lines: str, files: dict[str, str]) -> None:
    (root / "proc/42").mkdir(parents=True)
    (root / "proc/42/cgroup").write_text(lines)
    for rel, text in files.items():
        path = root / "sys/fs/cgroup" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


def test_live_limits_come_from_cgroup_v1_files(tmp_path: Any) -> None:
    scope = "libpod_parent/libpod-abc"
    fake_cgroups(tmp_path, "".join(f"{i}:{c}:/{scope}\n" for i, c in enumerate(
        ("memory", "pids", "cpu,cpuacct", "name=systemd"))) + f"0::/{scope}\n", {
        f"memory/{scope}/memory.limit_in_bytes": str(3 * 2**30),
        f"pids/{scope}/pids.max": "512",
        f"cpu/{scope}/cpu.cfs_quota_us": "150000",
        f"cpu/{scope}/cpu.cfs_period_us": "100000"})
    # /proc may list "cpu,cpuacct" as one hierarchy; /sys/fs/cgroup/cpu links to it.
    assert sizing.live(42, tmp_path) == {"memory": 3 * 2**30, "cpus": "1.5", "pids": 512}


def test_live_limits_come_from_cgroup_v2_files(tmp_path: Any) -> None:
    scope = "machine.slice/libpod-abc.scope"
    fake_cgroups(tmp_path, f"0::/{scope}\n", {
        f"{scope}/memory.max": "max", f"{scope}/pids.max": "4096",
        f"{scope}/cpu.max": "200000 100000"})
    assert sizing.live(42, tmp_path) == {"memory": None, "cpus": "2", "pids": 4096}


def test_unreadable_cgroups_fall_back_to_nothing(tmp_path: Any) -> None:
    assert sizing.live(42, tmp_path) is None
    fake_cgroups(tmp_path, "0::/x\n", {"x/memory.max": "lots", "x/pids.max": "1",
                                       "x/cpu.max": "max 100000"})
    assert sizing.live(42, tmp_path) is None


def test_memory_kills_are_counted_from_v1_and_v2_files(tmp_path: Any) -> None:
    v1 = tmp_path / "v1"
    fake_cgroups(v1, "4:memory:/libpod/x\n0::/libpod/x\n", {
        "memory/libpod/x/memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 3"})
    assert sizing.memory_kills(42, v1) == 3
    v2 = tmp_path / "v2"
    fake_cgroups(v2, "0::/m.slice/x\n", {
        "m.slice/x/memory.events": "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1"})
    assert sizing.memory_kills(42, v2) == 1
    assert sizing.memory_kills(42, tmp_path / "none") is None
