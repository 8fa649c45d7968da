"""The session's setup and venv: run once inside the agent container after the first push
(never on the host, never in the image build), visible in status and connect, again only
on request; containerEnv reaches the agent but cannot override paude's variables."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.helpers import BASE_IMAGE, Paude, podman
from tests.integration.stand_in_agent import SOURCE

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
    (paude.repo / ".venv" / "pyvenv.cfg").write_text("home = /usr/bin\n", encoding="utf-8")
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

    # Nor does paude cp carry the host's venv (control: the rest of the folder arrives).
    copied = paude.ok("cp", str(paude.repo), f"{paude.session}:/tmp")
    assert "Left out the host's virtual environment(s) .venv" in copied.stderr
    assert agent(paude, "test -e /tmp/repo/.venv").returncode == 1
    assert agent(paude, "test -f /tmp/repo/requirements.txt").returncode == 0

    # Once: a restart does not run it again; --rerun does.
    paude.ok("stop", paude.session)
    paude.ok("start", paude.session)
    assert agent(paude, "cat /paude/setup/who.txt").stdout == "paude\n"
    again = paude.run("setup", paude.session, "--rerun", "--wait", "--timeout", "300")
    assert again.returncode == 0, again.stdout + again.stderr
    assert agent(paude, "cat /paude/setup/who.txt").stdout == "paude\npaude\n"

    # Attack: the agent owns the state and the log; what paude shows of them is checked
    # and stripped of terminal escapes (here a clipboard write).
    agent(paude, r"printf 'x\033]52;c;SGk=\007y\n' >> /paude/setup/log")
    shown = paude.ok("setup", paude.session).stdout
    assert "\x1b" not in shown and "x?]52;c;SGk=?y" in shown
    agent(paude, r"printf 'done\033[2J\n' > /paude/setup/state")
    assert setup_state(paude)["state"] == "unknown"


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


FEATURE_JSON = ('{"id": "greeter", "version": "1.0.0", "options": {"greeting": '
                '{"type": "string", "default": "hi"}, "loud-mode": {"type": "boolean", '
                '"default": false}}}\n')
# Attack: the feature's install.sh (repository content) tries to reach the network: the
# build proxy (whose address podman's proxy variables give) and a name (a reserved one, so no
# test ever sends traffic off this machine). The network interfaces it sees are recorded too.
FEATURE_INSTALL = """#!/bin/sh
set -e
echo "$GREETING $LOUD_MODE $_REMOTE_USER" > /usr/local/share/greeter.txt
reach=none
for url in "${HTTP_PROXY:-}" "${http_proxy:-}" http://paude-canary.invalid:80; do
  [ -n "$url" ] || continue
  host=${url#http://}; host=${host%%/*}
  if timeout 3 bash -c "exec 3<>/dev/tcp/${host%:*}/${host##*:}" 2>/dev/null; then
    reach="$reach $host"
  fi
done
ip -o link 2>/dev/null | cut -d: -f2 | tr -d ' ' > /usr/local/share/greeter-links.txt || true
cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d ' ' > /usr/local/share/greeter-links.txt
echo "$reach" > /usr/local/share/greeter-reach.txt
"""


def test_a_local_feature_installs_without_network(paude: Paude) -> None:
    folder = paude.repo / ".devcontainer" / "greeter"
    folder.mkdir(parents=True)
    (folder / "devcontainer-feature.json").write_text(FEATURE_JSON, encoding="utf-8")
    (folder / "install.sh").write_text(FEATURE_INSTALL, encoding="utf-8")
    devcontainer = paude.repo / ".devcontainer" / "devcontainer.json"
    devcontainer.write_text(
        f'{{"image": "{BASE_IMAGE}",\n "features": {{"./greeter": {{"greeting": "hello"}}}}}}\n',
        encoding="utf-8")
    (paude.repo / "paude.yaml").write_text(
        f"version: 1\ndefaults:\n  agent: {{install: none, command: [bash]}}\n"
        f"sessions:\n  {paude.session}: {{}}\n", encoding="utf-8")
    paude.ok("apply", paude.session, "--yes")
    assert agent(paude, "cat /usr/local/share/greeter.txt").stdout == "hello false paude\n"
    # No route at all: only the loopback interface, nothing reached.
    assert agent(paude, "cat /usr/local/share/greeter-links.txt").stdout.split() == ["lo"]
    assert agent(paude, "cat /usr/local/share/greeter-reach.txt").stdout == "none\n"
    # Control: the same probe in the running agent reaches its proxy.
    probe = ('host=${HTTP_PROXY#http://}; host=${host%%/*}; '
             'bash -c "exec 3<>/dev/tcp/${host%:*}/${host##*:}" && echo reached')
    assert agent(paude, probe).stdout == "reached\n"

    # The feature is a build input: editing it shows in the plan as an image rebuild.
    def rebuilt(plan: dict[str, object]) -> bool:
        return '"image-rebuilt"' in json.dumps(plan)

    assert not rebuilt(paude.plan_json())  # control: unchanged, nothing to rebuild
    (folder / "install.sh").write_text(FEATURE_INSTALL + "echo changed\n", encoding="utf-8")
    assert rebuilt(paude.plan_json())

    # An OCI reference is refused, naming it and saying what to do.
    devcontainer.write_text(f'{{"image": "{BASE_IMAGE}", "features": {{"ghcr.io/devcontainers/'
                            'features/node:1": {}}}\n', encoding="utf-8")
    refused = paude.run("plan", paude.session)
    assert refused.returncode == 1
    assert "features.ghcr.io/devcontainers/features/node:1" in refused.stderr
    assert "copy the feature's folder" in refused.stderr

    # A feature that needs the network fails, and says why.
    devcontainer.write_text(
        f'{{"image": "{BASE_IMAGE}",\n "features": {{"./greeter": {{"greeting": "hello"}}}}}}\n',
        encoding="utf-8")
    (folder / "install.sh").write_text("#!/bin/sh\ncurl -fsS -m 5 http://paude-canary.invalid/ "
                                       ">/dev/null || exit 7\n", encoding="utf-8")
    failed = paude.run("apply", paude.session, "--yes")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "features install with no network" in failed.stderr


def test_a_venv_the_repository_carries_is_never_used(paude: Paude) -> None:
    # Attack: the repository commits a "venv" (here a python that says so); the setup must
    # not run with it. (The control is the first test: an ignored host venv, and the
    # container's own created in its place.)
    (paude.repo / "paude.json").write_text(
        f'{{"base": "{BASE_IMAGE}", "venv": [".venv"], "setup": "python -c pass"}}\n',
        encoding="utf-8")
    (paude.repo / "paude.yaml").write_text(
        f"version: 1\ndefaults:\n  agent: {{install: none, command: [bash]}}\n"
        f"sessions:\n  {paude.session}: {{}}\n", encoding="utf-8")
    fake = paude.repo / ".venv" / "bin" / "python"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\necho host-venv-python > /paude/setup/used.txt\n",
                    encoding="utf-8")
    fake.chmod(0o755)
    git(paude, "add", "-A")
    git(paude, "commit", "-qm", "with a committed venv")
    paude.ok("apply", paude.session, "--yes")
    paude.ok("remote", "add", "--push", paude.session)
    failed = paude.run("setup", paude.session, "--wait", "--timeout", "300")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert ".venv is committed to the repository" in failed.stdout
    assert agent(paude, "test -e /paude/setup/used.txt").returncode == 1


def test_a_headless_prompt_starts_after_the_setup(paude: Paude) -> None:
    definition = {"version": 1, "defaults": {
        "agent": {"install": "none", "command": ["python3", "-c", SOURCE]},
        "image": {"base": BASE_IMAGE},
        "setup": "sleep 3; date +%s > /paude/setup/finished-at"}}
    (paude.repo / "paude.yaml").write_text(json.dumps(definition), encoding="utf-8")
    git(paude, "checkout", "-q", "-b", "main")
    git(paude, "add", "paude.yaml")
    git(paude, "commit", "-qm", "init")
    # create with a headless prompt pushes the branch; the prompt waits for the setup.
    paude.ok("create", paude.session, "-a", '-p "commit after.txt written after setup"')
    done = paude.run("setup", paude.session, "--wait", "--timeout", "300")
    assert done.returncode == 0, done.stdout + done.stderr
    committed = ""
    for _ in range(100):
        committed = agent(paude, "git -C /workspace log -1 --format=%ct -- after.txt").stdout
        if committed.strip():
            break
        time.sleep(0.3)
    finished = int(agent(paude, "cat /paude/setup/finished-at").stdout)
    assert int(committed) >= finished
