"""The proxy's squid.conf rendered from allowed_domains, and its fixed address."""

from __future__ import annotations

import re
from typing import Any

import pytest

from paude.models import PaudeFile, Session, resolve
from paude.stacks.podman.program import proxy_address, squid_conf

API_RULE = {"host": "api.example.com", "methods": ["GET", "POST"],
            "paths": ["/v1/", "~^/v2/items/[0-9]+$"]}
CASES: dict[str, list[Any]] = {
    "default": ["default"],
    "default-example": ["default", ".example.com"],
    "vertexai": ["vertexai"],
    "custom-only": ["api.example.com", ".corp.example.org"],
    "all": ["all"],
    # One per rule form: a group's read-only rules, methods and paths of a host, a plain
    # name made inspectable by a deny, a whole host denied.
    "github-readonly": ["default", "github"],
    "methods-paths": ["claude", API_RULE, {"host": ".cdn.example.com", "methods": ["GET"]}],
    "deny-path": ["claude", "api.example.com"],
    "deny-host": ["default", "github"],
}
DENIED: dict[str, list[Any]] = {
    "deny-path": [{"host": "api.example.com", "methods": ["DELETE"], "paths": ["/v1/admin"]}],
    "deny-host": [{"host": "codeload.github.com"}],
}


def session(allowed: list[Any], denied: list[Any] | None = None) -> Session:
    spec: dict[str, Any] = {"allowed_domains": allowed}
    if denied:
        spec["denied_requests"] = denied
    file = PaudeFile.model_validate({"sessions": {"demo": spec}})
    return resolve(file, "demo")


def lines(allowed: list[Any], denied: list[Any] | None = None) -> list[str]:
    return squid_conf(session(allowed, denied)).splitlines()


def conf_of(case: str) -> list[str]:
    return lines(CASES[case], DENIED.get(case))


def rule_hosts(conf: list[str]) -> dict[str, list[str]]:
    """Each allow rule's host -> its method ACL values (empty: any method)."""
    hosts = {ln.split()[1][:-5]: ln.split()[-1] for ln in conf
             if re.match(r"acl paude_a[0-9]+_host ", ln)}
    methods = {ln.split()[1][:-7]: ln.split()[3:] for ln in conf
               if re.match(r"acl paude_a[0-9]+_method ", ln)}
    out: dict[str, list[str]] = {}
    for acl, host in hosts.items():
        out.setdefault(host, []).extend(methods.get(acl, []))
    return out


def allowed_names(conf: list[str]) -> list[str]:
    return [ln.split()[-1] for ln in conf if ln.startswith("acl paude_allowed dstdomain ")]


@pytest.mark.parametrize("case", sorted(CASES))
def test_squid_conf_golden(case: str, golden: Any) -> None:
    text = squid_conf(session(CASES[case], DENIED.get(case)))
    assert text.endswith("http_access deny all paude_m_default\n")
    golden.check(f"squid/{case}.conf", text)


@pytest.mark.parametrize("case", sorted(CASES))
def test_common_rules_in_every_config(case: str) -> None:
    conf = conf_of(case)
    assert [ln for ln in conf if ln.startswith("http_port 3128")]
    assert "visible_hostname paude-proxy-demo" in conf
    # Port rules come before any allow, and the last rule denies everything else.
    access = [ln for ln in conf if ln.startswith("http_access")]
    assert access[:2] == ["http_access deny !Safe_ports paude_m_port",
                          "http_access deny CONNECT !SSL_ports paude_m_port"]
    assert access[2].startswith("http_access deny !CONNECT SSL_ports ")
    assert access[-1] == "http_access deny all paude_m_default"
    # Every line that decides names its rule for the audit log (its last ACL), and every
    # refusal answers with paude's page.
    marks = {ln.split()[1] for ln in conf if " annotate_transaction " in ln}
    for line in access:
        if "paude_gateway" not in line and line != "http_access allow all":
            assert line.split()[-1] in marks, line
    for line in (ln for ln in access if ln.startswith("http_access deny ")):
        if "paude_gateway" not in line:
            assert f"deny_info ERR_PAUDE_BLOCKED {line.split()[-1]}" in conf, line


@pytest.mark.parametrize("case", sorted(CASES))
def test_inspection_only_where_a_rule_needs_it(case: str) -> None:
    conf = conf_of(case)
    inspected = next((ln.split()[4:] for ln in conf if ln.startswith("acl paude_inspected ")),
                     [])
    bumping = any("ssl-bump" in ln for ln in conf if ln.startswith("http_port 3128"))
    assert bumping == bool(inspected)
    if inspected:
        assert conf.index("ssl_bump splice !paude_inspected") < conf.index(
            "ssl_bump bump paude_inspected")
        # Tunnelled names never overlap inspected ones.
        assert not set(allowed_names(conf)) & set(inspected)
        # Inspected hosts are allowed only through their rules, then refused.
        access = [ln for ln in conf if ln.startswith("http_access")]
        assert "http_access deny paude_inspected paude_m_norule" in access
        assert access.index("http_access deny paude_inspected paude_m_norule") > max(
            i for i, ln in enumerate(access) if re.match(r"http_access allow paude_a[0-9]", ln))


def test_github_group_is_read_only() -> None:
    conf = conf_of("github-readonly")
    hosts = rule_hosts(conf)
    assert hosts["api.github.com"] == hosts[".githubusercontent.com"] == ["GET", "HEAD"]
    assert sorted(hosts["github.com"]) == ["GET", "HEAD", "POST"]
    upload = next(ln for ln in conf if re.match(r"acl paude_a[0-9]+_path ", ln))
    assert upload.endswith("^/[^/]+/[^/]+/git-upload-pack$")
    assert "acl paude_d0_path urlpath_regex -i service=git-receive-pack /git-receive-pack" in conf


def test_paths_are_anchored_and_escaped() -> None:
    conf = lines(["claude", {"host": "api.example.com", "paths": ["/v1.0/a+b/", "~^/x$"]}])
    assert "acl paude_a0_path urlpath_regex -i ^/v1\\.0/a\\+b/ ^/x$" in conf


def test_a_denied_host_is_refused_before_any_tunnel() -> None:
    access = [ln for ln in conf_of("deny-host") if ln.startswith("http_access")]
    deny = access.index("http_access deny paude_d1_host paude_d1_mark")
    assert deny < access.index("http_access allow CONNECT paude_inspected paude_m_inspect")


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
    deny_ip = conf.index("http_access deny to_ip_literal paude_m_ip")
    allows = [i for i, ln in enumerate(conf) if ln.startswith("http_access allow")
              and "paude_gateway" not in ln]
    assert allows and all(deny_ip < i for i in allows)


def test_default_allows_pypi_and_only_the_gateway_reaches_model_hosts() -> None:
    conf = lines(["default"])
    assert allowed_names(conf) == []
    # PyPI is GET-only: its hosts are inspected and reached through GET/HEAD rules.
    assert rule_hosts(conf) == {h: ["GET", "HEAD"]
                                for h in ("pypi.org", "files.pythonhosted.org", "pypi.python.org")}
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
    conf = lines(["default", ".example.com"])
    assert ".example.com" in allowed_names(conf) and "pypi.org" in rule_hosts(conf)


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
    names = allowed_names(lines(["default", "api.example.com", "API.example.com"]))
    assert names == ["api.example.com"]


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


@pytest.mark.parametrize("case", ["default", "custom-only", "github-readonly"])
def test_allow_acls_never_reverse_resolve(case: str) -> None:
    allow_acls = [ln for ln in lines(CASES[case]) if ln.startswith("acl paude_allowed")
                  or " dstdomain " in ln]
    assert allow_acls
    for acl in allow_acls:
        # acl NAME TYPE [options] VALUE: -n must be among the options.
        assert "-n" in acl.split()[3:-1], acl
