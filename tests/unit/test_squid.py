"""The proxy's squid.conf rendered from allowed_domains, and its fixed address."""

from __future__ import annotations

import re
from typing import Any

import pytest

from paude.models import PaudeFile, Session, resolve
from paude.stacks.podman.program import proxy_address, squid_conf

CASES = {
    "default": ["default"],
    "default-example": ["default", ".example.com"],
    "vertexai": ["vertexai"],
    "custom-only": ["api.example.com", ".corp.example.org"],
    "all": ["all"],
}


def session(allowed: list[str]) -> Session:
    file = PaudeFile.model_validate({"sessions": {"demo": {"allowed_domains": allowed}}})
    return resolve(file, "demo")


def lines(allowed: list[str]) -> list[str]:
    return squid_conf(session(allowed)).splitlines()


def allowed_names(conf: list[str]) -> list[str]:
    return [ln.split()[-1] for ln in conf if ln.startswith("acl paude_allowed dstdomain ")]


@pytest.mark.parametrize("case", sorted(CASES))
def test_squid_conf_golden(case: str, golden: Any) -> None:
    text = squid_conf(session(CASES[case]))
    assert text.endswith("http_access deny all\n")
    golden.check(f"squid/{case}.conf", text)


@pytest.mark.parametrize("case", sorted(CASES))
def test_common_rules_in_every_config(case: str) -> None:
    conf = lines(CASES[case])
    assert "http_port 3128" in conf
    assert "visible_hostname paude-proxy-demo" in conf
    # Port rules come before any allow, and the last rule denies everything else.
    access = [ln for ln in conf if ln.startswith("http_access")]
    assert access[:3] == ["http_access deny !Safe_ports", "http_access deny CONNECT !SSL_ports",
                          "http_access deny !CONNECT SSL_ports"]
    assert access[-1] == "http_access deny all"


def test_all_is_unrestricted_and_says_so() -> None:
    conf = lines(["all"])
    assert "http_access allow all" in conf
    assert "http_access deny to_ip_literal" not in conf
    assert allowed_names(conf) == []
    assert any("UNRESTRICTED" in ln for ln in conf if ln.startswith("#"))


@pytest.mark.parametrize("case", ["default", "default-example", "custom-only"])
def test_restricted_configs_deny_ip_literals_before_allowing(case: str) -> None:
    conf = lines(CASES[case])
    assert "http_access allow all" not in conf
    deny_ip = conf.index("http_access deny to_ip_literal")
    allows = [i for i, ln in enumerate(conf) if ln.startswith("http_access allow paude_allowed")]
    assert allows and all(deny_ip < i for i in allows)


def test_default_allows_pypi_and_only_the_gateway_reaches_model_hosts() -> None:
    conf = lines(["default"])
    names = allowed_names(conf)
    assert set(names) == {"pypi.org", "files.pythonhosted.org", "pypi.python.org"}
    assert not any("paude_allowed_re" in ln for ln in conf)
    model = [ln.split()[-1] for ln in conf if ln.startswith("acl paude_model dstdomain ")]
    assert model == ["api.anthropic.com", "aiplatform.googleapis.com", "oauth2.googleapis.com"]
    regex = r"^[a-z0-9-]+-aiplatform\.googleapis\.com$"
    assert f"acl paude_model_re dstdom_regex -n -i {regex}" in conf
    assert 'acl paude_gateway src "/etc/squid/paude/gateway-src"' in conf
    access = [ln for ln in conf if ln.startswith("http_access")]
    # The gateway gets the model hosts and nothing else, before any rule of the agent's.
    assert access[3:6] == ["http_access allow paude_gateway CONNECT paude_model",
                           "http_access allow paude_gateway CONNECT paude_model_re",
                           "http_access deny paude_gateway"]
    assert "www.googleapis.com" not in "\n".join(conf)


def test_custom_only_allows_exactly_the_listed_names() -> None:
    conf = lines(["api.example.com", ".corp.example.org"])
    assert allowed_names(conf) == [".corp.example.org", "api.example.com"]
    assert "pypi.org" not in "\n".join(conf)
    # No regex acl is declared, so none may be referenced.
    assert not any("paude_allowed_re" in ln for ln in conf)


def test_suffix_keeps_default_names() -> None:
    names = allowed_names(lines(["default", ".example.com"]))
    assert ".example.com" in names and "pypi.org" in names


def test_vertexai_alone_is_a_gateway_route_only() -> None:
    conf = lines(["vertexai"])
    assert allowed_names(conf) == []
    assert "acl paude_model dstdomain -n aiplatform.googleapis.com" in conf
    assert "acl paude_model dstdomain -n api.anthropic.com" not in conf


def test_no_route_leaves_the_gateway_nothing() -> None:
    conf = lines(["pypi"])
    access = [ln for ln in conf if ln.startswith("http_access")]
    assert "http_access deny paude_gateway" in access
    assert not any("paude_model" in ln for ln in conf)


def test_each_name_appears_once() -> None:
    names = allowed_names(lines(["default", "pypi", "PyPI.org", "pypi.org"]))
    assert len(names) == len(set(names))


@pytest.mark.parametrize(("subnet", "address"), [
    ("10.89.3.0/24", "10.89.3.254"),
    ("10.88.0.0/16", "10.88.255.254"),
    ("192.168.7.0/29", "192.168.7.6"),
])
def test_proxy_address_is_last_host(subnet: str, address: str) -> None:
    assert proxy_address(subnet) == address


# ---------------------------------------------------------------- IP literals and lookups


def ip_literal_patterns() -> list[re.Pattern[str]]:
    line = next(ln for ln in lines(["default"]) if ln.startswith("acl to_ip_literal "))
    # acl to_ip_literal dstdom_regex -n PATTERN...
    return [re.compile(p) for p in line.split()[4:]]


def is_ip_literal(host: str) -> bool:
    return any(p.search(host) for p in ip_literal_patterns())


@pytest.mark.parametrize("host", ["10.0.0.1", "169.254.169.254", "2130706433", "127.1",
                                  "[::1]", "::1", "[fe80::1]", "[2001:db8::5]"])
def test_ip_literal_acl_matches_addresses(host: str) -> None:
    assert is_ip_literal(host)


@pytest.mark.parametrize("host", ["pypi.org", "api.example.com", "files.pythonhosted.org",
                                  "deadbeef.example.com"])
def test_ip_literal_acl_leaves_names_alone(host: str) -> None:
    assert not is_ip_literal(host)


@pytest.mark.parametrize("host", ["[::ffff:203.0.113.5]", "::ffff:203.0.113.5"])
def test_ip_literal_acl_matches_ipv4_mapped_ipv6(host: str) -> None:
    assert is_ip_literal(host)


@pytest.mark.parametrize("case", ["default", "custom-only"])
def test_allow_acls_never_reverse_resolve(case: str) -> None:
    allow_acls = [ln for ln in lines(CASES[case]) if ln.startswith("acl paude_allowed")]
    assert allow_acls
    for acl in allow_acls:
        # acl NAME TYPE [options] VALUE: -n must be among the options.
        assert "-n" in acl.split()[3:-1], acl
