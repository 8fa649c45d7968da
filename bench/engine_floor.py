"""The engine's floor: a no-op preview of an empty Pulumi program, with the same engine and
the same Automation API paude uses, as one whole process (interpreter start included).

    python bench/engine_floor.py STATE_DIR ENGINE_DIR VERSION   (the stack is made on first use)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pulumi import automation as auto
from semver import VersionInfo


def _empty() -> None:
    """A program declaring nothing."""


def _command(engine_dir: Path, version: str) -> auto.PulumiCommand:
    # As paude does: the binary itself, not ROOT/bin/pulumi.
    command = auto.PulumiCommand.__new__(auto.PulumiCommand)
    command.command = str(engine_dir / "pulumi")
    command.version = VersionInfo.parse(version.lstrip("v"))
    return command


def main(state: Path, engine_dir: Path, version: str) -> int:
    """Select (or make) the stack `floor` in a file backend and preview the empty program."""
    (state / "project").mkdir(parents=True, exist_ok=True)
    env = {"PULUMI_CONFIG_PASSPHRASE": "floor", "PULUMI_BACKEND_URL": f"file://{state}",
           "PULUMI_SKIP_UPDATE_CHECK": "true",
           "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
           "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
           "PATH": f"{engine_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    opts = auto.LocalWorkspaceOptions(
        work_dir=str(state / "project"), pulumi_home=str(state / "pulumi-home"),
        pulumi_command=_command(engine_dir, version),
        env_vars=env, secrets_provider="passphrase")
    stack = auto.create_or_select_stack(stack_name="floor", project_name="floor",
                                        program=_empty, opts=opts)
    stack.preview(color="never", suppress_progress=True, diff=False)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]))
