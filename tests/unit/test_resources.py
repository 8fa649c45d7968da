"""The podman dynamic providers with podman patched: create, read, diff and ownership."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from paude.proc import CommandResult
from paude.stacks.podman import podman, resources
from paude.stacks.podman.observe import DEFAULT_CAPS
from paude.stacks.podman.resources import (
    ContainerProvider,
    ImageProvider,
    NetworkProvider,
    VolumeProvider,
)

LABELS = {"paude.managed": "true", "paude.session": "demo", "paude.role": "x",
          "paude.repository": "/repo"}
TAG = "localhost/paude-agent:0123456789abcdef"


class Podman:
    """A fake podman: inspect answers from a dict; proc.run records argv."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.runs: list[list[str]] = []
        self.on_run: list[Any] = []
        monkeypatch.setattr(podman, "inspect", self.inspect)
        monkeypatch.setattr(resources.proc, "run", self.run)
        monkeypatch.setattr(podman.proc, "run", self.run)
        monkeypatch.setattr(podman, "wait_running", lambda name, **_k: f"id-of-{name}")

    def inspect(self, kind: str, name: str) -> dict[str, Any] | None:
        return self.objects.get((kind, name))

    def run(self, argv: Sequence[str], *, check: bool = True, **_kw: Any) -> CommandResult:
        args = [str(a) for a in argv]
        if args[:3] == ["podman", "image", "inspect"]:
            # As podman answers: the images it found, and a failure naming the others.
            names = [n for n in args[3:] if n != "--"]
            found = [{"RepoTags": [n], **self.objects[("image", n)]} for n in names
                     if ("image", n) in self.objects]
            missing = [n for n in names if ("image", n) not in self.objects]
            return CommandResult(tuple(args), 125 if missing else 0, json.dumps(found),
                                 "".join(f"Error: {n}: image not known\n" for n in missing))
        self.runs.append(args)
        for hook in self.on_run:
            hook(args)
        if args[1] in ("create", "run") and ("container", args[args.index("--name") + 1]) in (
                self.objects):
            return CommandResult(tuple(args), 125, "", "Error: creating container storage: "
                                 "the container name \"x\" is already in use by abc.")
        if args[1] == "rm":
            self.objects.pop(("container", args[-1]), None)
        if args[1:3] == ["network", "create"] and ("network", args[-1]) in self.objects:
            return CommandResult(tuple(args), 125, "", f"Error: network name {args[-1]} "
                                 "already used: network already exists")
        return CommandResult(tuple(args), 0, "", "")


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Podman:
    return Podman(monkeypatch)


def image_props() -> dict[str, Any]:
    return {"tag": TAG, "files": {"Containerfile": "FROM debian\n", "e.sh": "echo\n"},
            "build_args": {"A": "1"}, "labels": {"paude.managed": "true"}}


def container_props(**over: Any) -> dict[str, Any]:
    props = {"name": "paude-demo-proxy", "hostname": "paude-demo-proxy", "image": TAG,
             "networks": ["paude-demo-internal:ip=10.89.3.254", "paude-demo-egress"],
             "env": {"A": "1"}, "labels": LABELS, "cap_drop": ["ALL"],
             "security_opt": ["no-new-privileges"], "restart": "unless-stopped"}
    props.update(over)
    return props


def network_props(**over: Any) -> dict[str, Any]:
    props = {"name": "paude-demo-internal", "internal": True, "dns": False, "labels": LABELS}
    props.update(over)
    return props


# ---------------------------------------------------------------- images


def test_image_create_adopts_an_existing_tag(fake: Podman) -> None:
    fake.objects[("image", TAG)] = {"Id": "sha256:abc"}
    result = ImageProvider().create(image_props())
    assert fake.runs == []
    assert result.id == TAG
    assert result.outs["image_id"] == "sha256:abc"


def test_image_create_builds_when_missing(fake: Podman) -> None:
    written: dict[str, str] = {}

    def build(argv: list[str]) -> None:
        context = Path(argv[-1])
        written.update({p.name: p.read_text() for p in context.iterdir()})
        fake.objects[("image", TAG)] = {"Id": "sha256:new"}

    fake.on_run.append(build)
    result = ImageProvider().create(image_props())
    (argv,) = fake.runs
    assert argv[:4] == ["podman", "build", "--tag", TAG]
    at = argv.index("--build-arg")
    assert argv[at:at + 2] == ["--build-arg", "A=1"]
    assert argv[4:6] == ["--file", f"{argv[-1]}/Containerfile"]
    assert argv[-1] != "" and not Path(argv[-1]).exists(), "build context left behind"
    assert written == image_props()["files"]
    assert result.outs["image_id"] == "sha256:new"


def test_image_create_builds_a_user_dockerfile_in_its_context(fake: Podman,
                                                              tmp_path: Path) -> None:
    fake.on_run.append(lambda _argv: fake.objects.__setitem__(("image", TAG), {"Id": "b"}))
    props = {**image_props(), "context_dir": str(tmp_path),
             "dockerfile": str(tmp_path / "Dockerfile")}
    ImageProvider().create(props)
    assert fake.runs == [[
        "podman", "build", "--tag", TAG, "--file", str(tmp_path / "Dockerfile"), "--pull=never",
        "--build-arg", "A=1", "--label", "paude.managed=true", str(tmp_path)]]


def test_image_create_fails_when_build_produced_nothing(fake: Podman) -> None:
    with pytest.raises(RuntimeError, match="does not exist"):
        ImageProvider().create(image_props())


def test_image_read_reports_a_removed_image_gone(fake: Podman) -> None:
    result = ImageProvider().read(TAG, {**image_props(), "image_id": "sha256:abc"})
    assert result.id is None


def test_image_read_refreshes_the_id(fake: Podman) -> None:
    fake.objects[("image", TAG)] = {"Id": "sha256:rebuilt"}
    result = ImageProvider().read(TAG, {**image_props(), "image_id": "sha256:abc"})
    assert result.id == TAG and result.outs["image_id"] == "sha256:rebuilt"


BASE = {"Id": "sha256:base1", "RepoTags": ["docker.io/library/debian:latest"],
        "Architecture": "amd64", "Os": "linux", "RootFS": {"Layers": ["sha256:l1"]}}
ON_BASE = {"Id": "sha256:abc", "RepoTags": [TAG], "Architecture": "amd64", "Os": "linux",
           "RootFS": {"Layers": ["sha256:l1", "sha256:l2"]}}
REBUILT_BASE = {**BASE, "Id": "sha256:base2", "RootFS": {"Layers": ["sha256:l9"]}}


def test_image_read_finds_nothing_while_the_base_is_unchanged(fake: Podman) -> None:
    fake.objects[("image", TAG)] = ON_BASE
    fake.objects[("image", "debian")] = BASE
    result = ImageProvider().read(TAG, {**image_props(), "image_id": "sha256:abc"})
    assert "base_changed" not in result.outs and "base_changed" not in (result.inputs or {})
    diff = ImageProvider().diff(TAG, result.outs, image_props())
    assert not diff.changes


def test_image_read_reports_a_rebuilt_base_and_the_diff_rebuilds(fake: Podman) -> None:
    fake.objects[("image", TAG)] = ON_BASE
    fake.objects[("image", "debian")] = REBUILT_BASE
    result = ImageProvider().read(TAG, {**image_props(), "image_id": "sha256:abc"})
    assert result.outs["base_changed"] == "debian"
    assert (result.inputs or {})["base_changed"] == "debian"  # what the plan summary reads
    diff = ImageProvider().diff(TAG, result.outs, image_props())
    assert diff.changes and diff.replaces == ["base_changed"]
    assert diff.delete_before_replace is False


@pytest.mark.parametrize("base", [None, {**REBUILT_BASE, "Architecture": "arm64"},
                                  {**REBUILT_BASE, "RootFS": {}}])
def test_image_read_takes_a_missing_or_incomparable_base_as_no_change(
        fake: Podman, base: dict[str, Any] | None) -> None:
    fake.objects[("image", TAG)] = ON_BASE
    if base is not None:
        fake.objects[("image", "debian")] = base
    result = ImageProvider().read(TAG, {**image_props(), "image_id": "sha256:abc"})
    assert result.id == TAG and "base_changed" not in result.outs


def test_image_create_builds_again_on_a_rebuilt_base(fake: Podman) -> None:
    fake.objects[("image", TAG)] = ON_BASE
    fake.objects[("image", "debian")] = REBUILT_BASE
    rebuilt = {**ON_BASE, "Id": "sha256:new", "RootFS": {"Layers": ["sha256:l9", "sha256:l3"]}}
    fake.on_run.append(lambda _argv: fake.objects.__setitem__(("image", TAG), rebuilt))
    result = ImageProvider().create({**image_props(), "base_changed": "debian"})
    (argv,) = fake.runs
    assert argv[:4] == ["podman", "build", "--tag", TAG]
    # podman's layer cache keys on the parent layer, so no --no-cache is needed.
    assert "--no-cache" not in argv
    assert result.outs["image_id"] == "sha256:new"


def test_image_create_adopts_a_tag_built_on_the_current_base(fake: Podman) -> None:
    fake.objects[("image", TAG)] = ON_BASE
    fake.objects[("image", "debian")] = BASE
    result = ImageProvider().create(image_props())
    assert fake.runs == [] and result.outs["image_id"] == "sha256:abc"


def test_image_diff_only_cares_about_the_tag() -> None:
    old = {**image_props(), "image_id": "sha256:a", "built": True}
    same = ImageProvider().diff(TAG, old, {**image_props(), "labels": {"x": "y"}})
    assert not same.changes and same.replaces == []
    changed = ImageProvider().diff(TAG, old, {**image_props(), "tag": "localhost/x:1"})
    assert changed.changes and changed.replaces == ["tag"]
    # Built first: deleting first would take the agent's container down before the build.
    assert changed.delete_before_replace is False


# ---------------------------------------------------------------- containers


@pytest.mark.parametrize(("key", "value"), [
    ("image", "localhost/paude-proxy:ffffffffffffffff"),
    ("networks", ["paude-demo-internal"]),
    ("env", {"A": "2"}),
    ("volumes", ["paude-demo-workspace:/workspace"]),
    ("dns", "none"),
])
def test_container_diff_replaces_on_definition_changes(key: str, value: Any) -> None:
    result = ContainerProvider().diff("c", container_props(), container_props(**{key: value}))
    assert result.changes
    assert result.replaces == [key]
    assert result.delete_before_replace


@pytest.mark.parametrize(("key", "value"), [
    ("container_id", "other-id"), ("allowlist", ["example.com"]), ("__provider", "x"),
])
def test_container_diff_ignores_unrelated_keys(key: str, value: Any) -> None:
    olds = {**container_props(), "container_id": "abc", "allowlist": ["pypi.org"]}
    news = {**olds, key: value}
    result = ContainerProvider().diff("c", olds, news)
    assert not result.changes and result.replaces == []


def test_container_read_reports_gone(fake: Podman) -> None:
    assert ContainerProvider().read("paude-demo-proxy", container_props()).id is None


def observed_container(networks: list[str], image: str = TAG) -> dict[str, Any]:
    """podman inspect of a container made from container_props(), on `networks`."""
    return {"Id": "cid", "ImageName": image,
            "NetworkSettings": {"Networks": {n: {} for n in networks}},
            "HostConfig": {"CapDrop": sorted(DEFAULT_CAPS), "SecurityOpt": ["no-new-privileges"],
                           "RestartPolicy": {"Name": "unless-stopped"}},
            "Config": {"Labels": LABELS, "Env": ["A=1", "HOSTNAME=x", "container=podman"]}}


def test_container_read_keeps_declared_networks_when_only_options_differ(fake: Podman) -> None:
    fake.objects[("container", "paude-demo-proxy")] = observed_container(
        ["paude-demo-egress", "paude-demo-internal"])
    props = {**container_props(), "container_id": "cid"}
    result = ContainerProvider().read("paude-demo-proxy", props)
    assert result.id == "paude-demo-proxy"
    assert result.outs["networks"] == props["networks"]
    assert result.outs["container_id"] == "cid"
    assert "container_id" not in result.inputs
    # The refreshed inputs diff clean against the program's declaration.
    assert not ContainerProvider().diff("c", result.inputs, container_props()).changes


def test_container_read_reports_a_missing_network_as_drift(fake: Podman) -> None:
    fake.objects[("container", "paude-demo-proxy")] = observed_container(["paude-demo-egress"])
    result = ContainerProvider().read("paude-demo-proxy", container_props())
    assert result.outs["networks"] == ["paude-demo-egress"]
    diff = ContainerProvider().diff("c", result.inputs, container_props())
    assert diff.replaces == ["networks"]


def test_container_read_reports_an_added_network_as_drift(fake: Podman) -> None:
    fake.objects[("container", "paude-demo-agent")] = observed_container(
        ["paude-demo-internal", "podman"])
    props = container_props(name="paude-demo-agent", networks=["paude-demo-internal"])
    result = ContainerProvider().read("paude-demo-agent", props)
    assert result.outs["networks"] == ["paude-demo-internal", "podman"]


def test_container_read_reports_a_swapped_image(fake: Podman) -> None:
    fake.objects[("container", "paude-demo-proxy")] = observed_container(
        ["paude-demo-egress", "paude-demo-internal"], image="docker.io/library/evil:latest")
    result = ContainerProvider().read("paude-demo-proxy", container_props())
    assert ContainerProvider().diff("c", result.inputs, container_props()).replaces == ["image"]


def test_container_create_runs_and_waits(fake: Podman) -> None:
    result = ContainerProvider().create(container_props())
    # One podman call creates and starts it.
    assert fake.runs == [podman.create_argv(container_props(), start=True)]
    assert fake.runs[0][:3] == ["podman", "run", "--detach"]
    assert result.id == "paude-demo-proxy"
    assert result.outs["container_id"] == "id-of-paude-demo-proxy"


def test_container_create_copies_files_in_before_the_first_start(fake: Podman) -> None:
    props = container_props(copy_in=[["/home/u/.claude", "/home/paude/.claude"]])
    ContainerProvider().create(props)
    assert fake.runs == [
        podman.create_argv(props),
        ["podman", "cp", "/home/u/.claude", "paude-demo-proxy:/home/paude/.claude"],
        ["podman", "start", "paude-demo-proxy"]]
    assert fake.runs[0][:2] == ["podman", "create"]


def test_container_secret_env_travels_in_the_environment_not_argv(
        fake: Podman, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, str]] = []

    def run(argv: Sequence[str], *, check: bool = True, env: Any = None,
            **_kw: Any) -> CommandResult:
        seen.append(dict(env or {}))
        return fake.run(argv, check=check)

    monkeypatch.setattr(resources.proc, "run", run)
    ContainerProvider().create(container_props(secret_env={"ANTHROPIC_API_KEY": "sk-1"}))
    assert seen[0] == {"ANTHROPIC_API_KEY": "sk-1"}
    assert not any("sk-1" in arg for argv in fake.runs for arg in argv)
    assert "ANTHROPIC_API_KEY" in fake.runs[0]


def test_container_create_replaces_its_own_leftover(fake: Podman) -> None:
    fake.objects[("container", "paude-demo-proxy")] = observed_container([])
    ContainerProvider().create(container_props())
    run = podman.create_argv(container_props(), start=True)
    assert fake.runs == [run, ["podman", "rm", "--force", "--time", "1", "paude-demo-proxy"],
                         run]


# ---------------------------------------------------------------- networks


def test_network_create(fake: Podman) -> None:
    def created(argv: list[str]) -> None:
        fake.objects[("network", "paude-demo-internal")] = {
            "internal": True, "dns_enabled": False, "subnets": [{"subnet": "10.89.3.0/24"}],
            "labels": LABELS}

    fake.on_run.append(created)
    result = NetworkProvider().create(network_props())
    assert fake.runs == [podman.network_create_argv("paude-demo-internal", internal=True,
                                                    dns=False, labels=LABELS)]
    assert result.outs["subnet"] == "10.89.3.0/24"


def test_network_read_reports_dns_drift(fake: Podman) -> None:
    fake.objects[("network", "paude-demo-internal")] = {
        "internal": True, "dns_enabled": True, "subnets": [{"subnet": "10.89.3.0/24"}]}
    result = NetworkProvider().read("paude-demo-internal", network_props())
    assert result.outs["dns"] is True
    assert result.inputs["dns"] is True
    diff = NetworkProvider().diff("n", result.inputs, network_props())
    assert diff.changes and diff.replaces == ["dns"]


def test_network_read_reports_lost_isolation(fake: Podman) -> None:
    fake.objects[("network", "paude-demo-internal")] = {"internal": False, "dns_enabled": False}
    result = NetworkProvider().read("paude-demo-internal", network_props())
    assert NetworkProvider().diff("n", result.inputs, network_props()).replaces == ["internal"]


def test_network_read_without_drift(fake: Podman) -> None:
    fake.objects[("network", "paude-demo-internal")] = {
        "internal": True, "dns_enabled": False, "subnets": [{"subnet": "10.89.3.0/24"}]}
    result = NetworkProvider().read("paude-demo-internal", network_props())
    assert not NetworkProvider().diff("n", result.inputs, network_props()).changes


def test_network_read_reports_gone(fake: Podman) -> None:
    assert NetworkProvider().read("paude-demo-internal", network_props()).id is None


# ---------------------------------------------------------------- volumes


def test_volume_diff_ignores_label_changes() -> None:
    olds = {"name": "paude-demo-workspace", "labels": LABELS, "adopted": False}
    news = {"name": "paude-demo-workspace", "labels": {**LABELS, "paude.repository": "/other"}}
    result = VolumeProvider().diff("v", olds, news)
    assert not result.changes and result.replaces == []


def test_volume_diff_replaces_on_a_new_name() -> None:
    result = VolumeProvider().diff("v", {"name": "a", "labels": LABELS},
                                   {"name": "b", "labels": LABELS})
    assert result.changes and result.replaces == ["name"]


def test_volume_create_reattaches_a_kept_workspace(fake: Podman) -> None:
    fake.objects[("volume", "paude-demo-workspace")] = {"Labels": LABELS}
    result = VolumeProvider().create({"name": "paude-demo-workspace", "labels": LABELS})
    assert fake.runs == []
    assert result.outs["adopted"] is True


def test_volume_create(fake: Podman) -> None:
    result = VolumeProvider().create({"name": "paude-demo-workspace", "labels": LABELS})
    assert fake.runs == [podman.volume_create_argv("paude-demo-workspace", labels=LABELS)]
    assert result.outs["adopted"] is False


def test_volume_delete_removes(fake: Podman) -> None:
    VolumeProvider().delete("paude-demo-workspace", {})
    assert fake.runs == [["podman", "volume", "rm", "paude-demo-workspace"]]


def test_image_delete_never_removes(fake: Podman) -> None:
    ImageProvider().delete(TAG, image_props())
    assert fake.runs == []


# ---------------------------------------------------------------- ownership


def test_require_owned_accepts_the_same_session() -> None:
    resources._require_owned({"paude.session": "demo"}, {"name": "n", "labels": LABELS}, "volume")


@pytest.mark.parametrize("found", [{"paude.session": "other"}, {}])
def test_require_owned_refuses_another_session(found: dict[str, str]) -> None:
    with pytest.raises(RuntimeError) as exc:
        resources._require_owned(found, {"name": "paude-demo-workspace", "labels": LABELS},
                                 "volume")
    assert str(exc.value) == (
        "a volume named paude-demo-workspace already exists and does not belong to paude "
        "session demo; remove or rename it, then apply again")


def test_volume_of_another_session_is_never_adopted(fake: Podman) -> None:
    fake.objects[("volume", "paude-demo-workspace")] = {"Labels": {"paude.session": "other"}}
    with pytest.raises(RuntimeError, match="does not belong"):
        VolumeProvider().create({"name": "paude-demo-workspace", "labels": LABELS})
    assert fake.runs == []


def test_container_of_another_session_is_never_removed(fake: Podman) -> None:
    fake.objects[("container", "paude-demo-proxy")] = {"Config": {"Labels": {}}}
    with pytest.raises(RuntimeError, match="does not belong"):
        ContainerProvider().create(container_props())
    # Only the refused create: nothing was removed.
    assert [argv[1] for argv in fake.runs] == ["run"]


def test_network_of_another_session_is_never_adopted(fake: Podman) -> None:
    fake.objects[("network", "paude-demo-internal")] = {"labels": {"paude.session": "x"}}
    with pytest.raises(RuntimeError, match="a network named paude-demo-internal"):
        NetworkProvider().create(network_props())
    # Only the create podman refused: nothing was removed or changed.
    assert [argv[1:3] for argv in fake.runs] == [["network", "create"]]


def test_a_network_a_killed_destroy_left_is_adopted(fake: Podman) -> None:
    fake.objects[("network", "paude-demo-internal")] = {
        "internal": True, "dns_enabled": False, "subnets": [{"subnet": "10.89.3.0/24"}],
        "labels": LABELS}
    result = NetworkProvider().create(network_props())
    assert result.outs["subnet"] == "10.89.3.0/24"
    assert [argv[1:3] for argv in fake.runs] == [["network", "create"]]


@pytest.mark.parametrize(("role", "seconds"), [("proxy", "0"), ("gateway", "0"), ("agent", "1")])
def test_container_delete_gives_only_the_agent_time_to_stop(fake: Podman, role: str,
                                                            seconds: str) -> None:
    # squid would wait out its shutdown_lifetime: the proxy is killed at once.
    ContainerProvider().delete(f"paude-demo-{role}",
                               container_props(labels={**LABELS, "paude.role": role}))
    assert fake.runs == [["podman", "rm", "--force", "--time", seconds, f"paude-demo-{role}"]]


def test_container_create_failing_otherwise_is_reported_not_retried(
        fake: Podman, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(argv: Sequence[str], **_kw: Any) -> CommandResult:
        fake.runs.append(list(argv))
        return CommandResult(tuple(argv), 125, "", "Error: image not known")

    monkeypatch.setattr(resources.proc, "run", refuse)
    with pytest.raises(Exception, match="image not known"):
        ContainerProvider().create(container_props())
    assert len(fake.runs) == 1


def test_a_network_made_meanwhile_by_a_killed_runs_podman_is_adopted(fake: Podman) -> None:
    # The killed run's `podman network create` finished on its own after the inspect.
    def made_by_the_other(argv: list[str]) -> None:
        fake.objects[("network", "paude-demo-internal")] = {
            "internal": True, "dns_enabled": False, "subnets": [{"subnet": "10.89.3.0/24"}],
            "labels": LABELS}

    fake.on_run.append(made_by_the_other)
    real_run = fake.run

    def refused(argv: Sequence[str], **kw: Any) -> CommandResult:
        real_run(argv, **kw)
        return CommandResult(tuple(argv), 125, "", "Error: network name paude-demo-internal "
                             "already used: network already exists")

    resources.proc.run = refused  # type: ignore[assignment]  # undone by monkeypatch
    assert NetworkProvider().create(network_props()).outs["subnet"] == "10.89.3.0/24"


def test_a_network_create_refused_for_another_reason_still_fails(
        fake: Podman, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resources.proc, "run", lambda argv, **_kw: CommandResult(
        tuple(argv), 125, "", "Error: subnet 10.89.3.0/24 is already used on the host"))
    with pytest.raises(Exception, match="already used on the host"):
        NetworkProvider().create(network_props())


def test_a_volume_made_meanwhile_is_adopted_only_when_it_is_the_sessions(
        fake: Podman, monkeypatch: pytest.MonkeyPatch) -> None:
    owner = {"labels": LABELS}

    def refused(argv: Sequence[str], **_kw: Any) -> CommandResult:
        fake.objects[("volume", "paude-demo-workspace")] = {"Labels": owner["labels"]}
        return CommandResult(tuple(argv), 125, "", "Error: volume with name "
                             "paude-demo-workspace already exists: volume already exists")

    monkeypatch.setattr(resources.proc, "run", refused)
    props = {"name": "paude-demo-workspace", "labels": LABELS}
    assert VolumeProvider().create(props).outs["adopted"] is True
    # Control: the same race with a volume of someone else's is refused, not adopted.
    fake.objects.clear()
    owner["labels"] = {"paude.session": "other"}
    with pytest.raises(RuntimeError, match="does not belong"):
        VolumeProvider().create(props)


def test_every_podman_change_a_provider_makes_finishes_alone(
        fake: Podman, monkeypatch: pytest.MonkeyPatch) -> None:
    # A kill of paude must not stop podman inside a step it cannot undo (proc.run).
    alone: dict[str, bool] = {}
    real_run = fake.run

    def run(argv: Sequence[str], **kw: Any) -> CommandResult:
        alone[" ".join(argv[1:3])] = bool(kw.get("finish_alone"))
        return real_run(argv, **kw)

    monkeypatch.setattr(resources.proc, "run", run)
    fake.objects[("container", "paude-demo-proxy")] = {"Config": {"Labels": LABELS}}
    ContainerProvider().create(container_props(copy_in=[["/tmp/s", "/home/s"]]))
    ContainerProvider().delete("paude-demo-proxy", container_props())
    NetworkProvider().create(network_props())
    NetworkProvider().delete("paude-demo-internal", network_props())
    VolumeProvider().create({"name": "paude-demo-workspace", "labels": LABELS})
    VolumeProvider().delete("paude-demo-workspace", {})
    assert alone and all(alone.values()), alone
    assert {"create --name", "rm --force", "cp /tmp/s", "start paude-demo-proxy",
            "network create", "network rm", "volume create", "volume rm"} <= set(alone)
