"""Method/path rules in paude.yaml: parsing, the groups' defaults, and the errors for rules
that cannot work (each with its field path and line, and nothing applied)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from paude.config import load_paude_file
from paude.domains import expand
from paude.egress import RequestRule, Rule, check_overlaps, path_regex, reads_only
from paude.errors import ConfigError


def load_error(tmp_path: Path, session: str) -> tuple[str, int | None, str]:
    path = tmp_path / "paude.yaml"
    path.write_text(f"version: 1\nsessions:\n  demo:\n{session}", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_paude_file(path)
    [problem] = exc.value.problems
    return problem.path, problem.line, problem.message


@pytest.mark.parametrize(("body", "where", "line", "says"), [
    ("    allowed_domains:\n      - host: api.example.com\n        methods: [GET, FETCH]\n",
     "sessions.demo.allowed_domains.0.methods.1", 6, "'FETCH' is not an HTTP method squid"),
    ("    allowed_domains:\n      - host: api.example.com\n        methods: [CONNECT]\n",
     "sessions.demo.allowed_domains.0.methods.0", 6, "CONNECT is not a rule method"),
    ("    allowed_domains:\n      - host: api.example.com\n        paths: [v1/]\n",
     "sessions.demo.allowed_domains.0.paths.0", 6, "must start with '/'"),
    ("    allowed_domains:\n      - host: api.example.com\n        paths: ['~^/v1/(']\n",
     "sessions.demo.allowed_domains.0.paths.0", 6, "does not parse"),
    ("    allowed_domains:\n      - host: api.example.com\n        paths: ['~^/\\d+']\n",
     "sessions.demo.allowed_domains.0.paths.0", 6, "Perl syntax"),
    # A quoted squid value names a file for squid to read: an agent-written pattern must
    # not reach the configuration as one.
    ("    allowed_domains:\n      - host: api.example.com\n        paths: ['~\"/etc/passwd\"']\n",
     "sessions.demo.allowed_domains.0.paths.0", 6, "no white space, quotes or '#'"),
    ("    allowed_domains:\n      - host: api.example.com\n        paths: ['/v1/ all']\n",
     "sessions.demo.allowed_domains.0.paths.0", 6, "no white space, quotes or '#'"),
    ("    allowed_domains:\n      - host: api.example.com\n        methods: []\n",
     "sessions.demo.allowed_domains.0.methods", 6, "at least 1"),
    ("    allowed_domains:\n      - host: https://api.example.com/v1\n",
     "sessions.demo.allowed_domains.0.host", 5, "is a URL"),
    ("    allowed_domains:\n      - host: api.example.com\n        method: [GET]\n",
     "sessions.demo.allowed_domains.0.method", 6, "unknown field"),
    ("    allowed_domains:\n      - host: pypi\n        methods: [GET]\n",
     "sessions.demo.allowed_domains.0.host", 5, "is a group"),
    # Rules that contradict one another.
    ("    allowed_domains:\n      - default\n      - host: api.example.com\n"
     "        methods: [GET]\n        paths: [/v1/]\n"
     "    denied_requests:\n      - host: api.example.com\n        paths: [/v1]\n",
     "sessions.demo.denied_requests.0", 10, "refuses everything allowed_domains[1] allows"),
    ("    allowed_domains: [default]\n    denied_requests:\n      - host: evil.example\n",
     "sessions.demo.denied_requests.0", 6, "denies nothing"),
    ("    allowed_domains:\n      - api.example.com\n      - host: api.example.com\n"
     "        methods: [GET]\n",
     "sessions.demo.allowed_domains.1", 6, "also listed at allowed_domains[0]"),
    ("    allowed_domains:\n      - all\n      - host: api.example.com\n"
     "        methods: [GET]\n",
     "sessions.demo.allowed_domains.1", 6, "no effect with allowed_domains: all"),
])
def test_bad_rules_name_the_field_and_line(tmp_path: Path, body: str, where: str, line: int,
                                           says: str) -> None:
    path, at, message = load_error(tmp_path, body)
    assert (path, at) == (where, line), message
    assert says in message


def test_a_valid_rule_loads_and_methods_are_upper_cased(tmp_path: Path) -> None:
    path = tmp_path / "paude.yaml"
    path.write_text("version: 1\nsessions:\n  demo:\n    allowed_domains:\n      - default\n"
                    "      - host: API.example.com\n        methods: [get, head]\n"
                    "        paths: [/v1/]\n", encoding="utf-8")
    file = load_paude_file(path)
    rule = file.sessions["demo"].allowed_domains[1]  # type: ignore[index]
    assert rule == RequestRule(host="api.example.com", methods=["GET", "HEAD"], paths=["/v1/"])


def test_a_rule_without_methods_or_paths_is_a_tunnel() -> None:
    allow = expand([RequestRule(host="api.example.com")])
    assert allow.domains == ("api.example.com",) and allow.rules == ()


def test_what_the_user_writes_for_a_host_replaces_the_group_rules() -> None:
    mine = RequestRule(host="github.com", methods=["GET", "POST"], paths=["/myorg/"])
    allow = expand(["github", mine])
    github = [r for r in allow.rules if r.host == "github.com"]
    assert [(r.methods, r.source) for r in github] == [(("GET", "POST"), "allowed_domains[1]")]
    # The group's receive-pack deny is gone with its rules for that host.
    assert not [d for d in allow.denies if d.host == "github.com"]
    assert {r.host for r in allow.rules if r.source == "github"} == {
        "api.github.com", "codeload.github.com", ".githubusercontent.com"}


def test_a_deny_on_a_tunnelled_name_makes_it_inspected() -> None:
    deny = RequestRule(host="api.example.com", methods=["DELETE"])
    allow = expand(["api.example.com"], [deny])
    assert allow.domains == () and allow.inspected == ("api.example.com",)
    assert [(r.host, r.methods) for r in allow.rules] == [("api.example.com", ())]


def test_a_whole_host_deny_narrows_a_group_without_inspecting() -> None:
    allow = expand(["github"], [RequestRule(host="codeload.github.com")])
    [deny] = [d for d in allow.denies if d.source == "denied_requests[0]"]
    assert not deny.inspects


def test_overlap_is_only_a_full_cover() -> None:
    allow = Rule("allow", "a.example", ("GET",), ("/v1/",), "allowed_domains[0]")
    check_overlaps([allow], [Rule("deny", "a.example", ("POST",), (), "denied_requests[0]")])
    check_overlaps([allow], [Rule("deny", "a.example", (), ("/v1/x",), "denied_requests[0]")])
    check_overlaps([allow], [Rule("deny", "b.example", (), (), "denied_requests[0]")])
    with pytest.raises(ValueError, match="refuses everything"):
        check_overlaps([allow], [Rule("deny", ".example", (), (), "denied_requests[0]")])


@pytest.mark.parametrize(("path", "matches", "misses"), [
    ("/v1/", ["/v1/items", "/V1/items?x=1"], ["/v2/v1/", "/v1"]),
    ("/a.b+c/", ["/a.b+c/d"], ["/aXb+c/d", "/a.bbc/d"]),
    ("~^/repos/[^/]+/issues$", ["/repos/x/issues"], ["/repos/x/y/issues"]),
])
def test_path_patterns_match_as_squid_would(path: str, matches: list[str],
                                            misses: list[str]) -> None:
    # squid matches urlpath_regex -i with POSIX extended expressions; these patterns use
    # only syntax both dialects read alike.
    pattern = re.compile(path_regex(path), re.I)
    assert all(pattern.search(m) for m in matches)
    assert not any(pattern.search(m) for m in misses)


def test_reads_only() -> None:
    assert reads_only(("GET", "HEAD"), ())
    assert not reads_only((), ())
    assert not reads_only(("GET", "POST"), ())
    assert reads_only(("POST",), ("^/[^/]+/[^/]+/git-upload-pack$",))
    assert not reads_only(("POST",), ("^/[^/]+/[^/]+/git-receive-pack$",))


def test_layers_that_contradict_each_other_point_at_the_entry(tmp_path: Path) -> None:
    from paude.config import load_session

    (tmp_path / "paude.yaml").write_text(
        "version: 1\ndefaults:\n  allowed_domains: [default]\nsessions:\n  demo:\n"
        "    denied_requests:\n      - host: evil.example\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_session(tmp_path, "demo")
    [problem] = exc.value.problems
    assert (problem.path, problem.line) == ("sessions.demo.denied_requests.0", 7)
    assert "denies nothing" in problem.message
