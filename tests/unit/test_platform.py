"""--platform / image.platform: written by create, part of the image's hash (a change
rebuilds it, and the plan says why), passed to podman build, and refused where this machine
can neither build nor run it."""

from __future__ import annotations

from pathlib import Path

import pytest

from paude import arch
from paude.definition import CreateFlags, plan_definition
from paude.errors import PaudeError
from paude.models import PaudeFile, resolve
from paude.results import ResourceChange
from paude.summary import summarize
from stacks.podman import podman
from stacks.podman.images import agent_build, image_props

OTHER = "linux/arm64" if arch.host_platform() == "linux/amd64" else "linux/amd64"


def session(platform: str | None = None):  # type: ignore[no-untyped-def]
    image = {"platform": platform} if platform else {}
    return resolve(PaudeFile.model_validate({"sessions": {"demo": {"image": image}}}), "demo")


def test_the_platform_is_a_build_input() -> None:
    plain, host, other = (agent_build(session(p)) for p in (None, arch.host_platform(), OTHER))
    assert len({plain.tag, host.tag, other.tag}) == 3
    assert agent_build(session()).tag == plain.tag  # unset: tags made before it hold
    assert image_props(other)["platform"] == OTHER and "platform" not in image_props(plain)


def test_podman_build_gets_the_platform() -> None:
    argv = podman.build_argv("t", "/ctx", build_args={}, labels={}, platform="linux/arm64")
    assert argv[argv.index("--platform") + 1] == "linux/arm64"
    assert "--platform" not in podman.build_argv("t", "/ctx", build_args={}, labels={})


def test_the_plan_says_the_platform_changed() -> None:
    image = ResourceChange("agent-image", "podman:Image", "replace", replace_keys=("tag",),
                           old_inputs={"files": {"Containerfile": "FROM a\n"}},
                           new_inputs={"files": {"Containerfile": "FROM a\n"},
                                       "platform": "linux/arm64"})
    (item,) = [i for i in summarize((image,), new_session=False) if i.kind == "image-rebuilt"]
    assert item.details == ("platform: the host \u2192 linux/arm64 (image.platform)",)


def test_another_platform_needs_a_registered_emulator(tmp_path: Path) -> None:
    assert arch.unavailable(None, tmp_path) is None
    assert arch.unavailable(arch.host_platform(), tmp_path) is None
    why = arch.unavailable(OTHER, tmp_path)
    assert why is not None and "qemu-user-static" in why and OTHER in why
    emulator = "qemu-aarch64" if OTHER == "linux/arm64" else "qemu-x86_64"
    (tmp_path / emulator).write_text("disabled\n")
    assert arch.unavailable(OTHER, tmp_path) is not None
    (tmp_path / emulator).write_text("enabled\ninterpreter /usr/bin/qemu\n")  # control
    assert arch.unavailable(OTHER, tmp_path) is None


def test_the_image_build_refuses_before_building(monkeypatch: pytest.MonkeyPatch) -> None:
    from stacks.podman import resources

    monkeypatch.setattr(podman, "inspect", lambda kind, name: None)
    monkeypatch.setattr(arch, "emulated", lambda wanted, binfmt=arch.BINFMT: False)
    built: list[object] = []
    monkeypatch.setattr(resources, "_build", lambda argv, props: built.append(argv))
    with pytest.raises(RuntimeError, match="no emulator for it is registered"):
        resources.ImageProvider().create({"tag": "localhost/x:1", "files": {},
                                          "platform": OTHER})
    assert built == []


def test_create_writes_the_platform(tmp_path: Path) -> None:
    (tmp_path / "paude.yaml").write_text("version: 1\nsessions: {}\n")
    planned = plan_definition(tmp_path, "demo", CreateFlags(platform="linux/arm64"))
    assert planned.text == "version: 1\nsessions:\n  demo: {image: {platform: linux/arm64}}\n"


def test_create_refuses_a_platform_this_machine_cannot_run(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from paude import lifecycle
    from paude.cli import main

    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "paude.yaml").write_text("version: 1\nsessions: {}\n")
    monkeypatch.setattr(arch, "emulated", lambda wanted, binfmt=arch.BINFMT: False)
    calls: list[object] = []

    def reached(*args: object, **kwargs: object) -> None:
        calls.append(kwargs)
        raise PaudeError("the service was reached")

    monkeypatch.setattr(lifecycle, "create", reached)
    assert main(["create", "demo", "--platform", OTHER]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: --platform {OTHER}: the image platform {OTHER} is not "
                          "this machine's")
    assert calls == [] and "platform" not in (tmp_path / "paude.yaml").read_text()
    # The host's own platform goes through to the service (which writes and applies).
    assert main(["create", "demo", "--platform", str(arch.host_platform())]) == 1
    assert "the service was reached" in capsys.readouterr().err and len(calls) == 1
