"""setup / venv / containerEnv / features: the schema, what the container is told, what
the host reads back, and the feature build files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from paude.agent_env import RESERVED, reserved_reason
from paude.errors import ConfigError, PaudeError
from paude.models import PaudeFile, Session, resolve
from paude.proc import CommandResult
from paude.sections import ImageConfig, WorkspaceSetup
from paude.stacks.podman import features
from paude.stacks.podman.images import agent_build
from paude.stacks.podman.program import TRUST_ENV, agent_commands
from paude.workspace_setup import SetupStatus, clean, from_answer, parse_state


def session_of(spec: dict[str, object], fallback: WorkspaceSetup | None = None) -> Session:
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


def test_setup_state_from_an_exit_code_and_output() -> None:
    assert from_answer(0, "state=running\nexit=\nchanged=no\n", "s") == SetupStatus("running")
    old = from_answer(127, "sh: 1: paude-setup: not found", "s")
    assert old.state == "unknown" and "`paude apply s`" in old.detail
    assert from_answer(1, "", "s").detail == "the agent container did not answer"


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


class FakeBackend:
    """Answers paude-setup's commands as a container would; records what ran."""

    def __init__(self, states: list[str], log: str = "") -> None:
        self.states, self.log = states, log
        self.ran: list[list[str]] = []

    def exec_argv(self, *, session: str, argv: list[str], **_kw: object) -> list[str]:
        self.ran.append(list(argv))
        return list(argv)


def fake_run(backend: FakeBackend) -> Callable[..., CommandResult]:
    def run(argv: list[str], **_kw: object) -> CommandResult:
        if argv[:2] == ["paude-setup", "state"]:
            state = backend.states.pop(0) if len(backend.states) > 1 else backend.states[0]
            return CommandResult(tuple(argv), 0, state, "")
        if argv[0] == "tail":
            return CommandResult(tuple(argv), 0, backend.log, "")
        return CommandResult(tuple(argv), 0, "", "")
    return run


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[FakeBackend], None]:
    from paude import lifecycle, proc, workspace_setup

    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)

    def install(backend: FakeBackend) -> None:
        monkeypatch.setattr(workspace_setup, "running_backend", lambda name, cwd=None: backend)
        monkeypatch.setattr(lifecycle, "resolve_name", lambda name, cwd=None: name or "demo")
        monkeypatch.setattr(proc, "run", fake_run(backend))
        monkeypatch.setattr(workspace_setup.time, "sleep", lambda _s: None)
    return install


def test_paude_setup_shows_state_and_a_cleaned_log(cli: Callable[[FakeBackend], None],
        capsys: pytest.CaptureFixture[str]) -> None:
    from paude.cli import main

    cli(FakeBackend(["state=done\nexit=0\nchanged=no\n"], "one\n\x1b[2Jtwo\n"))
    assert main(["setup", "demo"]) == 0
    assert capsys.readouterr().out == (
        "Setup of session demo: done; log /paude/setup/log (tmux window `setup`)\n"
        "  | one\n"
        "  | ?[2Jtwo\n")


def test_paude_setup_rerun_waits_and_fails_with_the_setup(cli: Callable[[FakeBackend], None],
        capsys: pytest.CaptureFixture[str]) -> None:
    from paude.cli import main

    backend = FakeBackend(["state=done\nexit=0\n", "state=running\nexit=\n",
                           "state=failed\nexit=2\nchanged=no\n"], "boom\n")
    cli(backend)
    assert main(["setup", "demo", "--rerun", "--wait"]) == 1
    assert ["paude-setup", "start"] in backend.ran
    assert capsys.readouterr().out == (
        "Setup of session demo: FAILED (exit 2); log /paude/setup/log (tmux window `setup`)\n"
        "  | boom\n")


def test_paude_setup_rerun_without_a_setup_is_an_error(cli: Callable[[FakeBackend], None],
        capsys: pytest.CaptureFixture[str]) -> None:
    from paude.cli import main

    backend = FakeBackend(["state=none\nexit=\nchanged=no\n"])
    cli(backend)
    assert main(["setup", "demo", "--rerun"]) == 1
    assert ["paude-setup", "start"] not in backend.ran
    assert "session demo has no setup or venv to run" in capsys.readouterr().err


def test_the_cluster_agent_gets_the_setup_too(tmp_path: Path) -> None:
    from paude.stacks.openshift.program import make_program
    from tests.unit.pulumi_mocks import RecordingMocks, run_pulumi
    from tests.unit.test_k8s_manifests import manifests

    session = session_of({"backend": "openshift", "setup": "make deps", "venv": "auto"})
    run = run_pulumi(make_program(session, str(tmp_path)), RecordingMocks())
    agent = next(d for d in manifests(run) if d["kind"] == "StatefulSet")
    env = {e["name"]: e.get("value") for e in agent["spec"]["template"]["spec"]["containers"][0]
           ["env"]}
    assert (env["PAUDE_SETUP"], env["PAUDE_VENV"]) == ("make deps", "auto")


def test_features_need_a_local_build_on_a_cluster(tmp_path: Path) -> None:
    from paude.stacks.openshift.program import make_program
    from tests.unit.pulumi_mocks import RecordingMocks, run_pulumi

    feature(tmp_path, {})
    session = session_of({"backend": "openshift",
                          "image": {"features": {"./.devcontainer/tool": True}}})
    with pytest.raises(Exception) as caught:
        run_pulumi(make_program(session, str(tmp_path)), RecordingMocks())
    inner: BaseException | None = caught.value
    while inner is not None and not isinstance(inner, ConfigError):
        inner = inner.__cause__ or inner.__context__
    assert isinstance(inner, ConfigError) and "openshift.image_registry" in inner.render()
    # Control: with a registry, paude builds locally and the feature is a build input.
    pushed = session_of({"backend": "openshift", "openshift": {"image_registry": "reg:5000/x"},
                         "image": {"features": {"./.devcontainer/tool": True}}})
    run = run_pulumi(make_program(pushed, str(tmp_path)), RecordingMocks())
    assert "Containerfile.features" in run.inputs("agent-image")["files"]


def test_paude_setup_of_a_session_not_applied_here(monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from paude.cli import main

    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert main(["setup", "nosuch"]) == 1
    assert "session nosuch is not applied on this machine" in capsys.readouterr().err


@pytest.mark.parametrize(("answer", "expected"), [
    ("state=running\nexit=\nchanged=no\n", "setup is running"),
    ("state=failed\nexit=4\nchanged=no\n", "setup FAILED (exit 4)"),
    ("state=done\nexit=0\nchanged=yes\n", "changed since the setup ran"),
    ("state=done\nexit=0\nchanged=no\n", None),
    ("state=pending\nexit=\nchanged=no\n", None),
])
def test_connect_notice(monkeypatch: pytest.MonkeyPatch, answer: str,
                        expected: str | None) -> None:
    from paude import proc, workspace_setup
    from paude.index import IndexEntry

    backend = FakeBackend([answer])
    monkeypatch.setattr(proc, "run", fake_run(backend))
    monkeypatch.setattr(workspace_setup.index, "read",
                        lambda name: IndexEntry(name, "podman", "/r", 0.0))
    monkeypatch.setattr(workspace_setup, "get_backend", lambda *_a: backend)
    found = workspace_setup.notice("demo")
    assert (found is None) if expected is None else (found is not None and expected in found)


def test_status_shows_the_setup(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    from paude import overview
    from paude.cli import main

    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)

    def status(name: str, **_kw: object) -> overview.SessionStatus:
        return overview.SessionStatus(name, "podman", "running", True, True, 0,
                                       setup=SetupStatus("failed", 2, changed=True))

    monkeypatch.setattr(overview, "status", status)
    assert main(["status", "demo"]) == 0
    assert ("  setup:             FAILED (exit 2); log /paude/setup/log (tmux window `setup`); "
            "setup or venv changed since: `paude setup demo --rerun`\n"
            ) in capsys.readouterr().out
    assert main(["status", "demo", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["setup"] == {
        "state": "failed", "exit_code": 2, "changed": True, "log": "/paude/setup/log",
        "detail": None, "tail": []}


def test_a_feature_folder_is_bounded(tmp_path: Path) -> None:
    folder = feature(tmp_path, {})
    session = session_of({"image": {"features": {"./.devcontainer/tool": True}}})
    (folder / "big.txt").write_text("x" * (1 << 20))
    with pytest.raises(ConfigError, match="exceed 1 MiB"):
        features.build_files(session, tmp_path)
    (folder / "big.txt").unlink()
    for i in range(500):
        (folder / f"f{i}").write_text("")
    with pytest.raises(ConfigError, match="more than 500 files"):
        features.build_files(session, tmp_path)


def test_cp_never_carries_the_hosts_venv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    import io
    import tarfile

    from paude import copy, proc
    from paude.backends.podman import PodmanBackend

    sent: list[bytes] = []

    def run_bytes(argv: list[str], *, input: bytes = b"", **_: object) -> bytes:
        sent.append(input)
        return b""

    monkeypatch.setattr(proc, "run_bytes", run_bytes)
    monkeypatch.setattr(proc, "run", lambda argv, **_: CommandResult(tuple(argv), 0, "new\n",
                                                                     ""))
    project = tmp_path / "project"
    (project / ".venv" / "bin").mkdir(parents=True)
    (project / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (project / "sub" / "env").mkdir(parents=True)
    (project / "sub" / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (project / "venv-like").mkdir()  # control: a folder without pyvenv.cfg is copied
    (project / "venv-like" / "a.txt").write_text("a\n")
    copied = copy._copy_in(PodmanBackend(), "demo", project, "/workspace/p", force=False)
    assert copied.skipped_venvs == (".venv", "sub/env")
    with tarfile.open(fileobj=io.BytesIO(sent[-1])) as tar:
        assert sorted(tar.getnames()) == ["p", "p/sub", "p/venv-like", "p/venv-like/a.txt"]
    with pytest.raises(PaudeError, match="is a Python virtual environment of this machine"):
        copy._copy_in(PodmanBackend(), "demo", project / ".venv", "/workspace/v", force=False)
