"""Quick commands stay quick: the CLI's start (what `--help`, `list` and `status` pay before
they do anything) imports none of the heavy libraries; the commands that need them import
them when they run."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pydantic", "pulumi", "rich", "yaml", "jinja2", "grpc")


def test_the_cli_starts_without_the_heavy_libraries() -> None:
    # The CLI, what `status` runs (the work report, the setup state) and prints, and what
    # `start` runs (the GitHub token's take-back, which reads the gateway's file names).
    found = subprocess.run(
        [sys.executable, "-c", "import sys, paude.cli, paude.lifecycle, paude.work\n"
         "import paude.workspace_setup, paude.cli.output, paude.github_token, paude.gateway\n"
         "paude.cli.output.text('a line')\n"
         f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"],
        capture_output=True, text=True, check=True).stdout.split()
    assert found == ["a", "line"]


def test_the_control_a_heavy_import_is_seen() -> None:
    # The check above would pass vacuously if sys.modules never listed these.
    found = subprocess.run(
        [sys.executable, "-c", "import sys, paude.cli, paude.settings\n"
         "print('pydantic' in sys.modules)"], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "True"
