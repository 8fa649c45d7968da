"""Image build specs: content-addressed tags and golden Containerfiles."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from paude.errors import PaudeError
from paude.models import PaudeFile, Session, resolve
from paude.render import template_source
from paude.stacks.podman import images
from paude.stacks.podman.images import (
    BuildSpec,
    agent_build,
    context_digest,
    dockerfile_build,
    proxy_build,
)
from tests.certs import CERT_A, CERT_B

TAG_RE = re.compile(r"^localhost/paude-(agent|proxy):[0-9a-f]{16}$")

CUSTOM_IMAGE = {
    "packages": ["make", "gcc"],
    "setup": "pip install -r requirements.txt",
    "env": {"FOO": "bar"},
}

# Containerfile instructions a rendered line may start with (when not a continuation).
INSTRUCTIONS = ("FROM", "USER", "ENV", "RUN", "COPY", "WORKDIR", "ENTRYPOINT", "EXPOSE", "ARG",
                "LABEL", "CMD")


def session(image: dict[str, Any] | None = None, name: str = "demo") -> Session:
    spec: dict[str, Any] = {} if image is None else {"image": image}
    return resolve(PaudeFile.model_validate({"sessions": {name: spec}}), name)


def session_of_spec(spec: dict[str, Any], name: str = "demo") -> Session:
    return resolve(PaudeFile.model_validate({"sessions": {name: spec}}), name)


def assert_valid_containerfile(text: str) -> None:
    """Every line is blank, a comment, a continuation, or starts an instruction."""
    continued = False
    for line in text.splitlines():
        if not continued and line.strip() and not line.startswith("#"):
            assert line.split(" ", 1)[0] in INSTRUCTIONS, f"not an instruction: {line!r}"
        continued = line.endswith("\\")


# ---------------------------------------------------------------- BuildSpec


def test_digest_is_stable_and_independent_of_dict_order() -> None:
    a = BuildSpec("paude-agent", {"Containerfile": "FROM x\n", "e.sh": "echo\n"}, {"A": "1"})
    b = BuildSpec("paude-agent", {"e.sh": "echo\n", "Containerfile": "FROM x\n"}, {"A": "1"})
    assert a.digest == b.digest
    assert re.fullmatch(r"[0-9a-f]{64}", a.digest)


@pytest.mark.parametrize("other", [
    BuildSpec("paude-agent", {"Containerfile": "FROM y\n", "e.sh": "echo\n"}, {"A": "1"}),
    BuildSpec("paude-agent", {"Containerfile": "FROM x\n", "e.sh": "echo \n"}, {"A": "1"}),
    BuildSpec("paude-agent", {"Containerfile": "FROM x\n", "f.sh": "echo\n"}, {"A": "1"}),
    BuildSpec("paude-agent", {"Containerfile": "FROM x\n"}, {"A": "1"}),
    BuildSpec("paude-agent", {"Containerfile": "FROM x\n", "e.sh": "echo\n"}, {"A": "2"}),
    BuildSpec("paude-agent", {"Containerfile": "FROM x\n", "e.sh": "echo\n"}, {"B": "1"}),
    BuildSpec("paude-agent", {"Containerfile": "FROM x\n", "e.sh": "echo\n"}, {}),
])
def test_digest_changes_with_every_input(other: BuildSpec) -> None:
    base = BuildSpec("paude-agent", {"Containerfile": "FROM x\n", "e.sh": "echo\n"}, {"A": "1"})
    assert other.digest != base.digest
    assert other.tag != base.tag


def test_digest_changes_with_image_format(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = BuildSpec("paude-agent", {"Containerfile": "FROM x\n"})
    before = spec.digest
    monkeypatch.setattr(images, "IMAGE_FORMAT", images.IMAGE_FORMAT + 1)
    assert spec.digest != before


def test_tag_is_repository_and_digest_prefix() -> None:
    spec = BuildSpec("paude-agent", {"Containerfile": "FROM x\n"})
    assert spec.tag == f"localhost/paude-agent:{spec.digest[:16]}"
    assert TAG_RE.match(spec.tag)


# ---------------------------------------------------------------- agent and proxy builds


def test_agent_build_of_default_session() -> None:
    spec = agent_build(session())
    assert spec.repository == "paude-agent"
    assert TAG_RE.match(spec.tag) and spec.tag.startswith("localhost/paude-agent:")
    assert set(spec.files) == {"Containerfile", "agent-entrypoint.sh", "agent-setup.sh"}
    assert spec.files["agent-entrypoint.sh"] == template_source("agent-entrypoint.sh")
    assert spec.build_args == {}


def test_agent_build_is_deterministic_and_independent_of_session_name() -> None:
    assert agent_build(session()).tag == agent_build(session()).tag
    # The image is a shared build cache: two sessions with one definition share it.
    assert agent_build(session(name="other")).tag == agent_build(session()).tag


def test_build_args_do_not_touch_the_agent_image_without_a_dockerfile() -> None:
    spec = agent_build(session({"build_args": {"PYVER": "3.12"}}))
    assert spec.build_args == {}
    assert spec.tag == agent_build(session()).tag


def test_agent_containerfile_default(golden: Any) -> None:
    text = agent_build(session()).files["Containerfile"]
    assert text.startswith("# Agent image")
    assert "FROM docker.io/library/debian:bookworm-slim\n" in text
    assert_valid_containerfile(text)
    golden.check("containerfile/agent-default.Containerfile", text)


def test_agent_containerfile_with_packages_setup_and_env(golden: Any) -> None:
    spec = agent_build(session(CUSTOM_IMAGE))
    text = spec.files["Containerfile"]
    assert spec.files["paude-setup.sh"] == "pip install -r requirements.txt\n"
    assert ("--no-install-recommends bash ca-certificates coreutils git tmux procps curl make gcc "
            in text)
    assert 'ENV FOO="bar"\n' in text
    assert "RUN sh -e /tmp/paude-setup.sh && rm -f /tmp/paude-setup.sh\n" in text
    # setup runs as the unprivileged user, and the image ends as that user too.
    before_setup = text.split("RUN sh -e", 1)[0]
    assert before_setup.rstrip().endswith("USER paude\nWORKDIR /home/paude")
    assert text.rstrip().splitlines()[-3:] == [
        "USER paude", "WORKDIR /workspace",
        'ENTRYPOINT ["/usr/local/bin/paude-agent-entrypoint"]']
    assert_valid_containerfile(text)
    golden.check("containerfile/agent-custom.Containerfile", text)


def test_proxy_containerfile(golden: Any) -> None:
    spec = proxy_build(session())
    assert spec.repository == "paude-proxy"
    assert TAG_RE.match(spec.tag) and spec.tag.startswith("localhost/paude-proxy:")
    assert set(spec.files) == {"Containerfile", "proxy-entrypoint.sh", "ERR_PAUDE_BLOCKED",
                               "gateway.py", "gateway_github.py"}
    assert spec.files["gateway.py"] == template_source("gateway.py")
    assert spec.files["proxy-entrypoint.sh"] == template_source("proxy-entrypoint.sh")
    assert spec.build_args == {}
    text = spec.files["Containerfile"]
    assert "squid" in text and "USER proxy\n" in text
    assert_valid_containerfile(text)
    golden.check("containerfile/proxy.Containerfile", text)


def test_package_change_rebuilds_agent_but_not_proxy() -> None:
    plain, custom = session(), session({"packages": ["make"]})
    assert agent_build(plain).tag != agent_build(custom).tag
    assert proxy_build(plain).tag == proxy_build(custom).tag


@pytest.mark.parametrize("image", [
    {"setup": "make"}, {"env": {"FOO": "baz"}}, {"base": "docker.io/library/debian:trixie"},
])
def test_every_image_setting_changes_the_agent_tag(image: dict[str, Any]) -> None:
    assert agent_build(session(image)).tag != agent_build(session()).tag


def test_env_values_are_quoted() -> None:
    text = agent_build(session({"env": {"MSG": 'say "hi" \\ bye'}})).files["Containerfile"]
    assert 'ENV MSG="say \\"hi\\" \\\\ bye"\n' in text


def test_env_values_survive_containerfile_quoting() -> None:
    env = {"INDEX": "https://pypi.example.com/simple?a=1&b=2", "NAME": "it's café"}
    text = agent_build(session({"env": env})).files["Containerfile"]
    assert 'ENV INDEX="https://pypi.example.com/simple?a=1&b=2"\n' in text
    assert "ENV NAME=\"it's café\"\n" in text


def test_multiline_setup_renders_a_valid_containerfile() -> None:
    try:
        built = session({"setup": "apt-get update\napt-get install -y jq\n"})
    except ValidationError:
        return  # refusing multi-line setup at validation is an acceptable fix too
    assert_valid_containerfile(agent_build(built).files["Containerfile"])


# ---------------------------------------------------------------- the user's Dockerfile


def dockerfile_project(root: Path, files: dict[str, str] | None = None) -> Path:
    """A repository with a Dockerfile under build/ and the given context files."""
    (root / "build").mkdir(parents=True)
    (root / "build" / "Dockerfile").write_text("FROM docker.io/library/python:3.12\n")
    for rel, text in (files or {}).items():
        path = root / "build" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


DOCKERFILE_IMAGE = {"dockerfile": "build/Dockerfile", "build_args": {"PYVER": "3.12"}}


def test_no_dockerfile_means_no_base_build(tmp_path: Path) -> None:
    assert dockerfile_build(session(), tmp_path) is None


def test_dockerfile_build(tmp_path: Path) -> None:
    root = dockerfile_project(tmp_path, {"requirements.txt": "rich\n"})
    spec = dockerfile_build(session(DOCKERFILE_IMAGE), root)
    assert spec is not None
    assert re.fullmatch(r"localhost/paude-userbase:[0-9a-f]{16}", spec.tag)
    assert spec.files == {"Dockerfile": "FROM docker.io/library/python:3.12\n"}
    assert spec.build_args == {"PYVER": "3.12"}
    # The context defaults to the Dockerfile's folder.
    assert spec.context_dir == str((root / "build").resolve())
    assert spec.dockerfile == str((root / "build" / "Dockerfile").resolve())
    assert spec.context_digest == context_digest(root / "build")


def test_dockerfile_build_with_an_explicit_context(tmp_path: Path) -> None:
    root = dockerfile_project(tmp_path)
    spec = dockerfile_build(session({**DOCKERFILE_IMAGE, "context": "."}), root)
    assert spec is not None and spec.context_dir == str(root.resolve())


def test_agent_builds_from_the_user_base_but_the_proxy_never_does(tmp_path: Path) -> None:
    built = session(DOCKERFILE_IMAGE)
    base = dockerfile_build(built, dockerfile_project(tmp_path))
    assert base is not None
    agent, proxy = agent_build(built, base.tag), proxy_build(built)
    assert f"FROM {base.tag}\n" in agent.files["Containerfile"]
    # The repository's Dockerfile is agent-controlled: the egress guard must not use it.
    assert "FROM docker.io/library/debian:bookworm-slim\n" in proxy.files["Containerfile"]
    assert_valid_containerfile(agent.files["Containerfile"])


def test_proxy_base_can_be_set_explicitly() -> None:
    built = session_of_spec({"image": {"base": "localhost/agent:1"},
                             "proxy": {"base": "localhost/squid-base:1"}})
    assert "FROM localhost/squid-base:1\n" in proxy_build(built).files["Containerfile"]
    assert "FROM localhost/agent:1\n" in agent_build(built).files["Containerfile"]


@pytest.mark.parametrize("edit", ["Dockerfile", "build_args", "context file", "new file"])
def test_dockerfile_tag_follows_every_input(tmp_path: Path, edit: str) -> None:
    root = dockerfile_project(tmp_path, {"app/main.py": "print(1)\n"})
    before = dockerfile_build(session(DOCKERFILE_IMAGE), root)
    image = dict(DOCKERFILE_IMAGE)
    if edit == "Dockerfile":
        (root / "build" / "Dockerfile").write_text("FROM docker.io/library/python:3.13\n")
    elif edit == "build_args":
        image["build_args"] = {"PYVER": "3.13"}
    elif edit == "context file":
        (root / "build" / "app" / "main.py").write_text("print(2)\n")
    else:
        (root / "build" / "app" / "extra.py").write_text("")
    after = dockerfile_build(session(image), root)
    assert before is not None and after is not None
    assert after.tag != before.tag


def test_context_digest_ignores_dockerignored_files_and_git(tmp_path: Path) -> None:
    root = dockerfile_project(tmp_path, {
        ".dockerignore": "# comment\nnode_modules\n/dist/\n*.log\n", "keep.py": "x"})
    context = root / "build"
    before = context_digest(context)
    for rel in ("node_modules/pkg/index.js", "dist/app.whl", "debug.log", ".git/HEAD"):
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        (context / rel).write_text("changed")
    assert context_digest(context) == before
    (context / "keep.py").write_text("y")
    assert context_digest(context) != before


def test_context_digest_honours_negated_patterns(tmp_path: Path) -> None:
    root = dockerfile_project(tmp_path, {
        ".dockerignore": "*.txt\n!requirements.txt\n", "requirements.txt": "rich\n",
        "notes.txt": "a\n"})
    context = root / "build"
    before = context_digest(context)
    (context / "notes.txt").write_text("b\n")
    assert context_digest(context) == before
    (context / "requirements.txt").write_text("rich==13\n")
    assert context_digest(context) != before


def test_context_digest_depends_on_paths_not_only_contents(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("same")
    before = context_digest(tmp_path)
    (tmp_path / "a").rename(tmp_path / "b")
    assert context_digest(tmp_path) != before


def test_context_digest_follows_podman_ignore_semantics(tmp_path: Path) -> None:
    # `*.md` ignores only top-level markdown files; docs/guide.md is still sent to podman.
    root = dockerfile_project(tmp_path, {".dockerignore": "*.md\n",
                                         "docs/guide.md": "a\n"})
    context = root / "build"
    before = context_digest(context)
    (context / "docs" / "guide.md").write_text("b\n")
    assert context_digest(context) != before


def test_context_digest_reads_the_ignore_file_podman_reads(tmp_path: Path) -> None:
    # Both files: podman reads .containerignore, so a file only .dockerignore names is
    # built, and a change to it must change the tag.
    root = dockerfile_project(tmp_path, {".dockerignore": "setup.sh\n",
                                         ".containerignore": "*.log\n", "setup.sh": "a\n"})
    context = root / "build"
    before = context_digest(context)
    (context / "setup.sh").write_text("b\n")
    assert context_digest(context) != before
    # Control: named in the file podman reads, it is left out.
    (context / ".containerignore").write_text("setup.sh\n")
    before = context_digest(context)
    (context / "setup.sh").write_text("c\n")
    assert context_digest(context) == before


def test_missing_dockerfile_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(PaudeError, match=r"image\.dockerfile"):
        dockerfile_build(session({"dockerfile": "Dockerfile"}), tmp_path)


PEM = CERT_A


def test_npm_install_and_ca_certificates(golden: Any, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.pem"
    bundle.write_text("# two certificates\n" + PEM + CERT_B)
    built = session_of_spec({"agent": {"install": "npm"},
                             "image": {"ca_certificates": [str(bundle)]}})
    agent, proxy = agent_build(built), proxy_build(built)
    # One certificate per file, as update-ca-certificates expects, in both images.
    cas = {k: v for k, v in agent.files.items() if k.startswith("ca/")}
    assert sorted(cas) == ["ca/paude-0-0.crt", "ca/paude-0-1.crt"]
    assert all(v.startswith("-----BEGIN CERTIFICATE-----") for v in cas.values())
    assert {k: v for k, v in proxy.files.items() if k.startswith("ca/")} == cas
    text = agent.files["Containerfile"]
    assert "nodejs npm" in text and "npm install --global" in text
    assert "claude.ai/install.sh" not in text
    assert "update-ca-certificates" in proxy.files["Containerfile"]
    golden.check("containerfile/agent-npm-ca.Containerfile", text)
    # The certificates' content is a build input.
    bundle.write_text(PEM)
    assert agent_build(session_of_spec({"agent": {"install": "npm"}, "image": {
        "ca_certificates": [str(bundle)]}})).tag != agent.tag


def test_missing_ca_file_names_the_field(tmp_path: Path) -> None:
    built = session_of_spec({"image": {"ca_certificates": [str(tmp_path / "nope.pem")]}})
    with pytest.raises(PaudeError, match=r"image\.ca_certificates\.0"):
        agent_build(built)


def test_install_none_adds_nothing(golden: Any) -> None:
    text = agent_build(session_of_spec({"agent": {"install": "none"}})).files["Containerfile"]
    assert "npm" not in text and "install.sh" not in text
