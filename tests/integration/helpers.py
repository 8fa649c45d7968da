"""Helpers for integration tests: run the installed CLI and observe podman directly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest


def engine_dir() -> Path:
    """Where the Pulumi engine is: PATH, else PAUDE_HOME/bin."""
    found = shutil.which("pulumi")
    if found:
        return Path(found).resolve().parent
    home = Path(os.environ.get("PAUDE_HOME") or Path.home() / ".paude")
    if (home / "bin" / "pulumi").exists():
        return home / "bin"
    pytest.fail("no pulumi engine on PATH or in PAUDE_HOME/bin; run scripts/build-engine.sh")


BASE_IMAGE = os.environ.get("PAUDE_TEST_BASE_IMAGE", "localhost/paude-base:bookworm")
# The proxy's base, as `make setup` names it (scripts/build-proxy-base.sh: the rebuilt
# squid); CI sets it, so every proxy the tests start runs what users run.
PROXY_BASE_IMAGE = os.environ.get("PAUDE_TEST_PROXY_BASE_IMAGE") or BASE_IMAGE


@dataclass
class Paude:
    """Runs the installed paude CLI in a repository with its own PAUDE_HOME."""

    exe: Path
    home: Path
    repo: Path
    session: str
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        # The user's own credentials never leak into tests: HOME is the test's, and the
        # variables paude passes through are cleared unless a test sets them.
        # PYTHONUNBUFFERED is this machine's, not a user's: with it set, the policy pack's
        # unflushed port reached the engine in tests while every user's plan hung.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PULUMI_", "ANTHROPIC_", "CLAUDE_", "GOOGLE_", "CLOUD"))
               and k != "PYTHONUNBUFFERED"}
        env.update({"PAUDE_HOME": str(self.home), "PAUDE_NO_ENGINE_DOWNLOAD": "1",
                    "PULUMI_CONFIG_PASSPHRASE": "integration-tests",
                    "HOME": str(self.home.parent / "user-home"),
                    # A session running Claude Code needs a model credential to plan (its
                    # gateway holds it); no test calls a real model, so a placeholder does.
                    "ANTHROPIC_API_KEY": "sk-ant-integration-placeholder"})
        env.update(self.extra_env)
        return env

    def run(self, *args: str, cwd: Path | None = None,
            timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(self.exe), *args], cwd=cwd or self.repo, env=self.env(),
                              capture_output=True, text=True, timeout=timeout)

    def ok(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        result = self.run(*args, cwd=cwd)
        assert result.returncode == 0, (
            f"paude {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}")
        return result

    def plan_json(self) -> dict[str, object]:
        result = self.ok("plan", self.session, "--json")
        data: dict[str, object] = json.loads(result.stdout)
        return data

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen([str(self.exe), *args], cwd=self.repo, env=self.env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def make_home(home: Path) -> Path:
    """A PAUDE_HOME that reuses the engine and builds every image on the test base image
    (config.yaml: the machine's settings, which the proxy's base comes from)."""
    (home / "bin").mkdir(parents=True)
    for tool in engine_dir().iterdir():
        (home / "bin" / tool.name).symlink_to(tool)
    (home / "config.yaml").write_text(
        f"version: 1\nimage: {{base: {BASE_IMAGE}}}\nproxy: {{base: {PROXY_BASE_IMAGE}}}\n",
        encoding="utf-8")
    return home


def write_paude_yaml(repo: Path, session: str, *, packages: list[str] | None = None,
                     setup: str | None = None, extra: str = "", defaults: str = "") -> None:
    """A paude.yaml defining one session on the test base image.

    The agent is a stand-in (bash in the tmux session) on an image without Claude Code:
    no test may depend on downloads beyond the Debian mirror."""
    pk = f"\n    packages: [{', '.join(packages)}]" if packages else ""
    pk += f"\n    setup: {json.dumps(setup)}" if setup else ""
    (repo / "paude.yaml").write_text(
        f"version: 1\ndefaults:\n  agent: {{install: none, command: [bash]}}\n"
        f"  image:\n    base: {BASE_IMAGE}{pk}\n{defaults}"
        f"sessions:\n  {session}: {{}}\n{extra}", encoding="utf-8")


def make_repo(path: Path) -> Path:
    """An empty git repository."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "--quiet", str(path)], check=True)
    return path


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run podman directly (to observe what paude did, never to do paude's work)."""
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check)


def remove_session_objects(session: str) -> None:
    """Remove everything labelled with the session, whatever state a test left it in."""
    label = f"label=paude.session={session}"
    ids = podman("ps", "-aq", "--filter", label, check=False).stdout.split()
    if ids:
        podman("rm", "-f", "-t", "0", *ids, check=False)
    for kind in ("network", "volume"):
        names = podman(kind, "ls", "-q", "--filter", label, check=False).stdout.split()
        if names:
            podman(kind, "rm", "-f", *names, check=False)


def python_in(container: str, code: str) -> subprocess.CompletedProcess[str]:
    """Run a python snippet inside a container."""
    return podman("exec", container, "python3", "-c", code, check=False)

