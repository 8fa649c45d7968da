"""Reading paude.yaml and the json image sources: errors point at the field and line."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from paude.config import (
    PAUDE_FILE,
    find_project_root,
    load_image_source,
    load_paude_file,
    load_session,
    save_paude_file,
)
from paude.errors import ConfigError, SessionNotFoundError
from paude.models import DEFAULT_BASE_IMAGE, ImageConfig, PaudeFile, SessionSpec
from paude.sections import WorkspaceSetup


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as exc:
        load_paude_file(path)
    return exc.value


def problems(err: ConfigError) -> list[tuple[str, int | None]]:
    return [(p.path, p.line) for p in err.problems]


# ---------------------------------------------------------------- project root


def test_root_is_the_nearest_folder_with_paude_yaml(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    write(tmp_path / "app" / PAUDE_FILE, "version: 1\n")
    deep = tmp_path / "app" / "src" / "pkg"
    deep.mkdir(parents=True)
    assert find_project_root(deep) == tmp_path / "app"


def test_root_is_the_git_top_level_without_paude_yaml(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    deep = tmp_path / "src" / "pkg"
    deep.mkdir(parents=True)
    assert find_project_root(deep) == tmp_path


def test_paude_yaml_above_the_repository_is_not_used(tmp_path: Path) -> None:
    write(tmp_path / PAUDE_FILE, "version: 1\n")
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    assert find_project_root(repo) == repo


def test_root_is_start_outside_any_repository(tmp_path: Path) -> None:
    start = tmp_path / "a" / "b"
    start.mkdir(parents=True)
    assert find_project_root(start) == start


# ---------------------------------------------------------------- load_paude_file


def test_valid_file_loads(tmp_path: Path) -> None:
    path = write(tmp_path / PAUDE_FILE, """\
version: 1
defaults:
  allowed_domains: [default, .example.com]
  image:
    packages: [make, gcc]
sessions:
  my-project: {yolo: true}
  reviewer: {backend: openshift, agent: {args: '-p "review the diff"'}}
""")
    file = load_paude_file(path)
    assert file.sessions["my-project"].yolo is True
    assert file.defaults.image is not None and file.defaults.image.packages == ["make", "gcc"]
    reviewer = file.sessions["reviewer"].agent
    assert reviewer is not None and reviewer.args == ["-p", "review the diff"]


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n"])
def test_empty_file_is_an_empty_definition(tmp_path: Path, text: str) -> None:
    assert load_paude_file(write(tmp_path / PAUDE_FILE, text)) == PaudeFile()


def test_a_session_without_settings_is_declared_by_its_name(tmp_path: Path) -> None:
    file = load_paude_file(write(tmp_path / PAUDE_FILE, "defaults:\nsessions:\n  demo:\n"))
    assert file.sessions == {"demo": SessionSpec()}


def test_recursive_aliases_are_reported_not_looped_on(tmp_path: Path) -> None:
    err = config_error(write(tmp_path / PAUDE_FILE, "sessions: &s\n  demo: *s\n"))
    assert problems(err) == [("(file)", 2)]
    assert "alias *s refers to the node that contains it" in err.problems[0].message


def test_missing_file_hints_at_paude_create(tmp_path: Path) -> None:
    err = config_error(tmp_path / PAUDE_FILE)
    assert "file not found" in err.render()
    assert "paude create NAME" in err.render()


def test_yaml_syntax_error_reports_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / PAUDE_FILE, "version: 1\nsessions:\n  demo: {yolo: true\n")
    err = config_error(path)
    [problem] = err.problems
    assert "YAML syntax" in problem.message
    assert problem.line is not None and problem.line >= 3
    assert f"{path}:{problem.line}:" in err.render()


def test_top_level_must_be_a_mapping(tmp_path: Path) -> None:
    err = config_error(write(tmp_path / PAUDE_FILE, "- demo\n"))
    assert "expected a mapping" in err.render()


def test_bad_session_name_is_reported_at_its_key(tmp_path: Path) -> None:
    path = write(tmp_path / PAUDE_FILE, "sessions:\n  ok: {}\n  ../x: {}\n")
    err = config_error(path)
    assert problems(err) == [("sessions.../x", 3)]
    text = err.render()
    assert f"{path}:3: sessions.../x: invalid session name '../x'" in text
    assert "for example 'x'" in text


@pytest.mark.parametrize(
    ("text", "path", "line", "suggestion"),
    [
        ("version: 1\nsesions: {}\n", "sesions", 2, "did you mean 'sessions'?"),
        ("sessions:\n  demo:\n    yollo: true\n", "sessions.demo.yollo", 3, "did you mean 'yolo'?"),
        (
            "defaults:\n  image:\n    base: x\n    pakages: [make]\n",
            "defaults.image.pakages", 4, "did you mean 'packages'?",
        ),
        ("yolo: true\n", "yolo", 1, "go under `defaults:` or `sessions.NAME:`"),
    ],
)
def test_unknown_field_names_path_line_and_suggestion(
    tmp_path: Path, text: str, path: str, line: int, suggestion: str
) -> None:
    err = config_error(write(tmp_path / PAUDE_FILE, text))
    assert problems(err) == [(path, line)]
    field = path.rsplit(".", 1)[-1]
    assert err.problems[0].message.startswith(f"unknown field {field!r}")
    assert suggestion in err.problems[0].message


def test_wrong_types_are_reported_readably(tmp_path: Path) -> None:
    path = write(tmp_path / PAUDE_FILE, """\
sessions:
  demo:
    yolo: "yes"
    backend: docker
    image:
      packages: make
      env: {TOKEN: 12345}
""")
    err = config_error(path)
    by_path = {p.path: (p.line, p.message) for p in err.problems}
    assert by_path["sessions.demo.yolo"] == (3, "expected true or false (without quotes)")
    assert by_path["sessions.demo.backend"] == (4, "must be 'podman' or 'openshift'")
    assert by_path["sessions.demo.image.packages"] == (6, "expected a list, e.g. [a, b]")
    assert by_path["sessions.demo.image.env.TOKEN"] == (
        7, "expected a string: put numbers in quotes")
    assert "12345" not in err.render()  # values may be secrets and are never echoed


def test_package_with_shell_metacharacters_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / PAUDE_FILE,
                 "defaults:\n  image:\n    packages:\n      - make\n      - 'gcc; curl x | sh'\n")
    err = config_error(path)
    assert problems(err) == [("defaults.image.packages.1", 5)]
    assert "not a Debian package name" in err.problems[0].message


def test_domains_are_checked_with_lines(tmp_path: Path) -> None:
    path = write(tmp_path / PAUDE_FILE, """\
defaults:
  allowed_domains:
    - default
    - 169.254.169.254
    - https://example.com/x
""")
    err = config_error(path)
    assert problems(err) == [("defaults.allowed_domains.1", 4), ("defaults.allowed_domains.2", 5)]
    assert "only allows domain names" in err.problems[0].message
    assert "is a URL" in err.problems[1].message


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / PAUDE_FILE, "sessions:\n  demo:\n    yolo: false\n    yolo: true\n")
    err = config_error(path)
    assert problems(err) == [("sessions.demo.yolo", 4)]
    assert "duplicate key" in err.problems[0].message


def test_many_problems_fit_on_one_screen(tmp_path: Path) -> None:
    lines = ["sessions:"] + [f"  s{i}: {{bogus{i}: 1}}" for i in range(40)]
    err = config_error(write(tmp_path / PAUDE_FILE, "\n".join(lines) + "\n"))
    assert len(err.problems) == 40
    assert len(err.render().splitlines()) <= 20


# ---------------------------------------------------------------- save


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    original = load_paude_file(write(tmp_path / "in.yaml", """\
version: 1
state: {backend: 's3://bucket/paude'}
defaults:
  allowed_domains: [default, github]
  image: {base: docker.io/library/python:3.12, packages: [make], env: {A: 'x y'}}
sessions:
  demo: {yolo: true, agent: {args: '-p "two words"'}}
  other: {}
"""))
    out = tmp_path / PAUDE_FILE
    save_paude_file(out, original)
    assert load_paude_file(out) == original
    text = out.read_text(encoding="utf-8")
    assert [line for line in text.splitlines() if not line.startswith(" ")] == [
        "version: 1", "state:", "defaults:", "sessions:"]
    assert "null" not in text
    assert "- two words" in text  # the argument stays one list entry


def test_save_writes_sessions_added_after_loading(tmp_path: Path) -> None:
    path = write(tmp_path / PAUDE_FILE, "version: 1\n")
    file = load_paude_file(path)
    file.sessions["new-one"] = SessionSpec(yolo=True)
    save_paude_file(path, file)
    assert load_paude_file(path).sessions["new-one"].yolo is True


def test_save_keeps_the_file_mode_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = write(tmp_path / PAUDE_FILE, "version: 1\n")
    os.chmod(path, 0o640)
    save_paude_file(path, PaudeFile(sessions={"demo": SessionSpec()}))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == [PAUDE_FILE]


# ---------------------------------------------------------------- json image sources


def test_no_image_source(tmp_path: Path) -> None:
    assert load_image_source(tmp_path) is None


def test_paude_json_image_source(tmp_path: Path) -> None:
    write(tmp_path / "paude.json", """{
  "base": "docker.io/library/python:3.12",
  "packages": ["make", "jq"],
  "setup": "pip install -e .",
  "venv": "auto"
}""")
    found = load_image_source(tmp_path)
    assert found is not None
    assert found.source == "paude.json"
    # setup runs in the session after the first push, not in the image build.
    assert found.image == ImageConfig(base="docker.io/library/python:3.12",
                                      packages=["make", "jq"])
    assert found.setup == WorkspaceSetup(setup="pip install -e .", venv="auto")
    assert found.warnings == []


def test_devcontainer_jsonc_with_build_and_ignored_properties(tmp_path: Path) -> None:
    write(tmp_path / ".devcontainer" / "devcontainer.json", """\
// A devcontainer definition with comments
{
  "name": "demo", // display only
  /* the build */
  "build": {
    "dockerfile": "Dockerfile",
    "context": "..",
    "args": {"VARIANT": "3.12"},
    "options": ["--network=host"],
  },
  "postCreateCommand": ["pip", "install", "-r", "requirements dev.txt"],
  "containerEnv": {"URL": "http://example.com//not-a-comment", "B": "a,}"},
  "features": {"ghcr.io/devcontainers/features/node:1": {}},
  "runArgs": ["--privileged"],
  "mounts": ["source=/,target=/host,type=bind"],
  "capAdd": ["SYS_ADMIN"],
  "customizations": {"vscode": {}},
}
""")
    found = load_image_source(tmp_path)
    assert found is not None
    image, source, warnings = found.image, found.source, found.warnings
    assert source == ".devcontainer/devcontainer.json"
    assert image.dockerfile == ".devcontainer/Dockerfile"
    assert image.context == "."
    assert image.base is None
    assert image.build_args == {"VARIANT": "3.12"}
    assert image.setup is None
    assert found.setup is not None
    assert found.setup.setup == "pip install -r 'requirements dev.txt'"
    assert image.env == {"URL": "http://example.com//not-a-comment", "B": "a,}"}
    assert list(image.features) == ["ghcr.io/devcontainers/features/node:1"]
    for prop in ("runArgs", "mounts", "capAdd"):
        assert (f".devcontainer/devcontainer.json: {prop!r} is ignored: "
                "paude controls container security settings") in warnings
    assert any("'customizations' is not supported" in w for w in warnings)
    assert any("'build.options' is not supported" in w for w in warnings)
    assert not any("'name'" in w for w in warnings)


def test_initialize_command_is_ignored_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    write(tmp_path / ".devcontainer.json", json.dumps(
        {"image": "debian:12", "initializeCommand": f"touch {marker}",
         "postCreateCommand": "make deps"}))
    found = load_image_source(tmp_path)
    assert found is not None
    assert (".devcontainer.json: 'initializeCommand' is ignored: the devcontainer spec runs "
            "it on the host") in found.warnings[0]
    assert found.setup == WorkspaceSetup(setup="make deps")  # control: the session's runs
    assert "touch" not in repr(found.image) + repr(found.setup)
    assert not marker.exists()


def test_dockerfile_context_defaults_to_the_json_folder(tmp_path: Path) -> None:
    write(tmp_path / ".devcontainer.json", '{"build": {"dockerfile": "docker/Dockerfile"}}')
    found = load_image_source(tmp_path)
    assert found is not None
    assert (found.image.dockerfile, found.image.context) == ("docker/Dockerfile", ".")
    assert found.source == ".devcontainer.json"


def test_post_create_command_object_is_joined(tmp_path: Path) -> None:
    write(tmp_path / ".devcontainer.json",
          '{"image": "debian:12", "postCreateCommand": {"a": "make deps", "b": ["echo", "x y"]}}')
    found = load_image_source(tmp_path)
    assert found is not None
    assert found.setup == WorkspaceSetup(setup="make deps && echo 'x y'")
    assert found.image.base == "debian:12"


def test_paude_json_wins_over_devcontainer(tmp_path: Path) -> None:
    write(tmp_path / "paude.json", '{"base": "a:1"}')
    write(tmp_path / ".devcontainer" / "devcontainer.json", '{"image": "b:2"}')
    found = load_image_source(tmp_path)
    assert found is not None and (found.image.base, found.source) == ("a:1", "paude.json")


def test_invalid_json_reports_the_line(tmp_path: Path) -> None:
    write(tmp_path / ".devcontainer.json", '{\n  "image": "x",\n  "packages": [make]\n}\n')
    with pytest.raises(ConfigError) as exc:
        load_image_source(tmp_path)
    assert exc.value.problems[0].line == 3
    assert "invalid JSON" in exc.value.problems[0].message


def test_invalid_values_name_the_json_property(tmp_path: Path) -> None:
    write(tmp_path / "paude.json",
          '{\n  "base": "x",\n  "packages": ["ok", "a;b"],\n  "build": {"context": "../../.."}\n}')
    with pytest.raises(ConfigError) as exc:
        load_image_source(tmp_path)
    assert problems(exc.value) == [("build.context", 4), ("packages.1", 3)]


# ---------------------------------------------------------------- load_session


def test_load_session_uses_the_devcontainer_image(tmp_path: Path) -> None:
    write(tmp_path / PAUDE_FILE, "sessions:\n  demo: {yolo: true}\n")
    write(tmp_path / ".devcontainer" / "devcontainer.json",
          '{"image": "docker.io/library/node:20", "forwardPorts": [3000]}')
    session, warnings = load_session(tmp_path, "demo")
    assert session.yolo is True
    assert session.image.base == "docker.io/library/node:20"
    assert session.image_source == ".devcontainer/devcontainer.json"
    assert warnings == [".devcontainer/devcontainer.json: 'forwardPorts' is ignored: "
                        "paude controls container security settings"]


def test_load_session_prefers_the_image_in_paude_yaml(tmp_path: Path) -> None:
    write(tmp_path / PAUDE_FILE, "defaults:\n  image: {packages: [make]}\nsessions:\n  demo: {}\n")
    write(tmp_path / "paude.json", "not json at all")
    session, warnings = load_session(tmp_path, "demo")
    assert (session.image.base, session.image.packages) == (DEFAULT_BASE_IMAGE, ["make"])
    assert session.image_source == "paude.yaml"
    assert warnings == ["paude.json: not used: paude.yaml sets `image`"]


def test_load_session_unknown_name(tmp_path: Path) -> None:
    write(tmp_path / PAUDE_FILE, "sessions:\n  demo: {}\n")
    with pytest.raises(SessionNotFoundError, match="demo"):
        load_session(tmp_path, "other")


def test_load_session_without_paude_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_session(tmp_path, "demo")
    assert "paude create NAME" in exc.value.render()
