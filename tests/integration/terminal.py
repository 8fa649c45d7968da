"""A terminal on the host for the quick-start tests: paude runs in a tmux window the
test reads with capture-pane and types into, as a user would at a real terminal."""

from __future__ import annotations

import secrets
import shlex
import subprocess
import time

from tests.integration.helpers import Paude

# What a user's shell would carry into paude; the rest of the test's environment stays out.
PASSED = ("PATH", "HOME", "PAUDE_HOME", "PULUMI_CONFIG_PASSPHRASE", "PAUDE_NO_ENGINE_DOWNLOAD",
          "CI", "KUBECONFIG")


class HostTerminal:
    """A terminal on the host: a tmux session on a private server, read with capture-pane."""

    def __init__(self, paude: Paude) -> None:
        self.socket = f"paude-test-{secrets.token_hex(4)}"
        self.paude = paude
        self.count = 0

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True,
                              text=True, check=False)

    def run(self, *paude_args: str) -> str:
        """Start `paude ARGS` in a new terminal window; returns the window's target."""
        self.count += 1
        target = f"t{self.count}"
        env = {k: v for k, v in self.paude.env().items() if k in PASSED}
        command = shlex.join(["env", *(f"{k}={v}" for k, v in env.items()),
                              str(self.paude.exe), *paude_args])
        shell = f"cd {shlex.quote(str(self.paude.repo))} && {command}; echo PAUDE-EXITED=$?; " \
                "sleep 600"
        self.tmux("new-session", "-d", "-s", target, "-x", "160", "-y", "40",
                  "sh", "-c", shell)
        return target

    def screen(self, target: str) -> str:
        return self.tmux("capture-pane", "-p", "-t", target, "-S", "-200").stdout

    def wait_for(self, target: str, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen(target)
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared on the terminal:\n{self.screen(target)}")

    def type(self, target: str, *keys: str) -> None:
        self.tmux("send-keys", "-t", target, *keys)

    def close(self) -> None:
        self.tmux("kill-server")
