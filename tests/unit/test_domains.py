"""paude.domains.expand: groups, wildcards, dedupe and `all`."""

from __future__ import annotations

import pytest

from paude.domains import DEFAULT_GROUPS, GROUP_REGEXES, GROUPS, Allowlist, expand

VERTEX_RE = r"^[a-z0-9-]+-aiplatform\.googleapis\.com$"


def test_default_is_vertexai_plus_pypi() -> None:
    allow = expand(["default"])
    assert DEFAULT_GROUPS == ("vertexai", "pypi")
    assert allow == Allowlist(False, tuple(sorted(GROUPS["vertexai"] + GROUPS["pypi"])),
                              (VERTEX_RE,))


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_each_group_expands_to_its_names(group: str) -> None:
    allow = expand([group])
    assert not allow.unrestricted
    assert set(allow.domains) == set(GROUPS[group])
    assert allow.regexes == GROUP_REGEXES.get(group, ())


def test_names_are_sorted_and_unique() -> None:
    allow = expand(["pypi", "default", "pypi.org", "b.example.com", "a.example.com"])
    assert list(allow.domains) == sorted(set(allow.domains))
    assert allow.domains.count("pypi.org") == 1
    assert allow.regexes == (VERTEX_RE,)


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
    assert ".githubusercontent.com" in allow.domains
    assert "raw.githubusercontent.com" not in allow.domains


@pytest.mark.parametrize("entries", [["all"], ["default", "all"], ["all", ".example.com"]])
def test_all_is_unrestricted(entries: list[str]) -> None:
    allow = expand(entries)
    assert allow == Allowlist(True, (), ())
    assert allow.describe() == ["* (all domains: unrestricted)"]


def test_empty_list_allows_nothing() -> None:
    assert expand([]) == Allowlist(False, (), ())
    assert expand([]).describe() == []


def test_describe_lists_names_then_regexes() -> None:
    assert expand(["vertexai"]).describe() == [*sorted(GROUPS["vertexai"]), f"~{VERTEX_RE}"]
