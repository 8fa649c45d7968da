"""The policy pack tells the engine its port whatever the user's environment: without
PYTHONUNBUFFERED, a block-buffered stdout held the port back and every plan hung."""

from __future__ import annotations

import os
import select
import subprocess
import sys
from pathlib import Path

from paude.policy import launcher, resolve


def first_line(argv: list[str], env: dict[str, str], timeout: float) -> str | None:
    """The first line the process writes to its stdout pipe within `timeout`, else None."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    assert proc.stdout is not None
    try:
        ready, _, _ = select.select([proc.stdout], [], [], timeout)
        return proc.stdout.readline().decode() if ready else None
    finally:
        proc.kill()
        proc.wait()


def test_the_pack_announces_its_port_without_pythonunbuffered(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    exe = launcher(resolve([]), tmp_path)
    line = first_line([str(exe), "127.0.0.1:1"], env, timeout=30)
    assert line is not None and line.strip().isdigit(), line
    # Control: the same pack started without -u holds the port back.
    held = first_line([sys.executable, "-P", "-m", "paude.policies", "127.0.0.1:1"],
                      {**env, "PAUDE_POLICY_CONFIG": str(exe.parent / "config.json")},
                      timeout=3)
    assert held is None
