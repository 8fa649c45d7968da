"""The paude.yaml schema: validation rules and the layer merge in resolve()."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from paude.errors import SessionNotFoundError
from paude.models import (
    DEFAULT_BASE_IMAGE,
    DOMAIN_GROUPS,
    SESSION_NAME_RE,
    AgentConfig,
    ImageConfig,
    OpenShiftConfig,
    PaudeFile,
    Session,
    SessionSpec,
    StateConfig,
    resolve,
    validate_domain,
    validate_session_name,
)
from paude.validation import entry_loc


def errors_of(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[tuple[object, ...], str]]:
    return [(tuple(e["loc"]), e["msg"]) for e in exc.value.errors()]


# ---------------------------------------------------------------- session names


@pytest.mark.parametrize("name", ["a", "demo", "my-project", "x1", "a-b-c-9", "a" * 40])
def test_valid_session_names(name: str) -> None:
    assert validate_session_name(name) == name
    assert SESSION_NAME_RE.match(name)


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("../x", "'x'"),
        ("a b", "'a-b'"),
        ("-rf", "'rf'"),
        ("A", "'a'"),
        ("My_Project", "'my-project'"),
        ("x_y", "'x-y'"),
        ("trailing-", "'trailing'"),
        ("a" * 41, "'" + "a" * 40 + "'"),
    ],
)
def test_invalid_session_names_say_the_rule_and_suggest(name: str, suggestion: str) -> None:
    with pytest.raises(ValueError) as exc:
        validate_session_name(name)
    message = str(exc.value)
    assert repr(name) in message
    assert "lowercase letters, digits and '-'" in message
    assert f"for example {suggestion}" in message


@pytest.mark.parametrize("name", ["", "123", "--", "é"])
def test_invalid_session_names_without_a_suggestion(name: str) -> None:
    with pytest.raises(ValueError, match="starting with a letter") as exc:
        validate_session_name(name)
    assert "for example" not in str(exc.value)


def test_sessions_keys_are_validated_with_the_key_in_the_path() -> None:
    with pytest.raises(ValidationError) as exc:
        PaudeFile.model_validate({"sessions": {"../x": {}}})
    [(loc, msg)] = errors_of(exc)
    assert loc[:2] == ("sessions", "../x")
    assert "invalid session name '../x'" in msg


# ---------------------------------------------------------------- types and fields


def test_unknown_fields_are_refused_everywhere() -> None:
    with pytest.raises(ValidationError) as exc:
        PaudeFile.model_validate(
            {"colour": 1, "sessions": {"a": {"yollo": True, "image": {"pakages": []}}}}
        )
    locs = {loc for loc, _ in errors_of(exc)}
    assert locs == {("colour",), ("sessions", "a", "yollo"), ("sessions", "a", "image", "pakages")}


@pytest.mark.parametrize("value", ["yes", 1, "true"])
def test_yolo_is_a_strict_bool(value: object) -> None:
    with pytest.raises(ValidationError):
        SessionSpec.model_validate({"yolo": value})
    assert SessionSpec.model_validate({"yolo": True}).yolo is True


def test_packages_must_be_a_list() -> None:
    with pytest.raises(ValidationError):
        ImageConfig.model_validate({"packages": "make"})


@pytest.mark.parametrize("package", ["make;rm -rf /", "gcc && curl x", "$(id)", "a b", "Make", "x"])
def test_packages_refuse_anything_but_debian_names(package: str) -> None:
    with pytest.raises(ValidationError, match="Debian package name"):
        ImageConfig(packages=[package])


def test_packages_accept_names_and_versions() -> None:
    packages = ["make", "g++", "libssl3", "python3.11-venv", "curl=7.88.1-10+deb12u5"]
    assert ImageConfig(packages=packages).packages == packages


@pytest.mark.parametrize("name", ["1X", "A-B", "A B", "X=Y", ""])
def test_env_names_are_validated(name: str) -> None:
    with pytest.raises(ValidationError, match="variable name"):
        ImageConfig(env={name: "v"})


def test_env_values_must_be_one_line() -> None:
    with pytest.raises(ValidationError, match="single line"):
        ImageConfig(env={"X": "a\nRUN curl evil"})


@pytest.mark.parametrize("base", ["-rf", "debian bookworm", "", "img\n"])
def test_image_base_is_one_word_not_an_option(base: str) -> None:
    with pytest.raises(ValidationError):
        ImageConfig(base=base)


@pytest.mark.parametrize("path", ["/etc/Dockerfile", "../Dockerfile", "a/../../b", "-f"])
def test_build_paths_stay_inside_the_repository(path: str) -> None:
    with pytest.raises(ValidationError):
        ImageConfig(dockerfile=path)
    with pytest.raises(ValidationError):
        ImageConfig(context=path)


def test_build_paths_inside_the_repository_are_kept() -> None:
    image = ImageConfig(dockerfile=".devcontainer/Dockerfile", context=".")
    assert (image.dockerfile, image.context) == (".devcontainer/Dockerfile", ".")


def test_agent_args_string_is_split_like_a_shell() -> None:
    agent = AgentConfig.model_validate({"args": '-p "refactor the auth module" --verbose'})
    assert agent.args == ["-p", "refactor the auth module", "--verbose"]


def test_agent_args_list_is_kept_verbatim() -> None:
    args = ["-p", "two words", "$HOME;x"]
    assert AgentConfig(args=args).args == args


def test_agent_args_with_bad_quoting_are_refused() -> None:
    with pytest.raises(ValidationError, match="No closing quotation"):
        AgentConfig.model_validate({"args": '-p "unterminated'})


@pytest.mark.parametrize("size", ["10Gi", "500Mi", "1.5Ti", "100", "2G"])
def test_pvc_size_accepts_quantities(size: str) -> None:
    assert OpenShiftConfig(pvc_size=size).pvc_size == size


@pytest.mark.parametrize("size", ["10 Gi", "10GB", "ten", "-1Gi", ""])
def test_pvc_size_refuses_non_quantities(size: str) -> None:
    with pytest.raises(ValidationError, match="Kubernetes quantity"):
        OpenShiftConfig(pvc_size=size)


def test_openshift_names_are_validated() -> None:
    with pytest.raises(ValidationError, match="namespace"):
        OpenShiftConfig(namespace="Team A")
    with pytest.raises(ValidationError):
        OpenShiftConfig(context="--kubeconfig=/x")
    assert OpenShiftConfig(namespace="team-a", storage_class="fast.ssd").namespace == "team-a"


@pytest.mark.parametrize(
    "url", ["file://~", "file:///srv/state", "s3://bucket/p", "gs://b", "azblob://c",
            "https://api.pulumi.com"],
)
def test_state_backend_accepts_pulumi_urls(url: str) -> None:
    assert StateConfig(backend=url).backend == url


@pytest.mark.parametrize("url", ["http://x", "ftp://x", "/srv/state", "s3://", "file:// x"])
def test_state_backend_refuses_other_urls(url: str) -> None:
    with pytest.raises(ValidationError, match="state backend URL"):
        StateConfig(backend=url)


# ---------------------------------------------------------------- domains


@pytest.mark.parametrize("group", sorted(DOMAIN_GROUPS))
def test_domain_groups_are_accepted(group: str) -> None:
    assert validate_domain(group) == group


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("api.example.com", "api.example.com"),
        ("Example.COM", "example.com"),
        (".example.com", ".example.com"),
        ("my-host.internal.corp", "my-host.internal.corp"),
    ],
)
def test_host_names_and_suffixes_are_accepted(entry: str, expected: str) -> None:
    assert validate_domain(entry) == expected


@pytest.mark.parametrize("entry", ["10.0.0.1", "169.254.169.254", "::1", "[2001:db8::1]", "127.1"])
def test_ip_literals_are_refused_with_the_reason(entry: str) -> None:
    with pytest.raises(ValueError, match="only allows domain names"):
        validate_domain(entry)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("https://example.com/path", "is a URL.*'example.com'"),
        ("example.com/path", "path"),
        ("example.com:8443", "port"),
        ("*.example.com", "'.example.com'"),
        (".com", "too broad"),
        ("localhost", "neither a group"),
        ("Default", "neither a group"),
        ("bad_host.example.com", "not a valid host name"),
        ("-x.example.com", "not a valid host name"),
        ("a..b", "not a valid host name"),
        ("a" * 64 + ".com", "not a valid host name"),
        ("", "not a valid host name"),
    ],
)
def test_bad_domain_entries_are_refused(entry: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        validate_domain(entry)


def test_domains_are_validated_inside_a_session_spec() -> None:
    with pytest.raises(ValidationError) as exc:
        SessionSpec(allowed_domains=["default", "1.2.3.4"])
    [(loc, msg)] = errors_of(exc)
    assert entry_loc(loc) == ("allowed_domains", 1)
    assert "IP address" in msg


# ---------------------------------------------------------------- resolve


def paude_file(data: dict[str, object]) -> PaudeFile:
    return PaudeFile.model_validate(data)


def test_resolve_uses_built_in_defaults() -> None:
    session = resolve(paude_file({"sessions": {"demo": {}}}), "demo")
    assert session.name == "demo"
    assert session.backend == "podman"
    assert session.yolo is False
    assert session.allowed_domains == ["default"]
    assert session.agent.args == []
    assert session.image.base == DEFAULT_BASE_IMAGE
    assert session.openshift.pvc_size == "10Gi"
    assert session.image_source == "default"


def test_session_overrides_defaults_and_lists_replace() -> None:
    file = paude_file({
        "defaults": {"yolo": True, "backend": "openshift",
                     "allowed_domains": ["default", "github"]},
        "sessions": {"a": {"allowed_domains": [".example.com"]}, "b": {"yolo": False}},
    })
    a, b = resolve(file, "a"), resolve(file, "b")
    assert (a.yolo, a.backend, a.allowed_domains) == (True, "openshift", [".example.com"])
    assert (b.yolo, b.backend, b.allowed_domains) == (False, "openshift", ["default", "github"])


def test_nested_models_merge_field_by_field() -> None:
    file = paude_file({
        "defaults": {
            "image": {"base": "docker.io/library/python:3.12", "packages": ["make", "gcc"],
                      "setup": "pip install -r requirements.txt"},
            "openshift": {"namespace": "team-a", "pvc_size": "20Gi"},
            "agent": {"args": ["--verbose"]},
        },
        "sessions": {"demo": {"image": {"packages": ["jq"]}, "openshift": {"pvc_size": "5Gi"}}},
    })
    session = resolve(file, "demo")
    assert session.image.base == "docker.io/library/python:3.12"
    assert session.image.packages == ["jq"]  # lists replace, never concatenate
    assert session.image.setup == "pip install -r requirements.txt"
    assert session.openshift.namespace == "team-a"
    assert session.openshift.pvc_size == "5Gi"
    assert session.agent.args == ["--verbose"]
    assert session.image_source == "paude.yaml"


def test_a_dockerfile_in_a_later_layer_replaces_the_base_image() -> None:
    file = paude_file({
        "defaults": {"image": {"base": "docker.io/library/python:3.12"}},
        "sessions": {
            "built": {"image": {"dockerfile": "Dockerfile"}},
            "plain": {"image": {"packages": ["make"]}},
        },
    })
    built = resolve(file, "built")
    assert (built.image.dockerfile, built.image.base) == ("Dockerfile", None)
    assert resolve(file, "plain").image.base == "docker.io/library/python:3.12"


def test_a_base_image_in_a_later_layer_replaces_an_inherited_dockerfile() -> None:
    file = paude_file({
        "defaults": {"image": {"dockerfile": "Dockerfile", "context": "ctx"}},
        "sessions": {"demo": {"image": {"base": "docker.io/library/alpine:3"}}},
    })
    image = resolve(file, "demo").image
    assert image.base == "docker.io/library/alpine:3"
    assert (image.dockerfile, image.context) == (None, None)


def test_image_fallback_is_used_only_when_paude_yaml_sets_no_image() -> None:
    fallback = ImageConfig(base="docker.io/library/node:20", packages=["git"])
    bare = paude_file({"sessions": {"demo": {}}})
    session = resolve(bare, "demo", image_fallback=fallback, image_source="paude.json")
    assert (session.image.base, session.image.packages) == ("docker.io/library/node:20", ["git"])
    assert session.image_source == "paude.json"

    with_image = paude_file({"sessions": {"demo": {"image": {"packages": ["make"]}}}})
    session = resolve(with_image, "demo", image_fallback=fallback, image_source="paude.json")
    assert (session.image.base, session.image.packages) == (DEFAULT_BASE_IMAGE, ["make"])
    assert session.image_source == "paude.yaml"


def test_resolve_does_not_share_lists_with_the_file() -> None:
    file = paude_file({"defaults": {"allowed_domains": ["pypi"]}, "sessions": {"demo": {}}})
    session = resolve(file, "demo")
    session.allowed_domains.append("github")
    assert file.defaults.allowed_domains == ["pypi"]


def test_resolved_session_is_frozen() -> None:
    session = resolve(paude_file({"sessions": {"demo": {}}}), "demo")
    with pytest.raises(ValidationError):
        session.yolo = True  # type: ignore[misc]
    assert isinstance(session, Session)


def test_unknown_session_lists_the_defined_names() -> None:
    file = paude_file({"sessions": {"alpha": {}, "beta": {}}})
    with pytest.raises(SessionNotFoundError) as exc:
        resolve(file, "gamma")
    assert "'gamma'" in exc.value.message
    assert "alpha, beta" in exc.value.message
    assert exc.value.exit_code == 1
