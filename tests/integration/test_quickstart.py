"""The seed's quick start, command for command, on real podman, tmux and git."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.helpers import BASE_IMAGE, Paude, podman
from tests.integration.stand_in_agent import SOURCE
from tests.integration.terminal import HostTerminal

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]


def project(paude: Paude) -> str:
    """The user's project: a repository with a commit and the team's defaults."""
    repo = paude.repo
    (repo / "README.md").write_text("# my project\n")
    definition = {"version": 1, "defaults": {
        "agent": {"install": "none", "command": ["python3", "-c", SOURCE]},
        "image": {"base": BASE_IMAGE}}}
    (repo / "paude.yaml").write_text(yaml.safe_dump(definition))
    git(repo, "checkout", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-qm", "init")
    return paude.session


def git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=True)


def agent_exec(name: str, *argv: str) -> str:
    return podman("exec", f"paude-{name}-agent", *argv).stdout


def test_quick_start_word_for_word(paude: Paude, terminal: HostTerminal) -> None:
    name = project(paude)
    env_path = paude.env()["PATH"]

    # 1. create --yolo, then start: tmux shows the agent.
    paude.ok("create", "--yolo", name)
    first = terminal.run("start", name)
    terminal.wait_for(first, "stand-in agent ready")
    assert "--dangerously-skip-permissions" in terminal.screen(first)

    # 2. remote add --push from a second terminal while the first is attached.
    pushed = paude.ok("remote", "add", "--push", name)
    assert f"paude-{name}" in pushed.stdout + pushed.stderr
    assert agent_exec(name, "cat", "/workspace/README.md") == "# my project\n"

    # 3. The agent commits; git pull brings the commit back.
    terminal.type(first, "commit agent.txt hello from the agent", "Enter")
    terminal.wait_for(first, "committed agent.txt")
    pull = subprocess.run(["git", "-C", str(paude.repo), "pull", "-q", f"paude-{name}", "main"],
                          capture_output=True, text=True, env={**paude.env(), "PATH": env_path})
    assert pull.returncode == 0, pull.stderr
    assert (paude.repo / "agent.txt").read_text() == "hello from the agent\n"

    # 4. list shows the session.
    listed = paude.ok("list", "--json")
    rows = {r["name"]: r for r in json.loads(listed.stdout)}
    assert rows[name]["status"] == "running" and rows[name]["backend"] == "podman"
    assert name in paude.ok("list").stdout

    # Ctrl+b d detaches; the agent keeps running.
    terminal.type(first, "C-b", "d")
    terminal.wait_for(first, "PAUDE-EXITED=0")
    status = json.loads(paude.ok("status", name, "--json").stdout)
    assert status["agent_alive"] is True and status["unfetched_commits"] == 0

    # 5. stop, then start again: the commit and the agent's state are still there.
    paude.ok("stop", name)
    assert json.loads(paude.ok("list", "--json").stdout)[0]["status"] == "stopped"
    assert paude.run("plan", name, "--detailed-exitcode").returncode == 0, "stop is not drift"
    second = terminal.run("start", name)
    terminal.wait_for(second, "stand-in agent ready")
    assert "agent: agent.txt" in agent_exec(name, "git", "-C", "/workspace", "log", "--oneline")
    history = agent_exec(name, "cat", "/home/paude/.claude/history.txt")
    assert "commit agent.txt hello from the agent" in history

    # 6. delete --confirm refuses while an unfetched commit exists...
    terminal.type(second, "commit later.txt not fetched yet", "Enter")
    terminal.wait_for(second, "committed later.txt")
    refused = paude.run("delete", name, "--confirm")
    assert refused.returncode == 1
    assert "main" in refused.stderr and "1 commit" in refused.stderr
    assert f"git pull paude-{name} main" in refused.stderr
    assert podman("container", "exists", f"paude-{name}-agent", check=False).returncode == 0

    # ...and works after a pull, or with --force.
    subprocess.run(["git", "-C", str(paude.repo), "pull", "-q", f"paude-{name}", "main"],
                   check=True, env={**paude.env(), "PATH": env_path})
    terminal.type(second, "commit last.txt discarded on purpose", "Enter")
    terminal.wait_for(second, "committed last.txt")
    assert paude.run("delete", name, "--confirm").returncode == 1
    paude.ok("delete", name, "--confirm", "--force")
    assert podman("volume", "exists", f"paude-{name}-workspace", check=False).returncode != 0
    assert f"paude-{name}" not in git(paude.repo, "remote").stdout
    assert json.loads(paude.ok("list", "--json").stdout) == []


def test_headless_prompt_runs_once(paude: Paude) -> None:
    name = project(paude)
    paude.ok("create", "--yolo", name, "-a", '-p "commit headless.txt written headless"')
    log = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "headless.txt" not in log:
        log = agent_exec(name, "git", "-C", "/workspace", "log", "--oneline", "--all")
        time.sleep(0.3)
    assert log.count("agent: headless.txt") == 1
    paude.ok("stop", name)
    paude.ok("start", name, "--no-attach")
    time.sleep(3)  # the entrypoint would have re-run the prompt by now; prove it did not
    log = agent_exec(name, "git", "-C", "/workspace", "log", "--oneline", "--all")
    assert log.count("agent: headless.txt") == 1
    assert paude.run("plan", name, "--detailed-exitcode").returncode == 0


def test_bad_input_changes_nothing(paude: Paude, tmp_path: Path) -> None:
    name = project(paude)
    before = (paude.repo / "paude.yaml").read_text()
    unknown = paude.run("start", "no-such-session")
    assert unknown.returncode == 1 and "no-such-session" in unknown.stderr
    assert "Traceback" not in unknown.stderr

    paude.ok("create", "--yolo", name)
    after_create = (paude.repo / "paude.yaml").read_text()
    conflict = paude.run("create", name, "--allowed-domains", "github")
    assert conflict.returncode == 1
    assert f"sessions.{name}.allowed_domains" in conflict.stderr
    assert (paude.repo / "paude.yaml").read_text() == after_create != before

    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    not_repo = paude.run("remote", "add", name, cwd=outside)
    assert not_repo.returncode == 1 and "not a git repository" in not_repo.stderr

    other = tmp_path / "other-repo"
    other.mkdir()
    subprocess.run(["git", "init", "-q", str(other)], check=True)
    (other / "paude.yaml").write_text((paude.repo / "paude.yaml").read_text())
    owned = paude.run("apply", name, "--yes", cwd=other)
    assert owned.returncode == 1 and "belongs to the repository" in owned.stderr
