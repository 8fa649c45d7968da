"""Machine settings: the proxy's base comes from $PAUDE_HOME/config.yaml, never paude.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from paude.config import session_from
from paude.errors import ConfigError
from paude.fields import DEFAULT_BASE_IMAGE
from paude.models import PaudeFile
from paude.stacks.podman.images import build_allowlist, proxy_build


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def definition(**session: object) -> PaudeFile:
    return PaudeFile.model_validate({"version": 1, "sessions": {"demo": session}})


def test_the_repository_cannot_choose_the_proxy_base(home: Path, tmp_path: Path) -> None:
    (home / "config.yaml").write_text("version: 1\nproxy: {base: localhost/trusted:1}\n")
    session, warnings = session_from(
        definition(proxy={"base": "evil.example/squid:1"}, image={"base": "localhost/a:1"}),
        tmp_path, "demo")
    assert session.proxy.base == "localhost/trusted:1"
    assert "FROM localhost/trusted:1" in proxy_build(session).files["Containerfile"]
    assert any("proxy.base is ignored" in w for w in warnings)
    # The agent's base stays the repository's choice.
    assert session.image.base == "localhost/a:1"


def test_without_machine_settings_the_built_in_base(home: Path, tmp_path: Path) -> None:
    session, warnings = session_from(definition(image={"base": "localhost/a:1"}), tmp_path,
                                     "demo")
    assert session.proxy.base == DEFAULT_BASE_IMAGE and warnings == []


def test_machine_base_is_the_default_under_paude_yaml(home: Path, tmp_path: Path) -> None:
    (home / "config.yaml").write_text("version: 1\nimage: {base: localhost/mirror:1}\n")
    session, _ = session_from(definition(), tmp_path, "demo")
    assert session.image.base == session.proxy.base == "localhost/mirror:1"
    session, _ = session_from(definition(image={"base": "localhost/mine:2"}), tmp_path, "demo")
    assert session.image.base == "localhost/mine:2"


def test_a_bad_machine_file_names_its_line(home: Path, tmp_path: Path) -> None:
    (home / "config.yaml").write_text("version: 1\nproxy:\n  bsae: x\n")
    with pytest.raises(ConfigError) as exc:
        session_from(definition(), tmp_path, "demo")
    assert "config.yaml" in str(exc.value) and "proxy.bsae" in str(exc.value)


def test_build_allowlist_default_and_explicit(home: Path, tmp_path: Path) -> None:
    session, _ = session_from(definition(allowed_domains=["github"]), tmp_path, "demo")
    default = build_allowlist(session).domains
    assert "pypi.org" in default and "deb.debian.org" in default
    assert "github.com" not in default  # the session's allowlist is not the build's
    session, _ = session_from(definition(image={"build_domains": ["github"]}), tmp_path,
                              "demo")
    explicit = build_allowlist(session).domains
    assert "github.com" in explicit and "pypi.org" not in explicit
    assert "deb.debian.org" in explicit


def test_the_repository_cannot_choose_the_state_backend(home: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from paude import machine

    monkeypatch.delenv("PAUDE_STATE_BACKEND", raising=False)
    definition_file = tmp_path / "paude.yaml"
    definition_file.write_text("version: 1\nstate:\n  backend: https://attacker.example\n")
    with pytest.raises(ConfigError) as exc:
        machine.state_backend("https://attacker.example", definition_file)
    text = str(exc.value.render())
    assert f"{definition_file}:3: state.backend" in text and "config.yaml" in text
    # Controls: no declaration is local state; a declaration matching the machine's is fine;
    # PAUDE_STATE_BACKEND is the user's explicit choice.
    assert machine.state_backend(None, definition_file) is None
    (home / "config.yaml").write_text("version: 1\nstate: {backend: 's3://team/paude'}\n")
    assert machine.state_backend("s3://team/paude", definition_file) == "s3://team/paude"
    monkeypatch.setenv("PAUDE_STATE_BACKEND", "file:///tmp/x")
    assert machine.state_backend("https://attacker.example", definition_file) == "file:///tmp/x"


def test_a_paude_yaml_linked_out_of_the_repository_is_refused(home: Path,
                                                              tmp_path: Path) -> None:
    from paude.config import load_paude_file

    secret = tmp_path / "credentials.yaml"
    secret.write_text("version: 1\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "paude.yaml").symlink_to(secret)
    with pytest.raises(ConfigError) as exc:
        load_paude_file(repo / "paude.yaml")
    assert "outside the repository" in str(exc.value.render())
    # Control: a link inside the repository is read.
    (repo / "paude.yaml").unlink()
    (repo / "defs.yaml").write_text("version: 1\n")
    (repo / "paude.yaml").symlink_to(repo / "defs.yaml")
    assert load_paude_file(repo / "paude.yaml").version == 1
