"""Which base an image's layers start with, and whether they still do (freshness.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest

from paude.proc import CommandResult
from paude.stacks.podman import freshness
from paude.stacks.podman.images import BuildSpec


@pytest.mark.parametrize(("text", "args", "expected"), [
    ("FROM debian:bookworm\nRUN true\n", {}, "debian:bookworm"),
    ("FROM --platform=linux/amd64 debian AS build\n", {}, "debian"),
    # The last stage counts, followed back through stage names to an image.
    ("FROM golang AS build\nRUN go build\nFROM debian\nCOPY --from=build /x /x\n", {}, "debian"),
    ("FROM debian AS base\nFROM golang AS tools\nFROM base\n", {}, "debian"),
    ("FROM debian AS one\nFROM one AS two\nfrom TWO\n", {}, "debian"),
    ("FROM ${BASE}\n", {"BASE": "localhost/mine:1"}, "localhost/mine:1"),
    # Nothing to compare with: an argument only the Dockerfile's ARG sets, scratch, no FROM.
    ("ARG BASE=debian\nFROM $BASE\n", {}, None),
    ("FROM golang AS build\nFROM scratch\nCOPY --from=build /x /x\n", {}, None),
    ("RUN true\n", {}, None),
])
def test_final_base(text: str, args: dict[str, str], expected: str | None) -> None:
    assert freshness.final_base(text, args) == expected


def test_a_stage_named_like_its_image_still_lists_the_image_for_review() -> None:
    # Listed before its own name hides it: the base-image-pinned rule must see `python`.
    spec = BuildSpec("paude-userbase", {"Dockerfile": "FROM python AS python\nFROM python\n"})
    assert spec.bases == ["python"]
    assert spec.final_base == "python"


def layers(*ids: str, arch: str = "amd64") -> dict[str, Any]:
    return {"Architecture": arch, "Os": "linux", "RootFS": {"Layers": list(ids)}}


@pytest.mark.parametrize(("image", "base", "expected"), [
    (layers("a", "b", "c"), layers("a", "b"), True),
    (layers("a"), layers("a"), True),            # built with metadata only
    (layers("x", "b", "c"), layers("a", "b"), False),
    (layers("a"), layers("a", "b"), False),       # the base grew a layer
    (layers("a", "b"), layers("a", "b", arch="arm64"), None),
    (layers(), layers("a"), None),
])
def test_built_on(image: dict[str, Any], base: dict[str, Any], expected: bool | None) -> None:
    assert freshness.built_on(image, base) is expected


class FakeRun:
    def __init__(self, found: list[dict[str, Any]], missing: Sequence[str]) -> None:
        self.found, self.missing = found, missing
        self.calls: list[list[str]] = []

    def __call__(self, argv: Sequence[str], **_kw: Any) -> CommandResult:
        self.calls.append(list(argv))
        err = "".join(f"Error: inspecting object: {n}: image not known\n" for n in self.missing)
        return CommandResult(tuple(argv), 125 if self.missing else 0, json.dumps(self.found), err)


TAG = "localhost/paude-agent:0123456789abcdef"
IMAGE = {"Id": "sha256:" + "1" * 64, "RepoTags": [TAG], **layers("a", "b")}
BASE = {"Id": "sha256:" + "2" * 64, "RepoTags": ["localhost/paude-base:bookworm"], **layers("z")}


def test_one_podman_call_answers_for_both(monkeypatch: pytest.MonkeyPatch) -> None:
    run = FakeRun([IMAGE, BASE], [])
    monkeypatch.setattr(freshness.proc, "run", run)
    image, stale = freshness.stale_base(TAG, "localhost/paude-base:bookworm")
    assert image == IMAGE and stale is True
    assert run.calls == [["podman", "image", "inspect", "--", TAG,
                          "localhost/paude-base:bookworm"]]


def test_a_base_that_looks_like_an_option_stays_a_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """An agent's Dockerfile says `FROM -f{{...}}`: podman must read it as an image name."""
    run = FakeRun([IMAGE], ["-f{{.Id}}"])
    monkeypatch.setattr(freshness.proc, "run", run)
    base = freshness.final_base("FROM -f{{.Id}}\n", {})
    assert base == "-f{{.Id}}"
    freshness.inspect_with_base(TAG, base)
    argv = run.calls[0]
    assert argv.index("--") < argv.index(base)


def test_a_base_podman_cannot_parse_is_no_evidence(monkeypatch: pytest.MonkeyPatch) -> None:
    def unparsable(argv: Sequence[str], **_kw: Any) -> CommandResult:
        return CommandResult(tuple(argv), 125, json.dumps([IMAGE]),
                             "Error: inspecting object: invalid reference format\n")

    monkeypatch.setattr(freshness.proc, "run", unparsable)
    assert freshness.stale_base(TAG, "-f{{.Id}}") == (IMAGE, False)


@pytest.mark.parametrize(("found", "missing", "image", "base"), [
    ([BASE], [TAG], None, BASE),   # only the base is left: the image is missing, not stale
    ([IMAGE], ["localhost/paude-base:bookworm"], IMAGE, None),
    ([], [TAG, "localhost/paude-base:bookworm"], None, None),
])
def test_answers_are_matched_by_name_when_one_is_missing(
        monkeypatch: pytest.MonkeyPatch, found: list[dict[str, Any]], missing: list[str],
        image: dict[str, Any] | None, base: dict[str, Any] | None) -> None:
    monkeypatch.setattr(freshness.proc, "run", FakeRun(found, missing))
    assert freshness.inspect_with_base(TAG, "localhost/paude-base:bookworm") == (image, base)


def test_a_podman_failure_is_not_taken_for_a_missing_image(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(argv: Sequence[str], **_kw: Any) -> CommandResult:
        return CommandResult(tuple(argv), 125, "", "Error: database is locked\n")

    monkeypatch.setattr(freshness.proc, "run", broken)
    with pytest.raises(Exception, match="database is locked"):
        freshness.inspect_with_base(TAG, "debian")


def test_the_base_comes_from_the_recorded_build_files() -> None:
    props = {"files": {"Containerfile": "FROM localhost/paude-base:bookworm\n"}}
    assert freshness.base_of(props) == "localhost/paude-base:bookworm"
    assert freshness.base_of({"files": {"Dockerfile": "FROM ${B}\n"},
                              "build_args": {"B": "x"}}) == "x"
    assert freshness.base_of({}) is None
