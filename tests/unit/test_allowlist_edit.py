"""`paude allowed-domains`: the allowlist edit keeps paude.yaml's comments and layout,
validates through the models, and writes nothing it refuses."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from paude import allowlist_edit
from paude.cli import main
from paude.errors import ConfigError, PaudeError, UsageError
from tests.conftest import Golden

COMMENTED = """\
# The team's sessions. Reviewed in pull requests.
version: 1
defaults:
  allowed_domains: [default]  # package indexes and the model
sessions:
  # The main one.
  demo:
    yolo: true
    allowed_domains:
      - default      # pypi and the model gateway
      - .example.com # our docs
      - host: api.example.com   # read-only API
        methods: [GET]
    # What the agent runs.
    agent: {args: []}
  other: {}   # untouched
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PAUDE_DEBUG", raising=False)
    path = tmp_path / "repo"
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    monkeypatch.chdir(path)
    return path


def edited(repo: Path, text: str, name: str = "demo", **change: list[str]) -> str:
    (repo / "paude.yaml").write_text(text)
    edit = allowlist_edit.plan_edit(repo, name, **change)
    assert (repo / "paude.yaml").read_text() == text  # planned, not written
    return edit.text


def test_block_list_keeps_every_comment(repo: Path, golden: Golden) -> None:
    text = edited(repo, COMMENTED, add=["github"], remove=[".example.com"])
    golden.check("allowlist/block-add-remove.yaml", text)
    assert "# pypi and the model gateway" in text and "# read-only API" in text
    assert "# our docs" not in text  # the removed entry's own line goes with it
    assert text.replace("      - github\n", "").replace(
        "      - .example.com # our docs\n", "") == COMMENTED.replace(
        "      - .example.com # our docs\n", "")


def test_rule_entries_are_removed_by_host(repo: Path) -> None:
    text = edited(repo, COMMENTED, remove=["api.example.com"])
    assert "api.example.com" not in text and "methods" not in text
    assert "    # What the agent runs.\n    agent: {args: []}\n" in text


@pytest.mark.parametrize("before, after", [
    ("sessions:\n  demo: {allowed_domains: [default]}  # c\n",
     "sessions:\n  demo: {allowed_domains: [default, pypi]}  # c\n"),
    ("sessions:\n  demo: {yolo: true}  # c\n",
     "sessions:\n  demo: {allowed_domains: [default, pypi], yolo: true}  # c\n"),
    ("sessions:\n  demo: {}  # c\n",
     "sessions:\n  demo: {allowed_domains: [default, pypi]}  # c\n"),
    ("sessions:\n  demo:  # c\n", "sessions:\n  demo: {allowed_domains: [default, pypi]}  # c\n"),
    ("sessions:\n  demo: ~\n", "sessions:\n  demo: {allowed_domains: [default, pypi]}\n"),
    ("sessions:\n  demo:\n    yolo: true  # c\n  # next\n  other: {}\n",
     "sessions:\n  demo:\n    yolo: true  # c\n    allowed_domains: [default, pypi]\n"
     "  # next\n  other: {}\n"),
    ("sessions:\n  demo:\n    agent:\n      args: [-p, x]\n# end\n",
     "sessions:\n  demo:\n    agent:\n      args: [-p, x]\n    allowed_domains: [default, pypi]\n"
     "# end\n"),
])
def test_each_way_a_session_can_be_written(repo: Path, before: str, after: str) -> None:
    assert edited(repo, "version: 1\n" + before, add=["pypi"]) == "version: 1\n" + after


def test_an_inherited_list_is_written_under_the_session(repo: Path) -> None:
    text = "version: 1\ndefaults:\n  allowed_domains: [pypi]\nsessions:\n  demo: {}\n"
    (repo / "paude.yaml").write_text(text)
    edit = allowlist_edit.plan_edit(repo, "demo", add=[".example.com"])
    assert edit.inherited and edit.before == ("pypi",)
    assert edit.text == text.replace("demo: {}", "demo: {allowed_domains: [pypi, .example.com]}")


def test_replace_in_a_new_order_rewrites_the_block_list(repo: Path) -> None:
    text = edited(repo, COMMENTED, replace=[".example.com", "default"])
    assert "    allowed_domains:\n      [.example.com, default]\n    # What" in text


def test_nothing_to_change(repo: Path) -> None:
    (repo / "paude.yaml").write_text(COMMENTED)
    assert not allowlist_edit.plan_edit(repo, "demo", add=["default"]).changed


@pytest.mark.parametrize("change, error, says", [
    ({"add": ["http://x.example.com"]}, ConfigError, "sessions.demo.allowed_domains.3: "),
    ({"add": ["all"]}, ConfigError, "sessions.demo.allowed_domains: Value error, "
                                    "allowed_domains[2]: method and path rules have no effect"),
    ({"replace": ["bad host"]}, ConfigError, "sessions.demo.allowed_domains.0"),
    ({"remove": ["pypi"]}, PaudeError, "pypi: not in session demo's allowed_domains"),
    ({"add": ["x.example.com"], "replace": ["y.example.com"]}, UsageError, "--replace"),
    ({}, UsageError, "nothing to change"),
])
def test_refused_edits_leave_the_file(repo: Path, change: dict[str, list[str]],
                                      error: type[Exception], says: str) -> None:
    (repo / "paude.yaml").write_text(COMMENTED)
    with pytest.raises(error, match=re.escape(says)):
        allowlist_edit.plan_edit(repo, "demo", **change)
    assert (repo / "paude.yaml").read_text() == COMMENTED


def test_cli_shows_the_allowlist_and_writes_an_unapplied_session(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "paude.yaml").write_text(COMMENTED)
    assert main(["allowed-domains", "demo"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Session demo allowed_domains: [default, .example.com, {host: "
                          "api.example.com, methods: [GET]}]\nThe proxy allows:\n")
    assert "  pypi.org GET,HEAD any-path\n" in out and "  model gateway: claude\n" in out
    assert main(["allowed-domains", "demo", "--add", "github", "--dry-run"]) == 0
    assert (repo / "paude.yaml").read_text() == COMMENTED
    assert main(["allowed-domains", "demo", "--add", "github"]) == 0
    assert "      - github\n" in (repo / "paude.yaml").read_text()
    out = capsys.readouterr().out
    assert "  + [default, .example.com, {host: api.example.com, methods: [GET]}, github]" in out
    assert "`paude apply demo` makes it" in out
