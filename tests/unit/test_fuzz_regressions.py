"""Inputs the fuzz targets (tests/fuzz) found paude mishandling: each is now refused with a
paude error naming the file and field, and each refusal has a control showing the ordinary
case still works."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from paude import inspection, lifecycle, sessions
from paude.config import load_paude_file, save_paude_file, session_from
from paude.definition import CreateFlags
from paude.errors import ConfigError, PaudeError
from paude.image_sources import _strip_jsonc, load_image_source
from paude.models import AgentConfig, PaudeFile
from paude.policies.origins import inside
from paude.sessions import check_name
from paude.stacks.podman.buildcheck import dockerfile_problems
from paude.stacks.podman.images import dockerfile_build
from tests.certs import CERT_A


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def refused(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        load_paude_file(path)
    return exc.value


# ---------------------------------------------------------------- YAML: aliases, depth, text

ALIAS_BOMB = "sessions:\n  demo:\n    image:\n      features:\n" + "".join(
    f"        l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10) if i else ', '.join(['x'] * 10)}]\n"
    for i in range(9))


def test_an_alias_bomb_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    started = time.monotonic()
    err = refused(write(tmp_path / "paude.yaml", ALIAS_BOMB))
    assert time.monotonic() - started < 5  # 10^9 nodes once expanded: minutes and GBs
    [problem] = err.problems
    assert problem.path == "(file)"
    assert "more than 100000 nodes once aliases are expanded" in problem.message
    assert problem.line is not None and problem.line > 4


def test_anchors_and_merge_keys_still_work(tmp_path: Path) -> None:
    file = load_paude_file(write(tmp_path / "paude.yaml", (
        "defaults: &d {yolo: true}\nsessions:\n  demo: *d\n  other: {<<: *d, backend: podman}\n")))
    assert file.sessions["demo"].yolo and file.sessions["other"].yolo


@pytest.mark.parametrize("depth", [65, 5000])
def test_deep_yaml_nesting_is_refused_not_a_recursion_error(tmp_path: Path, depth: int) -> None:
    text = ("sessions:\n  demo:\n    image:\n      features: {a: " + "[" * depth + "]" * depth
            + "}\n")
    [problem] = refused(write(tmp_path / "paude.yaml", text)).problems
    assert "nested more than 64 levels deep" in problem.message and problem.line == 4


def test_moderate_nesting_is_accepted(tmp_path: Path) -> None:
    text = "sessions:\n  demo:\n    image:\n      features: {a: " + "[" * 50 + "]" * 50 + "}\n"
    assert "demo" in load_paude_file(write(tmp_path / "paude.yaml", text)).sessions


def test_an_escaped_lone_surrogate_is_refused(tmp_path: Path) -> None:
    # It would load, then fail to be written anywhere (paude.yaml, a build file, a terminal).
    err = refused(write(tmp_path / "paude.yaml",
                        'sessions:\n  demo:\n    image: {setup: "\\udcff"}\n'))
    assert "lone surrogate" in err.problems[0].message and err.problems[0].line == 3
    control = load_paude_file(write(tmp_path / "ok.yaml", 'sessions:\n  demo:\n    image: '
                                    '{setup: "caf\\u00e9 \\U0001F600"}\n'))
    assert control.sessions["demo"].image is not None
    assert control.sessions["demo"].image.setup == "caf\u00e9 \U0001f600"


def test_an_empty_key_is_named_visibly(tmp_path: Path) -> None:
    err = refused(write(tmp_path / "paude.yaml", "sessions: {}\n'': 1\n"))
    assert [(p.path, p.line) for p in err.problems] == [("''", 2)]


# ---------------------------------------------------------------- names ending in a newline


@pytest.mark.parametrize("sessions", [
    {"demo\n": {}},
    {"demo": {"allowed_domains": ["example.com\n"]}},
    {"demo": {"image": {"packages": ["gcc\n"]}}},
    {"demo": {"image": {"env": {"A\n": "1"}}}},
    {"demo": {"openshift": {"pvc_size": "10Gi\n"}}},
    {"demo": {"openshift": {"namespace": "team\n"}}},
])
def test_a_trailing_newline_is_refused(tmp_path: Path, sessions: dict[str, object]) -> None:
    # `$` matches before a final newline: "demo\n" passed as a name, "gcc\n" as a package
    # (and split the Containerfile's RUN line).
    text = json.dumps({"sessions": sessions})
    [problem] = refused(write(tmp_path / "paude.yaml", text)).problems
    assert problem.path.startswith("sessions.")
    control = text.replace("\\n", "")
    assert load_paude_file(write(tmp_path / "ok.yaml", control)).sessions


def test_a_command_line_name_ending_in_a_newline_is_refused() -> None:
    with pytest.raises(ConfigError):
        check_name("demo\n")
    assert check_name("demo") == "demo"


# ---------------------------------------------------------------- host paths


def test_a_ca_file_under_an_unknown_users_home_is_refused(tmp_path: Path) -> None:
    err = refused(write(tmp_path / "paude.yaml", (
        "sessions:\n  demo:\n    image: {ca_certificates: ['~nosuchuser-paude/ca.pem']}\n")))
    [problem] = err.problems
    assert problem.path == "sessions.demo.image.ca_certificates.0"
    assert "no home folder is known for '~nosuchuser-paude'" in problem.message
    ca = write(tmp_path / "ca.pem", CERT_A)
    assert load_paude_file(write(tmp_path / "ok.yaml", (
        f"sessions:\n  demo:\n    image: {{ca_certificates: ['{ca}']}}\n")))


# ---------------------------------------------------------------- paude.json / devcontainer.json


@pytest.mark.parametrize("depth", [65, 100_000])
def test_deep_json_is_refused_not_a_recursion_error(tmp_path: Path, depth: int) -> None:
    write(tmp_path / "paude.json", '{"features": {"a": ' + "[" * depth + "]" * depth + "}}")
    with pytest.raises(ConfigError) as exc:
        load_image_source(tmp_path)
    assert "unusable JSON: nested more than 64 levels deep" in exc.value.render()


def test_an_escaped_surrogate_in_json_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "paude.json", '{"setup": "\\ud800"}')
    with pytest.raises(ConfigError) as exc:
        load_image_source(tmp_path)
    assert "lone surrogate" in exc.value.render()
    write(tmp_path / "paude.json", '{"setup": "caf\\u00e9"}')
    found = load_image_source(tmp_path)
    assert found is not None and found.setup is not None
    assert found.setup.setup == "caf\u00e9"


@pytest.mark.parametrize("text", ["/* " * 100_000, '"\\' * 100_000])
def test_jsonc_stripping_takes_linear_time(tmp_path: Path, text: str) -> None:
    # The regular expressions this replaced took about 15 s for 100 KB of either.
    write(tmp_path / ".devcontainer.json", text)
    started = time.monotonic()
    with pytest.raises(ConfigError):
        load_image_source(tmp_path)
    assert time.monotonic() - started < 2


def test_jsonc_comments_and_trailing_commas_outside_strings_only() -> None:
    text = ('{"a": "// kept", "b": "/* kept */", // gone\n "c": [1, 2, /* gone */ ],\n'
            ' "d": "\\" // kept",}')
    assert json.loads(_strip_jsonc(text)) == {"a": "// kept", "b": "/* kept */", "c": [1, 2],
                                              "d": '" // kept'}
    assert _strip_jsonc('{"a": 1, // c\n}').count("\n") == 1  # error lines stay right


# ---------------------------------------------------------------- Dockerfiles and symlinks


def test_a_backslash_before_a_comment_is_not_an_index_error() -> None:
    assert dockerfile_problems("\\\n# comment\nFROM x\n") == []
    [problem] = dockerfile_problems("\\\n# comment\nADD http://example.com/x /x\n")
    assert problem.line == 3


def _dockerfile_session(root: Path, dockerfile: str = "Dockerfile") -> tuple[Path, object]:
    file = load_paude_file(write(root / "paude.yaml", (
        f"sessions:\n  demo:\n    image: {{dockerfile: {dockerfile}}}\n")))
    return root, session_from(file, root, "demo")[0]


@pytest.mark.parametrize("name", ["Dockerfile", ".dockerignore"])
def test_build_files_that_are_not_utf8_are_refused(tmp_path: Path, name: str) -> None:
    write(tmp_path / "Dockerfile", "FROM x\n")
    write(tmp_path / ".dockerignore", "secret\n")
    root, session = _dockerfile_session(tmp_path)
    assert dockerfile_build(session, root) is not None  # type: ignore[arg-type]
    write(tmp_path / name, b"FROM x\n\xff\n")
    with pytest.raises(ConfigError) as exc:
        dockerfile_build(session, root)  # type: ignore[arg-type]
    assert exc.value.file == str(tmp_path / name)
    assert "is not UTF-8 text (byte 7)" in exc.value.render()


def test_a_paude_yaml_that_links_to_itself_is_refused(tmp_path: Path) -> None:
    (tmp_path / "paude.yaml").symlink_to("paude.yaml")
    [problem] = refused(tmp_path / "paude.yaml").problems
    assert problem.message == "is a symlink loop"


def test_a_dockerfile_that_links_to_itself_is_refused(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to("loop")
    root, session = _dockerfile_session(tmp_path, "loop")
    with pytest.raises(ConfigError) as exc:
        dockerfile_build(session, root)  # type: ignore[arg-type]
    assert "is a symlink loop" in exc.value.render()


def test_a_symlink_loop_in_the_build_context_is_refused(tmp_path: Path) -> None:
    write(tmp_path / "Dockerfile", "FROM x\n")
    root, session = _dockerfile_session(tmp_path)
    assert dockerfile_build(session, root) is not None  # type: ignore[arg-type]
    (tmp_path / "loop").symlink_to("loop")
    with pytest.raises(ConfigError) as exc:
        dockerfile_build(session, root)  # type: ignore[arg-type]
    assert "loop -> loop" in exc.value.render()


def test_a_symlink_loop_is_inside_no_folder(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to("loop")
    write(tmp_path / "file", "x")
    assert inside(tmp_path / "loop", [tmp_path]) is None
    assert inside(tmp_path / "file", [tmp_path]) == tmp_path.resolve()


# ---------------------------------------------------------------- writing paude.yaml back


@pytest.mark.parametrize("value", ["a\x85b", "a\u2028b", "x\u2029", "\x85"])
def test_yaml_line_break_characters_survive_a_rewrite(tmp_path: Path, value: str) -> None:
    # PyYAML wrote NEL raw into a quoted scalar, which reads back as a space: `paude create`
    # rewriting paude.yaml changed a build argument.
    original = PaudeFile.model_validate(
        {"defaults": {"image": {"build_args": {"A": value}}}, "sessions": {"demo": {}}})
    save_paude_file(tmp_path / "paude.yaml", original)
    assert load_paude_file(tmp_path / "paude.yaml") == original


# ---------------------------------------------------------------- command-line arguments


def test_agent_arguments_must_be_text() -> None:
    # Bytes that are not UTF-8 on the command line arrive as lone surrogates; the program
    # could not pass them to the engine (a ValueError deep in the stack).
    with pytest.raises(ValidationError, match="must be UTF-8 text"):
        AgentConfig.model_validate({"args": "-p \udcff"})
    with pytest.raises(ValidationError, match="must not contain NUL"):
        AgentConfig.model_validate({"args": ["a\x00b"]})
    assert AgentConfig.model_validate({"args": "-p 'caf\u00e9'"}).args == ["-p", "caf\u00e9"]


def test_a_headless_create_outside_a_repository_changes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The prompt's code is pushed in after the apply; outside a git repository that push
    # failed only after paude.yaml was written and the session applied.
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    folder = tmp_path / "folder"
    text = "sessions:\n  other: {}\n"
    write(folder / "paude.yaml", text)
    applied: list[str] = []
    monkeypatch.setattr(sessions, "apply", lambda name, **_: applied.append(name))
    monkeypatch.setattr(lifecycle, "_backend_for", lambda session: _NoData())
    with pytest.raises(PaudeError, match="not a git repository"):
        lifecycle.create("demo", CreateFlags(args='-p "refactor"'), cwd=folder)
    assert (folder / "paude.yaml").read_text() == text and applied == []
    # Control: without a headless prompt the same create goes ahead.
    lifecycle.create("demo", CreateFlags(args="--model opus"), cwd=folder)
    assert applied == ["demo"] and "demo" in load_paude_file(folder / "paude.yaml").sessions


class _NoData:
    def data_exists(self, *, session: str) -> bool:
        return False


# ---------------------------------------------------------------- found by tests/fuzz


def test_render_into_a_file_is_refused_not_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `paude plan NAME --render paude.yaml` raised FileExistsError from mkdir.
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    write(tmp_path / "paude.yaml", "sessions:\n  demo: {backend: openshift}\n")
    reached: list[str] = []

    def no_engine(*args: object, **kwargs: object) -> None:
        reached.append("engine")
        raise PaudeError("no engine here")

    monkeypatch.setattr(sessions.engine, "locate", no_engine)
    for target in ("paude.yaml", "paude.yaml/sub"):
        with pytest.raises(PaudeError, match="cannot write manifests to") as exc:
            inspection.render("demo", tmp_path / target, cwd=tmp_path)
        assert "give --render a folder" in exc.value.render()
    assert reached == [] and (tmp_path / "paude.yaml").is_file()
    # Control: a folder (new) goes on to the engine.
    with pytest.raises(PaudeError, match="no engine here"):
        inspection.render("demo", tmp_path / "out", cwd=tmp_path)
    assert reached == ["engine"] and (tmp_path / "out").is_dir()


def test_an_in_cluster_build_refusal_names_the_json_file(tmp_path: Path) -> None:
    # A Dockerfile from paude.json was reported as paude.yaml's sessions.NAME.image.dockerfile.
    from paude.stacks.openshift.program import make_program
    from tests.unit.pulumi_mocks import RecordingMocks, run_pulumi

    write(tmp_path / "Dockerfile", "FROM x\n")
    write(tmp_path / "paude.json", '{"build": {"dockerfile": "Dockerfile"}}')
    file = PaudeFile.model_validate({"sessions": {"demo": {"backend": "openshift"}}})
    session, _ = session_from(file, tmp_path, "demo")
    with pytest.raises(Exception) as caught:
        run_pulumi(make_program(session, str(tmp_path)), RecordingMocks())
    inner: BaseException | None = caught.value
    while inner is not None and not isinstance(inner, ConfigError):
        inner = inner.__cause__ or inner.__context__
    assert isinstance(inner, ConfigError)
    assert inner.file == "paude.json"
    assert [p.path for p in inner.problems] == ["build.dockerfile"]
    # Control: the same Dockerfile named in paude.yaml is reported there.
    file = PaudeFile.model_validate({"sessions": {"demo": {
        "backend": "openshift", "image": {"dockerfile": "Dockerfile"}}}})
    session, _ = session_from(file, tmp_path, "demo")
    with pytest.raises(Exception) as caught:
        run_pulumi(make_program(session, str(tmp_path)), RecordingMocks())
    inner = caught.value
    while inner is not None and not isinstance(inner, ConfigError):
        inner = inner.__cause__ or inner.__context__
    assert isinstance(inner, ConfigError) and inner.file == "paude.yaml"
    assert [p.path for p in inner.problems] == ["sessions.demo.image.dockerfile"]


@pytest.mark.parametrize("key", ["\x1b[2J\x1b]0;owned\x07", "\x9b31m", "a\u202eb", "\U000702b2"])
def test_an_unknown_policy_rule_is_named_without_control_characters(
        tmp_path: Path, key: str) -> None:
    # The key went into the error raw: a repository's policy file could send escape
    # sequences to the terminal of whoever ran `paude plan`.
    from paude import policy

    home = tmp_path / "home"
    home.mkdir()
    # Escaped in the file (YAML refuses most of them raw), unescaped by the loader.
    write(tmp_path / "repo" / "paude-policy.yaml",
          yaml.safe_dump({"rules": {key: {}}}, allow_unicode=True))
    with pytest.raises(ConfigError) as exc:
        policy.load(tmp_path / "repo", home)
    text = exc.value.render()
    assert all(c.isprintable() or c == "\n" for c in text), text
    assert f"rules.{key!r}: no built-in rule has this id" in text
    # Control: a plain unknown id is shown as written.
    write(tmp_path / "repo" / "paude-policy.yaml", json.dumps({"rules": {"no-such-rule": {}}}))
    with pytest.raises(ConfigError, match=r"rules\.no-such-rule: no built-in rule has this id"):
        policy.load(tmp_path / "repo", home)
    write(tmp_path / "repo" / "paude-policy.yaml", "rules: {pvc-size-limit: {max_size: 5Gi}}\n")
    assert policy.load(tmp_path / "repo", home) is not None


@pytest.mark.parametrize("text", ["rules: [\n", "rules: \"\\udcff\"\n", "- a\n"])
def test_a_broken_policy_file_is_called_a_policy_file(tmp_path: Path, text: str) -> None:
    # YAML errors and a top level that is not a mapping said "invalid session definition"
    # and pointed at paude.schema.json.
    from paude import policy

    write(tmp_path / "repo" / "paude-policy.yaml", text)
    (tmp_path / "home").mkdir()
    with pytest.raises(ConfigError) as exc:
        policy.load(tmp_path / "repo", tmp_path / "home")
    assert "paude-policy.yaml: invalid policy file" in exc.value.render()
    assert "docs/policies.md" in exc.value.render()
    # Control: paude.yaml's own errors still name a session definition.
    assert "invalid session definition" in refused(write(tmp_path / "paude.yaml", text)).render()


def test_an_escaped_surrogate_pair_is_one_character(tmp_path: Path) -> None:
    # JSON (which YAML reads) writes 😀 as "\ud83d\ude00"; each half was decoded alone and
    # the file refused as holding lone surrogates.
    image_data = {"setup": "echo \U0001f600", "env": {"A": "\U0001f600"}}
    data = {"sessions": {"demo": {"image": image_data}}}
    file = load_paude_file(write(tmp_path / "paude.yaml", json.dumps(data)))
    image = file.sessions["demo"].image
    assert image is not None and image.setup == "echo \U0001f600" and image.env["A"] == "\U0001f600"
    # Control: a half without its partner is still refused.
    err = refused(write(tmp_path / "lone.yaml", '{"sessions": {"demo": {"image": '
                                                '{"setup": "\\ud83d x"}}}}'))
    assert "lone surrogate" in err.problems[0].message


def test_create_beside_a_quoted_sessions_key_writes_a_file_paude_reads(tmp_path: Path) -> None:
    # `"sessions": {}` was not recognised, so a second `sessions:` was appended: YAML kept
    # the last one, the rewrite looked equivalent, and paude then refused its own file.
    from paude.definition import plan_definition

    write(tmp_path / "paude.yaml", '"version": 1\n"sessions": {"old": {}}\n')
    definition = plan_definition(tmp_path, "new", CreateFlags(yolo=True))
    write(tmp_path / "out" / "paude.yaml", definition.text)
    written = load_paude_file(tmp_path / "out" / "paude.yaml")
    assert set(written.sessions) == {"old", "new"} and written.sessions["new"].yolo
    # Control: a plain `sessions:` key still gets the one added line, comments kept.
    write(tmp_path / "paude.yaml", "# team sessions\nsessions:\n  old: {}\n")
    definition = plan_definition(tmp_path, "new", CreateFlags(yolo=True))
    assert definition.text == "# team sessions\nsessions:\n  new: {yolo: true}\n  old: {}\n"
