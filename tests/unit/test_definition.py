"""`paude create` writing paude.yaml: comments kept, conflicts refused, nothing half-done."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import yaml

from paude.config import load_paude_file
from paude.definition import CreateFlags, commit_definition, plan_definition, restore
from paude.errors import ConfigError


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "paude-home"))


TEAM_FILE = """\
version: 1
# Reviewed by the platform team: keep egress tight.
defaults:
  image:
    base: localhost/paude-base:bookworm  # built by make base-image
sessions:
  # the reviewer bot
  reviewer: {allowed_domains: [default, github]}
"""


def test_new_session_is_one_added_line_and_comments_survive(tmp_path: Path) -> None:
    (tmp_path / "paude.yaml").write_text(TEAM_FILE)
    flags = CreateFlags(yolo=True, allowed_domains=("default", ".example.com"),
                        args='-p "refactor the auth module"')
    definition = plan_definition(tmp_path, "my-project", flags)
    assert definition.new_session and definition.changed
    added = [ln for ln in definition.text.splitlines() if ln not in TEAM_FILE.splitlines()]
    assert len(added) == 1 and added[0].startswith("  my-project: {")
    assert commit_definition(tmp_path, "my-project", flags).text == definition.text
    text = (tmp_path / "paude.yaml").read_text()
    assert "# Reviewed by the platform team" in text and "# built by make base-image" in text
    spec = load_paude_file(tmp_path / "paude.yaml").sessions["my-project"]
    assert spec.yolo is True and spec.allowed_domains == ["default", ".example.com"]
    assert spec.agent is not None and spec.agent.args == ["-p", "refactor the auth module"]


def test_no_file_yet_writes_a_minimal_one(tmp_path: Path) -> None:
    definition = commit_definition(tmp_path, "demo", CreateFlags(yolo=True))
    assert definition.previous is None
    assert yaml.safe_load((tmp_path / "paude.yaml").read_text()) == {
        "version": 1, "sessions": {"demo": {"yolo": True}}}
    restore(definition, "demo")
    assert not (tmp_path / "paude.yaml").exists()


def test_a_link_planted_beside_paude_yaml_is_never_written_through(tmp_path: Path) -> None:
    # The agent commits links under the names a writer might use for its temporary file
    # (this process's pid, as paude once did) and a dangling paude.yaml pointing home.
    repo, home = tmp_path / "repo", tmp_path / "home"
    repo.mkdir()
    home.mkdir()
    (home / ".bashrc").write_text("the user's\n")
    (repo / f".paude.yaml.{os.getpid()}.tmp").symlink_to(home / ".bashrc")
    (repo / "paude.yaml").symlink_to(home / ".profile")
    commit_definition(repo, "demo", CreateFlags(yolo=True))
    assert (home / ".bashrc").read_text() == "the user's\n"
    assert not (home / ".profile").exists()
    # Control: the definition was written, in the repository, as a file of its own.
    assert not (repo / "paude.yaml").is_symlink()
    assert load_paude_file(repo / "paude.yaml").sessions["demo"].yolo is True


def test_file_without_sessions_gets_a_sessions_block(tmp_path: Path) -> None:
    (tmp_path / "paude.yaml").write_text("version: 1\ndefaults: {yolo: false}\n")
    definition = plan_definition(tmp_path, "demo", CreateFlags())
    assert definition.text == "version: 1\ndefaults: {yolo: false}\nsessions:\n  demo: {}\n"


def test_existing_session_with_the_same_flags_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "paude.yaml").write_text(TEAM_FILE)
    definition = plan_definition(tmp_path, "reviewer",
                                 CreateFlags(allowed_domains=("default", "github")))
    assert not definition.new_session and not definition.changed
    assert plan_definition(tmp_path, "reviewer", CreateFlags()).changed is False


def test_existing_session_with_other_flags_is_refused_and_untouched(tmp_path: Path) -> None:
    (tmp_path / "paude.yaml").write_text(TEAM_FILE)
    with pytest.raises(ConfigError) as exc:
        plan_definition(tmp_path, "reviewer", CreateFlags(yolo=True, allowed_domains=("all",)))
    text = exc.value.render()
    assert "sessions.reviewer.allowed_domains" in text and "sessions.reviewer.yolo" in text
    assert "--allowed-domains" in text
    assert (tmp_path / "paude.yaml").read_text() == TEAM_FILE


def test_bad_flag_values_name_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        plan_definition(tmp_path, "demo", CreateFlags(allowed_domains=("10.0.0.1",)))
    assert "--allowed-domains" in exc.value.render()
    with pytest.raises(ConfigError) as exc:
        plan_definition(tmp_path, "demo", CreateFlags(args='-p "unterminated'))
    assert "--args" in exc.value.render()
    assert not (tmp_path / "paude.yaml").exists()


def test_restore_puts_the_previous_text_back(tmp_path: Path) -> None:
    (tmp_path / "paude.yaml").write_text(TEAM_FILE)
    definition = commit_definition(tmp_path, "demo", CreateFlags(yolo=True))
    assert (tmp_path / "paude.yaml").read_text() != TEAM_FILE
    restore(definition, "demo")
    assert (tmp_path / "paude.yaml").read_text() == TEAM_FILE


def test_a_create_that_read_the_file_before_another_wrote_keeps_both(tmp_path: Path) -> None:
    # Create A plans from the file, create B writes its session, then A writes: A's write
    # starts again from B's file instead of the one it saw.
    (tmp_path / "paude.yaml").write_text(TEAM_FILE)
    seen_by_a = plan_definition(tmp_path, "alpha", CreateFlags())
    commit_definition(tmp_path, "beta", CreateFlags(yolo=True))
    written = commit_definition(tmp_path, "alpha", CreateFlags())
    assert written.text != seen_by_a.text
    names = set(load_paude_file(tmp_path / "paude.yaml").sessions)
    assert names == {"reviewer", "alpha", "beta"}
    assert "# Reviewed by the platform team" in (tmp_path / "paude.yaml").read_text()


def test_restore_after_another_create_removes_only_its_own_entry(tmp_path: Path) -> None:
    (tmp_path / "paude.yaml").write_text(TEAM_FILE)
    failed = commit_definition(tmp_path, "alpha", CreateFlags(yolo=True))
    commit_definition(tmp_path, "beta", CreateFlags())
    restore(failed, "alpha")
    text = (tmp_path / "paude.yaml").read_text()
    assert set(load_paude_file(tmp_path / "paude.yaml").sessions) == {"reviewer", "beta"}
    assert "# Reviewed by the platform team" in text  # removed as the line it added
    # Control: with nobody writing in between, the file is put back byte for byte.
    again = commit_definition(tmp_path, "gamma", CreateFlags())
    before = again.previous
    restore(again, "gamma")
    assert (tmp_path / "paude.yaml").read_text() == before


def test_restore_of_a_file_it_created_keeps_sessions_added_since(tmp_path: Path) -> None:
    failed = commit_definition(tmp_path, "alpha", CreateFlags())
    commit_definition(tmp_path, "beta", CreateFlags())
    restore(failed, "alpha")
    assert set(load_paude_file(tmp_path / "paude.yaml").sessions) == {"beta"}


def test_restore_after_a_rewrite_drops_its_session_through_the_model(tmp_path: Path) -> None:
    failed = commit_definition(tmp_path, "alpha", CreateFlags(yolo=True))
    (tmp_path / "paude.yaml").write_text(
        "version: 1\nsessions:\n  beta: {}\n  alpha:\n    yolo: true\n")
    restore(failed, "alpha")
    assert set(load_paude_file(tmp_path / "paude.yaml").sessions) == {"beta"}


def test_parallel_creates_of_different_sessions_all_keep_their_entry(tmp_path: Path) -> None:
    (tmp_path / "paude.yaml").write_text(TEAM_FILE)
    names = [f"s{i}" for i in range(12)]
    start = threading.Barrier(len(names))

    def create(name: str) -> None:
        start.wait()
        commit_definition(tmp_path, name, CreateFlags())

    threads = [threading.Thread(target=create, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(load_paude_file(tmp_path / "paude.yaml").sessions) == {"reviewer", *names}
