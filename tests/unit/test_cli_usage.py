"""Every contradictory command line and every invalid NAME fails before the engine, podman,
git or a prompt: each table row runs the real CLI with those seams made to fail the test."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from paude import baseplan, engine, locks, proc
from paude.cli import main, output

BAD = "Bad_Name"
NAME_ERROR = "command line: invalid session definition\n  command line: NAME:"

# (argv, the first line of the error)
CONFLICTS = [
    (["plan", "demo", "--json", "--markdown"], "--json and --markdown do not go together"),
    (["plan", "--all", "--json", "--markdown"], "--json and --markdown do not go together"),
    (["plan", "demo", "--all"], "a session NAME (demo) and --all do not go together"),
    (["plan"], "give a session NAME, or --all"),
    (["plan", "--base", "main"], "give a session NAME, or --all"),
    (["plan", "demo", "--render", "out", "--base", "main"],
     "--render and --base do not go together"),
    (["plan", "--all", "--render", "out"], "--render and --all do not go together"),
    (["plan", "demo", "--render", "out", "--json"], "--render and --json do not go together"),
    (["plan", "demo", "--render", "out", "--markdown"],
     "--render and --markdown do not go together"),
    (["plan", "demo", "--render", "out", "--detailed-exitcode"],
     "--render and --detailed-exitcode do not go together"),
    (["plan", "demo", "--base", "main", "--json", "--markdown"],
     "--json and --markdown do not go together"),
    (["destroy", "demo", "--force"], "--force only goes with --delete-data"),
    (["create", "demo", "--dry-run", "--rebuild"], "--dry-run and --rebuild do not go together"),
    (["cp", "demo:a", ":b"], "both demo:a and :b are in sessions"),
    (["cp", "a", "./b:c"], "neither a nor ./b:c names a session"),
    (["cp", "demo:", "out"], "'demo:' names no path in the session"),
    (["list", "--backend", "docker"], "--backend 'docker' is not a backend"),
    (["allowed-domains", "demo", "--replace", "a.example", "--add", "b.example"],
     "--replace and --add do not go together"),
    (["allowed-domains", "demo", "--yes"], "--yes only goes with --add, --remove or --replace"),
    (["allowed-domains", "demo", "--dry-run"],
     "--dry-run only goes with --add, --remove or --replace"),
    (["allowed-domains", "demo", "--add", "a.example", "--dry-run", "--yes"],
     "--dry-run and --yes do not go together"),
    (["create", "demo", "--backend", "podman", "--openshift-namespace", "team"],
     "--backend podman and --openshift-namespace team do not go together"),
    (["list", "--backend", "podman", "--openshift-context", "prod"],
     "--backend podman and --openshift-context prod do not go together"),
    (["plan", "--all", "--openshift-namespace", "team"],
     "--openshift-namespace team goes with a session NAME"),
    (["create", "demo", "--platform", "linux/s390x"],
     "--platform 'linux/s390x' is not a platform paude builds for"),
]

# Flag values refused like the same field in paude.yaml (flag, value).
BAD_VALUES = [
    (["create", "demo", "--openshift-namespace", "Team_A"], "--openshift-namespace"),
    (["start", "demo", "--openshift-namespace", "-x"], "--openshift-namespace"),
    (["status", "demo", "--openshift-context", "-bad"], "--openshift-context"),
    (["plan", "demo", "--openshift-context", "a\nb"], "--openshift-context"),
    (["apply", "demo", "--openshift-namespace", "x" * 64], "--openshift-namespace"),
    (["destroy", "demo", "--openshift-namespace", "a.b"], "--openshift-namespace"),
    (["delete", "demo", "--openshift-namespace", "UP"], "--openshift-namespace"),
    (["stop", "demo", "--openshift-namespace", "UP"], "--openshift-namespace"),
    (["connect", "demo", "--openshift-namespace", "UP"], "--openshift-namespace"),
    (["list", "--openshift-namespace", "UP"], "--openshift-namespace"),
]

# Every command that takes a session NAME, with the flags that would otherwise lead to a
# prompt (delete's --confirm, apply's question) or to the engine.
NAMED = [
    ["create", BAD], ["create", BAD, "--dry-run"], ["start", BAD], ["start", BAD, "--no-attach"],
    ["stop", BAD], ["connect", BAD], ["status", BAD], ["status", BAD, "--verify"],
    ["delete", BAD], ["delete", BAD, "--confirm"], ["rescue", BAD], ["plan", BAD],
    ["plan", BAD, "--json"], ["plan", BAD, "--render", "out"], ["plan", BAD, "--base", "main"],
    ["apply", BAD], ["apply", BAD, "--yes"], ["destroy", BAD], ["destroy", BAD, "--yes"],
    ["blocked", BAD], ["log", BAD], ["remote", "add", BAD], ["remote", "add", "--push", BAD],
    ["remote", "remove", BAD], ["cp", f"{BAD}:x", "out"], ["cp", "x", f"{BAD}:y"],
    ["allowed-domains", BAD], ["allowed-domains", BAD, "--add", "a.example", "--yes"],
]

PARSER = [
    (["blocked", "demo", "--last", "-1"], "Invalid value for '--last' / '-n'"),
    (["log", "demo", "-n", "-5"], "Invalid value for '--last' / '-n'"),
]


@pytest.fixture(autouse=True)
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository defining session demo, with every outside seam failing the test."""
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("PAUDE_DEBUG", raising=False)
    path = tmp_path / "repo"
    path.mkdir()
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    (path / "paude.yaml").write_text("version: 1\nsessions:\n  demo: {}\n")
    monkeypatch.chdir(path)

    def reached(what: str) -> Any:
        def fail(*args: object, **kwargs: object) -> None:
            raise AssertionError(f"{what} was reached before the command line was checked")
        return fail

    for module, names in ((engine, ("connect", "open_stack", "preview", "up", "destroy")),
                          (proc, ("run", "run_bytes", "run_on_pty", "exec_replace")),
                          (output, ("confirm",)), (locks, ("hold_session",)),
                          (baseplan, ("plan",))):
        for name in names:
            monkeypatch.setattr(module, name, reached(f"{module.__name__}.{name}"))
    return path


def run(argv: list[str], repo: Path, capsys: pytest.CaptureFixture[str]) -> str:
    before = (repo / "paude.yaml").read_text()
    assert main(argv) == 1
    assert (repo / "paude.yaml").read_text() == before
    assert not (repo / "out").exists()
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    return captured.err


@pytest.mark.parametrize("argv, message", CONFLICTS, ids=[" ".join(a) for a, _ in CONFLICTS])
def test_conflicting_flags(argv: list[str], message: str, repo: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    err = run(argv, repo, capsys)
    assert err.startswith(f"error: {message}\n"), err
    assert "fix: give" in err or "fix: add" in err


@pytest.mark.parametrize("argv", NAMED, ids=[" ".join(a) for a in NAMED])
def test_invalid_names(argv: list[str], repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = run(argv, repo, capsys)
    assert err.startswith(f"error: {NAME_ERROR}"), err
    assert "fix: session names are lowercase letters, digits and '-'" in err


@pytest.mark.parametrize("argv, message", PARSER, ids=[" ".join(a) for a, _ in PARSER])
def test_values_the_parser_refuses(argv: list[str], message: str, repo: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert message in run(argv, repo, capsys)


@pytest.mark.parametrize("argv, flag", BAD_VALUES, ids=[" ".join(a) for a, _ in BAD_VALUES])
def test_bad_flag_values(argv: list[str], flag: str, repo: Path,
                         capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a.replace("\\n", "\n") for a in argv]
    err = run(argv, repo, capsys)
    assert err.startswith("error: command line: invalid session definition\n"), err
    assert f"command line: {flag}: " in err


def test_the_seams_are_live(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The control: a valid command line does reach them (so the rows above prove order)."""
    with pytest.raises(AssertionError, match="was reached before"):
        main(["plan", "demo", "--json"])
    with pytest.raises(AssertionError, match="was reached before"):
        main(["destroy", "demo", "--delete-data", "--force", "--yes"])
    with pytest.raises(AssertionError, match="was reached before"):
        main(["create", "demo", "--dry-run"])
    with pytest.raises(AssertionError, match="was reached before"):
        main(["plan", "demo", "--base", "main", "--markdown"])
