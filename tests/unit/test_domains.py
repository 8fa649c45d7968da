"""paude.domains.expand: groups, wildcards, dedupe and `all`."""

from __future__ import annotations

import pytest

from paude.domains import DEFAULT_GROUPS, GROUP_REGEXES, GROUPS, ROUTES, Allowlist, expand


def test_default_is_pypi_for_the_agent_and_both_gateway_routes() -> None:
    allow = expand(["default"])
    assert DEFAULT_GROUPS == ("claude", "vertexai", "pypi")
    assert allow.hosts == tuple(sorted(GROUPS["pypi"]))
    assert allow.domains == () and allow.routes == ("claude", "vertexai")
    # PyPI is GET-only: every pypi host is inspected, with a GET/HEAD rule and no other.
    assert allow.inspected == allow.hosts
    assert {(r.host, r.methods) for r in allow.rules} == {
        (h, ("GET", "HEAD")) for h in GROUPS["pypi"]}


@pytest.mark.parametrize("entries", [["default"], ["claude", "vertexai"], ["all"]])
def test_no_model_or_google_host_for_the_agent(entries: list[str]) -> None:
    allow = expand(entries)
    for name in allow.hosts:
        assert not name.endswith(("googleapis.com", "google.com", "anthropic.com")), name
    assert allow.regexes == ()


@pytest.mark.parametrize("route", ROUTES)
def test_model_words_are_gateway_routes(route: str) -> None:
    allow = expand([route])
    assert allow == Allowlist(False, (), (), (route,))
    assert allow.describe() == [] and allow.describe_routes() == [f"model gateway: {route}"]


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_each_group_expands_to_its_names(group: str) -> None:
    allow = expand([group])
    assert not allow.unrestricted
    assert set(allow.hosts) == set(GROUPS[group])
    assert allow.regexes == GROUP_REGEXES.get(group, ())


def test_names_are_sorted_and_unique() -> None:
    allow = expand(["pypi", "default", "pypi.org", "b.example.com", "a.example.com"])
    assert list(allow.domains) == sorted(set(allow.domains))
    assert allow.domains.count("pypi.org") == 1


def test_names_are_case_folded() -> None:
    allow = expand(["API.Example.COM", "api.example.com", ".Corp.Example.org"])
    assert allow.domains == (".corp.example.org", "api.example.com")


def test_names_covered_by_a_suffix_are_dropped() -> None:
    allow = expand([".example.com", "api.example.com", "example.com", "deep.api.example.com",
                    ".sub.example.com", "notexample.com"])
    # squid rejects an exact name that a listed .suffix covers; .example.com covers
    # example.com itself, but not a different domain that merely ends in the same text.
    assert allow.domains == (".example.com", "notexample.com")


def test_suffix_does_not_cover_unrelated_names() -> None:
    allow = expand([".example.com", "example.org", "myexample.com"])
    assert allow.domains == (".example.com", "example.org", "myexample.com")


def test_github_group_suffix_survives_dedupe() -> None:
    allow = expand(["github", "raw.githubusercontent.com"])
    assert ".githubusercontent.com" in allow.hosts
    # Named on its own under the group's read-only suffix, the name gets every method.
    assert ("raw.githubusercontent.com", ()) in {(r.host, r.methods) for r in allow.rules}
    assert "raw.githubusercontent.com" not in allow.domains


@pytest.mark.parametrize("entries", [["all"], ["default", "all"], ["all", ".example.com"]])
def test_all_is_unrestricted(entries: list[str]) -> None:
    allow = expand(entries)
    assert allow == Allowlist(True, (), (), ROUTES)
    assert allow.describe() == ["* (all domains: unrestricted)"]


def test_empty_list_allows_nothing() -> None:
    assert expand([]) == Allowlist(False, (), ())
    assert expand([]).describe() == []


def test_describe_lists_names_then_regexes() -> None:
    assert Allowlist(False, ("a.example",), ("^b$",)).describe() == ["a.example", "~^b$"]
