"""`paude status --verify`: reading the self-test's answer, and the name it tries."""

from __future__ import annotations

import json

from paude.models import PaudeFile, resolve
from paude.stacks.podman.program import squid_conf
from paude.verify import CHECKS, allowed_name, parse


def conf(domains: list[str]) -> str:
    file = PaudeFile.model_validate({"sessions": {"demo": {"allowed_domains": domains}}})
    return squid_conf(resolve(file, "demo"))


def test_the_allowed_name_is_an_exact_one_from_the_running_configuration() -> None:
    assert allowed_name(conf([".example.com", "b.example.org", "a.example.org"])) == \
        "a.example.org"
    assert allowed_name(conf([".example.com"])) == ""
    assert allowed_name(conf(["all"])) == ""


def test_a_check_the_script_never_reported_is_a_failure_with_its_stderr() -> None:
    lines = [json.dumps({"check": "non-root", "ok": True, "detail": "uid 1000"}),
             "noise", json.dumps({"check": "made-up", "ok": True, "detail": ""}),
             json.dumps({"check": "no capabilities", "ok": "yes", "detail": "CapEff 0"})]
    found = {c.name: c for c in parse("\n".join(lines), "Traceback...\nOSError: boom\n")}
    assert list(found) == list(CHECKS)
    assert found["non-root"].ok is True
    assert found["no capabilities"].ok is False  # only a JSON true counts
    assert found["proxy answers"].ok is False
    assert found["proxy answers"].detail == "not run: OSError: boom"


def test_what_the_agent_prints_reaches_the_terminal_escaped() -> None:
    # The agent controls its container, so the self-test's output is its to write.
    hostile = json.dumps({"check": "non-root", "ok": True,
                          "detail": "uid 1000\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2J"})
    (check, *rest) = parse(hostile, "\x1b[31mboom\x1b[0m")
    assert check.detail == "uid 1000?]52;c;cm0gLXJmIH4=??[2J"
    assert "\x1b" not in rest[0].detail and rest[0].detail.startswith("not run: ?[31mboom")
    # Control: plain text passes unchanged.
    assert parse(json.dumps({"check": "non-root", "ok": True, "detail": "uid 1000"}),
                 "")[0].detail == "uid 1000"
