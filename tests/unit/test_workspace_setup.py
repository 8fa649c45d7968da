"""setup / venv / containerEnv / features: the schema, what the container is told, what
the host reads back, and the feature build files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from paude.agent_env import RESERVED, reserved_reason
from paude.errors import ConfigError
from paude.models import PaudeFile, resolve
from paude.sections import ImageConfig, WorkspaceSetup
from paude.stacks.podman import features
from paude.stacks.podman.images import agent_build
from paude.stacks.podman.program import TRUST_ENV, agent_commands
from paude.workspace_setup import SetupStatus, clean, parse_state


def session_of(spec: dict[str, object], fallback: WorkspaceSetup | None = None):  # type: ignore[no-untyped-def]
    return resolve(PaudeFile.model_validate({"sessions": {"demo": spec}}), "demo",
                   setup_fallback=fallback)


def test_setup_and_venv_reach_the_agent_as_text_only() -> None:
    session = session_of({"setup": "make deps-from-repo", "venv": ["a", "b/c"]})
    env = agent_commands(session)
    assert (env["PAUDE_SETUP"], env["PAUDE_VENV"]) == ("make deps-from-repo",
                                                        "a:b/c")
    build = agent_build(session)
    # Nothing of the setup command is in the image build: it runs after the push.
    assert not any("deps-from-repo" in text for text in build.files.values())
    assert "python3-venv" in build.files["Containerfile"]
    plain = session_of({})
    assert "PAUDE_SETUP" not in agent_commands(plain) and "PAUDE_VENV" not in agent_commands(
        plain)
    assert "python3-venv" not in agent_build(plain).files["Containerfile"]


def test_paude_yaml_setup_wins_over_the_json_files() -> None:
    fallback = WorkspaceSetup(setup="from json", venv="auto")
    assert (session_of({}, fallback).setup, session_of({}, fallback).venv) == (
        "from json", "auto")
    assert session_of({"setup": "mine", "venv": "none"}, fallback).setup == "mine"
    assert session_of({"venv": "none"}, fallback).venv == "none"


@pytest.mark.parametrize("venv", [[".git/x"], ["../out"], ["/abs"], ["a b"], ["a:b"], ["."], [],
                                  "yes"])
def test_bad_venv_paths_are_refused(venv: object) -> None:
    with pytest.raises(ValidationError):
        WorkspaceSetup.model_validate({"venv": venv})


def test_empty_setup_is_refused() -> None:
    with pytest.raises(ValidationError, match="the setup command is empty"):
        WorkspaceSetup.model_validate({"setup": "  "})


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy", "NO_PROXY", "SSL_CERT_FILE",
                                  "NODE_EXTRA_CA_CERTS", "PAUDE_AGENT_CMD", "paude_x",
                                  "ANTHROPIC_BASE_URL", "CLAUDE_CODE_USE_VERTEX"])
def test_container_env_cannot_set_paudes_variables(name: str) -> None:
    with pytest.raises(ValidationError, match=f"{name} is set by paude"):
        ImageConfig.model_validate({"env": {name: "x"}})
    ImageConfig.model_validate({"env": {"MY_" + name: "x"}})  # control


def test_every_variable_paude_sets_for_trust_is_reserved() -> None:
    assert set(TRUST_ENV) <= RESERVED
    assert reserved_reason("LANG") is None


def test_setup_state_from_the_container_is_checked() -> None:
    assert parse_state("state=done\nexit=0\nchanged=no\n") == SetupStatus("done", 0)
    assert parse_state("state=failed\nexit=3\nchanged=yes\n").changed
    assert parse_state("state=\x1b[31mdone\nexit=0\n").state == "unknown"
    assert parse_state("state=done\nexit=0; rm -rf /\n").state == "unknown"
    assert clean("ok\x1b]52;c;AAAA\x07\tx\n") == "ok?]52;c;AAAA?\tx\n"


def feature(tmp_path: Path, options: dict[str, object]) -> Path:
    folder = tmp_path / ".devcontainer" / "tool"
    folder.mkdir(parents=True)
    manifest = json.dumps({"id": "tool", "options": options})
    (folder / "devcontainer-feature.json").write_text(manifest)
    (folder / "install.sh").write_text("#!/bin/sh\necho installing\n")
    return folder


def test_feature_options_become_upper_cased_variables(tmp_path: Path) -> None:
    feature(tmp_path, {"version": {"default": "1"}, "install-tools": {"default": True},
                       "2x": {"default": "a b"}})
    session = session_of({"image": {"features": {"./.devcontainer/tool": "2.0"}}})
    found, files = features.build_files(session, tmp_path)
    assert [f.ref for f in found] == ["./.devcontainer/tool"]
    env = files["features/0/devcontainer-features.env"]
    assert "VERSION=2.0\n" in env and "INSTALL_TOOLS=true\n" in env and "_2X='a b'\n" in env
    assert "_REMOTE_USER=paude\n" in env
    assert "RUN cd /tmp/paude-feature" in files["Containerfile.features"]
    before = agent_build(session, None, files).tag
    (tmp_path / ".devcontainer" / "tool" / "install.sh").write_text("#!/bin/sh\necho v2\n")
    assert agent_build(session, None, features.build_files(session, tmp_path)[1]).tag != before


def test_unknown_feature_option_and_oci_references_are_refused(tmp_path: Path) -> None:
    feature(tmp_path, {"version": {"default": "1"}})
    session = session_of({"image": {"features": {"./.devcontainer/tool": {"colour": "red"}}}})
    with pytest.raises(ConfigError, match="unknown option"):
        features.build_files(session, tmp_path)
    oci = session_of({"image": {"features": {"ghcr.io/devcontainers/features/node:1": {}}}})
    with pytest.raises(ConfigError) as exc:
        features.build_files(oci, tmp_path)
    assert "copy the feature's folder" in exc.value.render()


def test_a_feature_symlink_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    folder = feature(tmp_path / "repo", {})
    (folder / "secret").symlink_to("/etc/passwd")
    session = session_of({"image": {"features": {"./.devcontainer/tool": True}}})
    with pytest.raises(ConfigError, match="secret is a symlink"):
        features.build_files(session, tmp_path / "repo")
    (folder / "secret").unlink()
    assert features.build_files(session, tmp_path / "repo")[0]  # control
