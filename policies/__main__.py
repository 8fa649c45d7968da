"""Entry point the engine launches (through paude's launcher script): serve the pack with
the configuration named by PAUDE_POLICY_CONFIG."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from paude import enginewatch

from .pack import serve
from .settings import PackConfig

START_FAILURE = "paude policy pack could not start: "


def main() -> None:
    """Load the resolved configuration and serve the pack."""
    path = os.environ.get("PAUDE_POLICY_CONFIG")
    if not path:
        sys.exit("PAUDE_POLICY_CONFIG is not set: paude starts this pack, not users")
    config = PackConfig.model_validate_json(Path(path).read_text(encoding="utf-8"))
    enginewatch.exit_with_engine()  # a killed engine must not leave the pack running
    try:
        serve(config)
    except (ValueError, OSError) as exc:
        # One line the engine passes on (paude shows it), instead of a traceback.
        sys.exit(f"{START_FAILURE}{exc}")


if __name__ == "__main__":
    main()
