"""The session's setup and venv: run once inside the agent container after the first push
(never on the host, never in the image build), visible in status and connect, again only
on request; containerEnv reaches the agent but cannot override paude's variables."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.integration.helpers import BASE_IMAGE, Paude, podman

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]


def git(paude: Paude, *args: str) -> str:
    env = paude.env()
    env["PATH"] = f"{paude.exe.parent}:{env.get('PATH', '')}"
    result = subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid",
                             *args], cwd=paude.repo, env=env, capture_output=True, text=True,
                            check=False, timeout=120)
    assert result.returncode == 0, f"git {' '.join(args)}:\n{result.stderr}"
    return result.stdout


def agent(paude: Paude, script: str, *, login: bool = False) -> subprocess.CompletedProcess[str]:
    shell = ["bash", "-lc"] if login else ["sh", "-c"]
    return podman("exec", f"paude-{paude.session}-agent", *shell, script, check=False)


def setup_state(paude: Paude) -> dict[str, object]:
    data: dict[str, object] = json.loads(paude.ok("status", paude.session, "--json").stdout)
    setup = data["setup"]
    assert isinstance(setup, dict)
    return setup


def test_setup_and_venv_run_in_the_session_after_the_first_push(paude: Paude,
                                                                 tmp_path: Path) -> None:
    # Attack: the setup comes from the repository; were it run on the host (or in the
    # image build), this file would appear there (or in the image) before any push.
    marker = tmp_path / "setup-ran-here"
    setup = (f"mkdir -p {marker.parent} && echo ran >> {marker}\n"
             "id -un >> /paude/setup/who.txt\n"
             'printf "%s\\n" "$HTTPS_PROXY" > /paude/setup/proxy.txt\n'
             "python -c 'import sys; print(sys.prefix)' > /paude/setup/prefix.txt\n"
             "echo setup-output-line\n")
    (paude.repo / "paude.yaml").write_text(
        f"version: 1\ndefaults:\n  agent: {{install: none, command: [bash]}}\n"
        f"  image: {{base: {BASE_IMAGE}}}\n"
        f"sessions:\n  {paude.session}:\n    venv: auto\n    setup: {json.dumps(setup)}\n",
        encoding="utf-8")
    (paude.repo / "requirements.txt").write_text("", encoding="utf-8")
    (paude.repo / ".gitignore").write_text(".venv/\n", encoding="utf-8")
    # The host's own venv: ignored, so git never carries it into the session.
    (paude.repo / ".venv" / "bin").mkdir(parents=True)
    (paude.repo / ".venv" / "HOST-VENV").write_text("host\n", encoding="utf-8")
    git(paude, "add", "paude.yaml", "requirements.txt", ".gitignore")
    git(paude, "commit", "-qm", "project")

    paude.ok("apply", paude.session, "--yes")
    assert not marker.exists(), "the host ran the session's setup"
    assert agent(paude, f"test -e {marker}").returncode == 1, "setup ran in the image build"
    assert setup_state(paude)["state"] == "pending"

    paude.ok("remote", "add", "--push", paude.session)
    done = paude.run("setup", paude.session, "--wait", "--timeout", "300")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "setup-output-line" in done.stdout
    assert not marker.exists(), "the host ran the session's setup"
    # Control: the same command did run, in the agent container, as the agent user,
    # with the proxy as its way out and the container's own venv active.
    assert agent(paude, f"cat {marker}").stdout == "ran\n"
    assert agent(paude, "cat /paude/setup/who.txt").stdout == "paude\n"
    proxy = agent(paude, "cat /paude/setup/proxy.txt").stdout.strip()
    assert proxy == f"http://paude-{paude.session}-proxy:3128"
    assert agent(paude, "cat /paude/setup/prefix.txt").stdout == "/workspace/.venv\n"
    assert agent(paude, "test -e /workspace/.venv/HOST-VENV").returncode == 1
    assert "home = /usr/bin" in agent(paude, "cat /workspace/.venv/pyvenv.cfg").stdout
    # The venv is active in the agent's shells and kept out of its commits.
    assert agent(paude, "echo $VIRTUAL_ENV", login=True).stdout == "/workspace/.venv\n"
    assert agent(paude, "cd /workspace && git status --porcelain").stdout == ""
    ignored = agent(paude, "cd /workspace && git status --porcelain --ignored").stdout
    assert "!! .venv/" in ignored  # control: the folder is there, and ignored
    # Visible where the user looks: status, and a tmux window for connect.
    state = setup_state(paude)
    assert (state["state"], state["exit_code"]) == ("done", 0)
    assert "setup:             done; log /paude/setup/log" in paude.ok(
        "status", paude.session).stdout
    windows = agent(paude, "tmux list-windows -t paude -F '#W'").stdout.split()
    assert "setup" in windows

    # Once: a restart does not run it again; --rerun does.
    paude.ok("stop", paude.session)
    paude.ok("start", paude.session)
    assert agent(paude, "cat /paude/setup/who.txt").stdout == "paude\n"
    again = paude.run("setup", paude.session, "--rerun", "--wait", "--timeout", "300")
    assert again.returncode == 0, again.stdout + again.stderr
    assert agent(paude, "cat /paude/setup/who.txt").stdout == "paude\npaude\n"


def test_post_create_command_and_container_env(paude: Paude) -> None:
    devcontainer = paude.repo / ".devcontainer" / "devcontainer.json"
    devcontainer.parent.mkdir()
    body = ('{\n  "image": "%s",\n  "containerEnv": {\n    "GREETING": "hello world",\n'
            '    %s\n  },\n  "postCreateCommand": "echo \\"$GREETING\\" > /paude/setup/pc.txt; '
            'exit 3"\n}\n')
    # Attack: the repository's containerEnv points the agent's proxy elsewhere.
    devcontainer.write_text(body % (BASE_IMAGE, '"HTTPS_PROXY": "http://evil.example:1"'),
                            encoding="utf-8")
    (paude.repo / "paude.yaml").write_text(
        f"version: 1\ndefaults:\n  agent: {{install: none, command: [bash]}}\n"
        f"sessions:\n  {paude.session}: {{}}\n", encoding="utf-8")
    refused = paude.run("apply", paude.session, "--yes")
    assert refused.returncode == 1
    assert (".devcontainer/devcontainer.json:5: containerEnv.HTTPS_PROXY: HTTPS_PROXY is set "
            "by paude and cannot be overridden") in refused.stderr
    assert podman("ps", "-aq", "--filter", f"label=paude.session={paude.session}"
                  ).stdout == ""
    # Control: a variable of the repository's own reaches the agent, and the
    # postCreateCommand runs after the push (its failure shows as failed, exit 3).
    devcontainer.write_text(body % (BASE_IMAGE, '"LANG_X": "C"'), encoding="utf-8")
    git(paude, "add", "-A")
    git(paude, "commit", "-qm", "devcontainer")
    paude.ok("apply", paude.session, "--yes")
    assert agent(paude, "printenv GREETING").stdout == "hello world\n"
    assert agent(paude, "printenv HTTPS_PROXY").stdout.strip() == (
        f"http://paude-{paude.session}-proxy:3128")
    paude.ok("remote", "add", "--push", paude.session)
    failed = paude.run("setup", paude.session, "--wait", "--timeout", "300")
    assert failed.returncode == 1
    assert "FAILED (exit 3)" in failed.stdout
    assert agent(paude, "cat /paude/setup/pc.txt").stdout == "hello world\n"
