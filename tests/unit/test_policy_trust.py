"""The trust boundary of policies: the repository's paude-policy.yaml is data only, rules
with code come from outside the repository (the organisation's file in PAUDE_HOME, or an
installed package), and nothing the agent can write is imported, by paude or by the pack.

Every check file here writes a marker when imported or run, so a refusal is proven by the
marker's absence, and each refusal has a control in which the same code does run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from paude.cli import main
from paude.errors import ConfigError
from paude.policies import pack
from paude.policies.origins import inside, module_locations, repository_root
from paude.policies.resources import Resource, Violation
from paude.policies.settings import ResolvedCustom, resolve
from paude.policy import (
    HOME_POLICY_FILE,
    POLICY_FILE,
    WHY_NO_CODE,
    launcher,
    load,
)

# Writes "imported" at import and "ran" when the check runs; yields one finding.
TIDY = """\
import pathlib
pathlib.Path({marker!r}).write_text("imported")


def tidy(resources):
    pathlib.Path({marker!r}).write_text("ran")
    yield "tidied"
"""

RULE = """\
  - id: tidy
    level: advisory
    description: Keeps things tidy.
    fix: nothing to fix
    check: {check}
"""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository (its .git folder is enough) and a PAUDE_HOME beside it."""
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    return tmp_path / "repo"


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "marker"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def home(repo: Path) -> Path:
    return repo.parent / "home"


def tidy(folder: Path, marker: Path, name: str = "tidy.py") -> Path:
    return write(folder / name, TIDY.format(marker=str(marker)))


def policy(path: Path, check: str | None, *, rules: str = "") -> Path:
    text = f"version: 1\nrules:\n  base-image-pinned: {{level: mandatory}}\n{rules}"
    if check is not None:
        text += "custom_rules:\n" + RULE.format(check=check)
    return write(path, text)


def refused(repo: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load(repo)
    return caught.value


# ---------------------------------------------------------------- the repository's file


def test_repository_file_with_a_custom_rule_is_refused_and_nothing_runs(
        repo: Path, marker: Path) -> None:
    tidy(repo, marker)
    path = policy(repo / POLICY_FILE, "tidy.py:tidy")
    error = refused(repo)
    assert error.file == str(path)
    [problem] = error.problems
    # The entry starts on line 5 (after version, rules, its rule and custom_rules).
    assert (problem.path, problem.line) == ("custom_rules.0", 5)
    assert WHY_NO_CODE in problem.message
    text = error.render()
    assert f"{path}:5: custom_rules.0: a repository's policy file cannot add rules with code: " \
           "code in the repository would run on your machine; the agent can write this file" \
           in text
    assert "$PAUDE_HOME/policy.yaml (default ~/.paude/policy.yaml)" in text
    assert "installed package" in text
    assert not marker.exists()


def test_control_the_same_repository_file_without_custom_rules_is_accepted(repo: Path) -> None:
    policy(repo / POLICY_FILE, None)
    config = load(repo)
    assert config.levels["base-image-pinned"] == "mandatory" and config.custom == []


@pytest.mark.parametrize(("tail", "expected"), [
    # two entries: one problem each, on its own line
    ("custom_rules:\n  - {id: a, check: a.py:a}\n  - {id: b, check: b.py:b}\n",
     [("custom_rules.0", 4), ("custom_rules.1", 5)]),
    # flow style on one line
    ("custom_rules: [{id: a, check: a.py:a}, {id: b, check: b.py:b}]\n",
     [("custom_rules.0", 3), ("custom_rules.1", 3)]),
    # an empty list or any other value: the key itself
    ("custom_rules: []\n", [("custom_rules", 3)]),
    ("custom_rules: yes please\n", [("custom_rules", 3)]),
    # through a merge key: refused all the same (the line is not known)
    ("<<: {custom_rules: [{id: a, check: a.py:a}]}\n", [("custom_rules", None)]),
])
def test_every_shape_of_custom_rules_in_the_repository_is_refused(
        repo: Path, tail: str, expected: list[tuple[str, int | None]]) -> None:
    path = write(repo / POLICY_FILE, "version: 1\nrules: {}\n" + tail)
    error = refused(repo)
    assert error.file == str(path)
    assert [(p.path, p.line) for p in error.problems] == expected
    assert all(WHY_NO_CODE in p.message for p in error.problems)


def test_the_refusal_comes_before_any_other_problem_of_the_file(repo: Path) -> None:
    write(repo / POLICY_FILE, "version: 7\nbogus: 1\ncustom_rules:\n  - check: a.py:a\n")
    [problem] = refused(repo).problems
    assert (problem.path, problem.line) == ("custom_rules.0", 4)


def test_cli_refuses_with_exit_1(repo: Path, marker: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    tidy(repo, marker)
    path = policy(repo / POLICY_FILE, "tidy.py:tidy")
    monkeypatch.chdir(repo)
    assert main(["policies"]) == 1
    err = capsys.readouterr().err
    assert f"{path}:5: custom_rules.0" in err and WHY_NO_CODE in err
    assert "Traceback" not in err
    assert not marker.exists()
    # Control: without the rule the same command lists the levels.
    policy(repo / POLICY_FILE, None)
    assert main(["policies"]) == 0
    assert "mandatory  base-image-pinned" in capsys.readouterr().out


def test_a_paude_home_inside_the_repository_is_a_repository_file(
        repo: Path, marker: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inner = repo / ".paude"
    monkeypatch.setenv("PAUDE_HOME", str(inner))
    tidy(repo.parent / "org", marker)
    path = policy(inner / HOME_POLICY_FILE, str(repo.parent / "org" / "tidy.py") + ":tidy")
    error = refused(repo)
    assert error.file == str(path)
    assert [(p.path, p.line) for p in error.problems] == [("custom_rules.0", 5)]
    # Control: levels and limits are still read from it.
    policy(inner / HOME_POLICY_FILE, None)
    assert load(repo).levels["base-image-pinned"] == "mandatory"


# ---------------------------------------------------------------- the organisation's file


def test_control_a_home_rule_outside_the_repository_loads_and_runs(
        repo: Path, marker: Path) -> None:
    check = tidy(home(repo) / "rules", marker)
    policy(home(repo) / HOME_POLICY_FILE, "rules/tidy.py:tidy")
    [rule] = load(repo).custom
    assert rule.path == str(check.resolve()) and not marker.exists()  # validated, not run
    found = list(pack.load_custom(rule, [str(repo)])([], {}))
    assert found == [Violation("tidied")] and marker.read_text() == "ran"


def in_repo_checks(repo: Path, marker: Path) -> dict[str, str]:
    """Ways a home policy file can name a check file the agent can write."""
    tidy(repo, marker)
    tidy(repo / "tools", marker)
    (home(repo) / "linked.py").symlink_to(repo / "tidy.py")
    (home(repo) / "linked-folder").symlink_to(repo / "tools")
    return {"relative": "../repo/tidy.py:tidy",
            "absolute": f"{repo / 'tidy.py'}:tidy",
            "symlinked file": "linked.py:tidy",
            "symlinked folder": "linked-folder/tidy.py:tidy"}


@pytest.mark.parametrize("how", ["relative", "absolute", "symlinked file", "symlinked folder"])
def test_a_home_rule_whose_file_is_in_the_repository_is_refused(
        repo: Path, marker: Path, how: str) -> None:
    check = in_repo_checks(repo, marker)[how]
    path = policy(home(repo) / HOME_POLICY_FILE, check)
    error = refused(repo)
    assert error.file == str(path)
    [problem] = error.problems
    assert (problem.path, problem.line) == ("custom_rules.0.check", 9)
    assert f"inside the repository {repo.resolve()}" in problem.message
    assert f"{path}:9: custom_rules.0.check" in error.render()
    assert not marker.exists()


def test_the_repository_is_the_whole_git_repository(repo: Path, marker: Path) -> None:
    """paude.yaml in a subfolder: the agent still writes every folder of the repository."""
    project = repo / "services" / "api"
    project.mkdir(parents=True)
    tidy(repo / "tools", marker)
    policy(home(repo) / HOME_POLICY_FILE, f"{repo / 'tools' / 'tidy.py'}:tidy")
    assert "inside the repository" in refused(project).problems[0].message
    assert not marker.exists()
    assert repository_root(project) == repo.resolve()
    # Control: without a .git folder the project folder is the repository.
    assert repository_root(repo.parent / "home") == (repo.parent / "home").resolve()


# ---------------------------------------------------------------- installed modules

PACKAGE_INIT = """\
import pathlib
pathlib.Path({marker!r}).write_text("package imported")
"""


@pytest.fixture
def site(tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path holding the organisation's package acme_rules."""
    folder = tmp_path / "site"
    write(folder / "acme_rules" / "__init__.py", PACKAGE_INIT.format(marker=str(marker)))
    tidy(folder / "acme_rules", marker, "checks.py")
    monkeypatch.syspath_prepend(str(folder))
    for name in [n for n in sys.modules if n.startswith(("acme_rules", "repo_rules"))]:
        monkeypatch.delitem(sys.modules, name)
    return folder


def test_control_a_module_rule_loads_without_import_and_runs_in_the_pack(
        repo: Path, site: Path, marker: Path) -> None:
    policy(home(repo) / HOME_POLICY_FILE, "acme_rules.checks:tidy")
    [rule] = load(repo).custom
    assert (rule.module, rule.path, rule.function) == ("acme_rules.checks", None, "tidy")
    assert not marker.exists()  # found through the import system's metadata only
    locations, complete = module_locations("acme_rules.checks")
    assert complete and site / "acme_rules" / "checks.py" in locations
    assert list(pack.load_custom(rule, [str(repo)])([], {})) == [Violation("tidied")]
    assert marker.read_text() == "ran"


def test_a_missing_module_is_refused_with_its_line(repo: Path) -> None:
    path = policy(home(repo) / HOME_POLICY_FILE, "no_such_org_rules.checks:tidy")
    error = refused(repo)
    [problem] = error.problems
    assert (error.file, problem.path, problem.line) == (str(path), "custom_rules.0.check", 9)
    assert "no installed module no_such_org_rules" in problem.message


def test_a_module_in_the_repository_is_refused(
        repo: Path, site: Path, marker: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An editable install of the repository, or PYTHONPATH=., puts it on sys.path."""
    write(repo / "repo_rules" / "__init__.py", PACKAGE_INIT.format(marker=str(marker)))
    tidy(repo / "repo_rules", marker, "checks.py")
    monkeypatch.syspath_prepend(str(repo))
    path = policy(home(repo) / HOME_POLICY_FILE, "repo_rules.checks:tidy")
    error = refused(repo)
    [problem] = error.problems
    assert (error.file, problem.line) == (str(path), 9)
    assert f"inside the repository {repo.resolve()}" in problem.message
    assert not marker.exists()


# ---------------------------------------------------------------- the pack checks again


def resolved(**source: str) -> ResolvedCustom:
    return ResolvedCustom(id="tidy", level="advisory", description="Tidy.", fix="none",
                          function="tidy", **source)


def test_the_pack_refuses_a_check_file_in_the_repository(
        repo: Path, marker: Path) -> None:
    check = tidy(repo, marker)
    link = home(repo) / "linked.py"
    link.symlink_to(check)
    for source in (check, link):
        with pytest.raises(ValueError, match="inside the repository"):
            pack.load_custom(resolved(path=str(source)), [str(repo)])
    assert not marker.exists()
    # Control: the same file when no repository claims it.
    assert list(pack.load_custom(resolved(path=str(link)), [])([], {})) == [Violation("tidied")]
    assert marker.read_text() == "ran"


def test_the_pack_refuses_a_module_in_the_repository_before_importing_it(
        repo: Path, site: Path, marker: Path) -> None:
    with pytest.raises(ValueError, match="inside the repository"):
        pack.load_custom(resolved(module="acme_rules.checks"), [str(site)])
    assert not marker.exists() and "acme_rules" not in sys.modules
    check = pack.load_custom(resolved(module="acme_rules.checks"), [str(repo)])
    assert list(check([Resource("t", "agent")], {})) == [Violation("tidied")]


def test_a_package_that_reaches_into_the_repository_is_stopped_before_that_code_runs(
        repo: Path, site: Path, tmp_path: Path) -> None:
    """A package extending its path at import: only the pack, importing step by step, can see
    that the submodule would come from the repository."""
    sneaky = tmp_path / "sneaky-marker"
    write(site / "acme_rules" / "__init__.py", f"__path__.append({str(repo / 'ext')!r})\n")
    tidy(repo / "ext", sneaky, "local.py")
    policy(home(repo) / HOME_POLICY_FILE, "acme_rules.local:tidy")
    [rule] = load(repo).custom  # not found without importing: left to the pack
    assert module_locations("acme_rules.local")[1] is False
    with pytest.raises(ValueError, match="inside the repository"):
        pack.load_custom(rule, [str(repo)])
    assert not sneaky.exists()


def test_inside_follows_symlinks(tmp_path: Path) -> None:
    (tmp_path / "repo").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path / "repo")
    assert inside(tmp_path / "out" / "link" / "x.py", [tmp_path / "repo"]) \
        == (tmp_path / "repo").resolve()
    assert inside(tmp_path / "out" / "x.py", [tmp_path / "repo"]) is None
    assert inside(tmp_path / "repo-other" / "x.py", [tmp_path / "repo"]) is None


# ---------------------------------------------------------------- the pack's interpreter

SHADOW = """\
import pathlib
pathlib.Path({marker!r}).write_text("shadowed")
"""


def test_the_pack_never_imports_paude_from_the_engines_working_directory(
        tmp_path: Path, marker: Path) -> None:
    """A `paude/` folder in whatever directory the engine starts the pack in (a repository)
    must not stand in for the installed package."""
    cwd = tmp_path / "cwd"
    for init in ("paude/__init__.py", "paude/policies/__init__.py",
                 "paude/policies/__main__.py"):
        write(cwd / init, SHADOW.format(marker=str(marker)))
    exe = launcher(resolve([]), tmp_path / "paude-home")
    # Without its configuration file the real pack stops at once, naming the file.
    (exe.parent / "config.json").unlink()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([str(exe)], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode != 0 and "config.json" in result.stderr, result.stderr
    assert not marker.exists()
    # Control: the same interpreter without -P imports the folder's paude.
    subprocess.run([sys.executable, "-m", "paude.policies"], cwd=cwd, env=env,
                   capture_output=True, timeout=60, check=False)
    assert marker.read_text() == "shadowed"


def test_a_repository_policy_file_linked_out_of_the_repository_is_refused(
        repo: Path, tmp_path: Path) -> None:
    outside = policy(tmp_path / "elsewhere.yaml", None)
    (repo / POLICY_FILE).symlink_to(outside)
    error = refused(repo)
    assert error.file == str(repo / POLICY_FILE)
    assert [(p.path, p.line) for p in error.problems] == [("(file)", None)]
    assert f"is a symlink to {outside.resolve()}, outside the repository" \
        in error.problems[0].message
    # Control: a link inside the repository is read.
    (repo / POLICY_FILE).unlink()
    (repo / POLICY_FILE).symlink_to(policy(repo / "policy" / "levels.yaml", None))
    assert load(repo).levels["base-image-pinned"] == "mandatory"
