"""README.md's quick start, as written, from a fresh clone and a fresh HOME.

The commands are read from README.md itself, so the test breaks when the README and
paude part ways. The machine is the one the tests run on: the set-up's caches (engine,
base image, pip and Go) are this machine's ~/.cache, shared through XDG_CACHE_HOME, so the
set-up reruns warm; everything else (HOME, ~/.paude, its config.yaml and engine, .venv)
is made by the README's own commands. The user's project is the one thing the README
assumes: a repository whose team paude.yaml runs the stand-in agent (no model is
reachable here), leaving the base image and Claude Code's installation to this machine's
settings."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.helpers import podman, remove_session_objects
from tests.integration.stand_in_agent import SOURCE

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SESSION = "my-project"
# A warm set-up takes about a minute (.venv from the pip cache), and the first session
# builds its images: the agent's with Claude Code from npm.
SETUP_TIMEOUT = float(os.environ.get("PAUDE_README_TIMEOUT", "1500"))


def quick_start() -> tuple[list[str], dict[str, str]]:
    """The quick start's first block (set-up and start) and, from the block after it, the
    commands by what they do."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert len(blocks) >= 2, "README.md's quick start has lost a code block: update this test"

    def commands(block: str) -> list[str]:
        lines = (re.sub(r"\s+#\s.*$", "", line).strip() for line in block.splitlines())
        return [line for line in lines if line]

    first, second = commands(blocks[0]), commands(blocks[1])
    assert any("make setup" in line for line in first) and "paude start" in first[-1], (
        f"README.md's quick start no longer sets up and starts a session: {first}")
    named = {}
    for key, prefix in (("push", "paude remote add --push "), ("pull", "git pull ")):
        found = [line for line in second if line.startswith(prefix)]
        assert found, f"README.md's second block has no `{prefix.strip()}` line: {second}"
        named[key] = found[0]
    return first, named


def system_path() -> str:
    """PATH without anything a set-up made (.venv, the engine): what a fresh shell has."""
    keep = [p for p in os.environ.get("PATH", "").split(os.pathsep)
            if p and ".venv" not in p and "/.cache/" not in p and "/.paude" not in p
            and not p.startswith(str(REPO))]
    return os.pathsep.join(keep)


class Terminal:
    """The user's terminal: a shell in tmux on a private server, logged to a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.socket = f"paude-readme-{os.getpid()}"
        self.env, self.log = env, log

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, check=False)

    def start(self, script: str) -> None:
        command = ["env", "-i", *(f"{k}={v}" for k, v in self.env.items()),
                   "bash", "--noprofile", "--norc", "-c", script]
        self.tmux("new-session", "-d", "-s", "user", "-x", "200", "-y", "50",
                  shlex.join(command))
        self.tmux("pipe-pane", "-o", "-t", "user", f"cat >> {shlex.quote(str(self.log))}")

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "user", "-S", "-100").stdout

    def seen(self) -> str:
        logged = self.log.read_text(errors="replace") if self.log.exists() else ""
        return logged + self.screen()

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.seen():
                return
            if "README-EXITED=" in self.seen():
                break
            time.sleep(1)
        tail = "\n".join(self.seen().splitlines()[-80:])
        raise AssertionError(f"{text!r} never appeared on the user's terminal:\n{tail}")

    def type(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", "user", *keys)

    def close(self) -> None:
        self.tmux("kill-server")


def user_project(home: Path) -> Path:
    """~/src/my-project: a repository with a commit and the team's paude.yaml."""
    project = home / "src" / "my-project"
    project.mkdir(parents=True)
    (project / "README.md").write_text("# my project\n")
    (project / "paude.yaml").write_text(yaml.safe_dump({"version": 1, "defaults": {
        "agent": {"command": ["python3", "-c", SOURCE]}}}))
    git = ["git", "-C", str(project), "-c", "user.name=Dev", "-c", "user.email=dev@example.com"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(project)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    return project


@pytest.mark.skipif(shutil.which("tmux") is None or shutil.which("make") is None,
                    reason="needs tmux and make")
def test_the_readme_quick_start_as_written(tmp_path: Path) -> None:
    first, second = quick_start()
    checkout = tmp_path / "paude"
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    subprocess.run(["git", "clone", "-q", str(REPO), str(checkout)], check=True)
    subprocess.run(["git", "-C", str(checkout), "checkout", "-q", head], check=True)
    home = tmp_path / "home"
    project = user_project(home)
    env = {"HOME": str(home), "PATH": system_path(), "TERM": "xterm-256color",
           "LANG": os.environ.get("LANG", "C.UTF-8"),
           "XDG_CACHE_HOME": str(Path.home() / ".cache"),
           "ANTHROPIC_API_KEY": "sk-ant-readme-placeholder"}
    second_terminal = {**env, "PATH": f"{checkout / '.venv' / 'bin'}:{env['PATH']}"}
    terminal = Terminal(env, tmp_path / "terminal.log")
    remove_session_objects(SESSION)
    started = time.monotonic()
    try:
        terminal.start(f"cd {shlex.quote(str(checkout))}\n" + "\n".join(first)
                       + "\necho README-EXITED=$?\nsleep 1800\n")
        terminal.wait_for("stand-in agent ready", SETUP_TIMEOUT)
        took = time.monotonic() - started
        seen = terminal.seen()
        print(f"set-up, create and start took {took:.0f}s")
        assert "FAIL" not in seen, seen[-4000:]
        config = (home / ".paude" / "config.yaml").read_text()
        assert "version: 1" in config

        def in_second_terminal(line: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(["bash", "--noprofile", "--norc", "-c", line], cwd=project,
                                  env=second_terminal, capture_output=True, text=True,
                                  timeout=600)

        pushed = in_second_terminal(second["push"])
        assert pushed.returncode == 0, pushed.stderr
        shown = podman("exec", f"paude-{SESSION}-agent", "cat", "/workspace/README.md")
        assert shown.stdout == "# my project\n"

        terminal.type("commit agent.txt hello from the agent", "Enter")
        terminal.wait_for("committed agent.txt", 120)
        pulled = in_second_terminal(second["pull"])
        assert pulled.returncode == 0, pulled.stderr
        assert (project / "agent.txt").read_text() == "hello from the agent\n"
    finally:
        print("\n".join(terminal.seen().splitlines()[-60:]))
        if (checkout / ".venv" / "bin" / "paude").exists():
            subprocess.run([str(checkout / ".venv" / "bin" / "paude"), "delete", SESSION,
                            "--confirm", "--force"], cwd=project, env=second_terminal,
                           capture_output=True, text=True, check=False, timeout=600)
        terminal.close()
        remove_session_objects(SESSION)
