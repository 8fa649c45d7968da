"""What reaches the host from one session: only its own repository may drive it, and only a
filtered screen reaches the user's terminal.

One session, made in repository A. Repository B (same machine, same PAUDE_HOME) tries every
command that touches a session and is refused with nothing changed; A's same commands work.
Then the agent turns on tmux clipboard forwarding and passthrough and prints OSC 52: a host
tmux running `paude connect` never receives it, while the same host tmux running a plain
`podman exec -it ... tmux attach` does (the control)."""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.helpers import (
    BASE_IMAGE,
    Paude,
    make_home,
    make_repo,
    podman,
    remove_session_objects,
    write_paude_yaml,
)

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]


@dataclass
class World:
    a: Paude  # the owning repository
    b: Path  # another repository on the same machine, defining the same session name
    plain: Path  # another git repository, without paude.yaml

    @property
    def name(self) -> str:
        return self.a.session

    @property
    def agent(self) -> str:
        return f"paude-{self.name}-agent"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout


def commit(repo: Path, text: str) -> str:
    (repo / "file.txt").write_text(text)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", text)
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture(scope="module")
def world(paude_exe: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if podman("image", "exists", BASE_IMAGE, check=False).returncode != 0:
        pytest.fail(f"base image {BASE_IMAGE} is missing; run scripts/build-base-image.sh")
    root = tmp_path_factory.mktemp("boundary")
    session = f"it-{secrets.token_hex(3)}"
    a = make_repo(root / "a")
    write_paude_yaml(a, session)
    commit(a, "a's work")
    b = make_repo(root / "b")
    write_paude_yaml(b, session)
    commit(b, "b's private work")
    plain = make_repo(root / "plain")
    commit(plain, "plain's private work")
    (root / "user-home").mkdir()
    paude = Paude(paude_exe, make_home(root / "paude-home"), a, session)
    try:
        paude.ok("apply", session, "--yes")
        yield World(paude, b, plain)
    finally:
        remove_session_objects(session)


def running(container: str) -> bool:
    found = podman("container", "inspect", "--format", "{{.State.Running}}", container,
                   check=False)
    return found.stdout.strip() == "true"


def workspace_log(world: World) -> str:
    found = podman("exec", world.agent, "git", "-C", "/workspace", "log", "--all", "--format=%s",
                   check=False)
    return found.stdout


# Every command that touches a session, as a user in the other repository would type it.
FROM_ELSEWHERE: list[tuple[str, ...]] = [
    ("remote", "add", "--push", "{name}"), ("remote", "add", "{name}"), ("start", "{name}"),
    ("start", "--no-attach", "{name}"), ("stop", "{name}"), ("connect", "{name}"),
    ("status", "{name}"), ("status", "{name}", "--verify"), ("rescue", "{name}"),
    ("delete", "{name}", "--confirm", "--force"), ("blocked", "{name}"), ("log", "{name}"),
    ("plan", "{name}"), ("apply", "{name}", "--yes"), ("destroy", "{name}", "--yes"),
    ("create", "{name}"),
]


@pytest.mark.parametrize("argv", FROM_ELSEWHERE, ids=[" ".join(a) for a in FROM_ELSEWHERE])
def test_another_repository_cannot_drive_the_session(world: World, argv: tuple[str, ...]
                                                     ) -> None:
    args = [a.format(name=world.name) for a in argv]
    before = (world.b / "paude.yaml").read_text()
    where = world.plain if argv[0] == "remote" else world.b
    refused = world.a.run(*args, cwd=where)
    assert refused.returncode == 1, refused
    owner = world.a.repo.resolve()
    assert refused.stderr.startswith(
        f"error: session {world.name} belongs to the repository at {owner}, not "
        f"{where.resolve()}\n  fix: run paude from {owner}"), refused.stderr
    # Nothing changed: still running, no remote, nothing of theirs in the session.
    assert running(world.agent) and running(f"paude-{world.name}-proxy")
    assert git(where, "remote").split() == []
    assert (world.b / "paude.yaml").read_text() == before
    log = workspace_log(world)
    assert "b's private work" not in log and "plain's private work" not in log


def test_the_owning_repository_can(world: World, tmp_path: Path) -> None:
    """The control for every refusal above."""
    paude, name = world.a, world.name
    pushed = paude.ok("remote", "add", "--push", name)
    assert f"pushed {git(paude.repo, 'branch', '--show-current').strip()}" in pushed.stdout
    assert "a's work" in workspace_log(world)
    assert paude.ok("status", name).stdout.startswith(f"Session {name} (podman): running")
    (paude.repo / "sub").mkdir(exist_ok=True)
    paude.ok("status", name, cwd=paude.repo / "sub")  # anywhere inside the repository
    paude.ok("stop", name)
    assert not running(world.agent)
    paude.ok("start", "--no-attach", name)
    assert running(world.agent)
    # Outside any repository there is no other repository to confuse it with.
    outside = tmp_path / "outside"
    outside.mkdir()
    paude.ok("status", name, cwd=outside)


# ---------------------------------------------------------------- the user's terminal


def poll(what: str, check: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


class HostTmux:
    """A tmux server of the test's own on the host (its own socket), standing for the
    user's terminal: with set-clipboard on it turns every OSC 52 its pane receives into a
    paste buffer, and pipe-pane keeps the raw bytes."""

    def __init__(self, tmp: Path, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.socket = f"paude-it-{secrets.token_hex(4)}"
        self.raw = tmp / f"{self.socket}.raw"
        self.raw.touch()
        conf = tmp / f"{self.socket}.conf"
        conf.write_text("set -g set-clipboard on\nset -g allow-passthrough on\n"
                        "set -g default-terminal tmux-256color\n")
        self.tmux("-f", str(conf), "new-session", "-d", "-x", "120", "-y", "40", "-c", str(cwd),
                  "--", *command, env=env)
        self.tmux("pipe-pane", "-o", "-t", "0", f"cat >> {self.raw}")

    def tmux(self, *args: str, env: dict[str, str] | None = None) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, env=env,
                              capture_output=True, text=True).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "0")

    def buffers(self) -> str:
        return self.tmux("list-buffers", "-F", "#{buffer_name}:#{buffer_sample}")

    def alive(self) -> bool:
        return subprocess.run(["tmux", "-L", self.socket, "has-session"], check=False,
                              capture_output=True).returncode == 0

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], check=False,
                       capture_output=True)
        # A server that ended by itself can leave its socket behind.
        folder = Path(os.environ.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}"
        (folder / self.socket).unlink(missing_ok=True)


def agent_tmux(world: World, *args: str) -> str:
    return podman("exec", world.agent, "tmux", *args).stdout


def agent_prints(world: World, text: str, clip: str) -> None:
    """The agent, as any process in its tmux pane could, writes a visible line, OSC 52 and
    the same inside tmux passthrough to its pane's terminal."""
    data = base64.b64encode(clip.encode()).decode()
    via = base64.b64encode(f"{clip}-passthrough".encode()).decode()
    script = (f"printf '\\033]52;c;{data}\\007\\033Ptmux;\\033\\033]52;c;{via}\\007\\033\\\\"
              f"{text}\\n' > \"$(tmux display -p -t paude '#{{pane_tty}}')\"")
    podman("exec", world.agent, "sh", "-c", script)


@pytest.fixture
def hostile(world: World) -> World:
    """The agent turns on everything that forwards escapes to its clients."""
    if shutil.which("tmux") is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is not installed on the host")
        pytest.skip("tmux is not installed on the host")
    world.a.ok("start", "--no-attach", world.name)
    agent_tmux(world, "set", "-s", "set-clipboard", "on")
    agent_tmux(world, "set", "-g", "allow-passthrough", "on")
    agent_tmux(world, "set", "-as", "terminal-features", ",*:clipboard")
    return world


def attached_clients(world: World) -> int:
    return len(agent_tmux(world, "list-clients", "-t", "paude").splitlines())


@pytest.mark.parametrize("attach", ["paude connect", "plain podman exec"])
def test_clipboard_writes_from_the_agent(hostile: World, tmp_path: Path, attach: str) -> None:
    world = hostile
    if attach == "paude connect":
        command = [str(world.a.exe), "connect", world.name]
    else:  # the control: the same tmux client with nothing between it and the terminal
        command = ["podman", "exec", "-it", world.agent, "tmux", "attach", "-t", "paude"]
    host = HostTmux(tmp_path, command, world.a.env(), world.a.repo)
    try:
        poll("the attach", lambda: attached_clients(world) == 1)
        # Set again after the attach: the agent can change its options at any moment.
        agent_tmux(world, "set", "-s", "set-clipboard", "on")
        marker = f"visible-{secrets.token_hex(4)}"
        clip = f"clipboard-{secrets.token_hex(4)}"
        agent_prints(world, marker, clip)
        poll("the agent's line on the host", lambda: marker in host.screen())
        raw = host.raw.read_bytes()
        if attach == "paude connect":
            assert host.buffers() == ""
            assert b"\x1b]52" not in raw and b"\x1bP" not in raw
        else:
            poll("the clipboard write", lambda: clip in host.buffers())
            assert b"\x1b]52;" in raw
    finally:
        # Detached from inside: a podman exec client that goes away (a closed terminal)
        # leaves its process running in the container, so the client is ended there.
        podman("exec", world.agent, "tmux", "detach-client", "-s", "paude", check=False)
        poll("the detach", lambda: attached_clients(world) == 0)
        # The attach command ends with its client, and the host pane (the server) with it.
        poll("the attach command to exit", lambda: not host.alive())
        host.close()


def test_a_kept_workspace_stays_with_its_repository(world: World) -> None:
    """Destroyed with its workspace kept, the session is only the volume (and the work in
    it): another repository can neither adopt it with an apply nor delete it."""
    paude, name = world.a, world.name
    volume = f"paude-{name}-workspace"
    paude.ok("destroy", name, "--yes")
    assert not running(world.agent)
    assert podman("volume", "exists", volume, check=False).returncode == 0
    for args in (("apply", name, "--yes"), ("delete", name, "--confirm", "--force"),
                 ("destroy", name, "--yes", "--delete-data", "--force")):
        refused = paude.run(*args, cwd=world.b)
        assert refused.returncode == 1, refused
        assert f"belongs to the repository at {paude.repo.resolve()}" in refused.stderr
        assert podman("volume", "exists", volume, check=False).returncode == 0
    assert podman("container", "exists", world.agent, check=False).returncode != 0
    # The control: its own repository adopts it again, work included.
    paude.ok("apply", name, "--yes")
    assert "a's work" in workspace_log(world)
