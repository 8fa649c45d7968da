"""The JSON Schema of paude.yaml, generated from the pydantic models."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from paude.models import PaudeFile

SCHEMA_ID = "urn:paude:schema:paude.yaml:1"
SCHEMA_PATH = "docs/paude.schema.json"


def schema_json() -> str:
    """The JSON Schema of paude.yaml as stable, sorted JSON text."""
    schema = PaudeFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "paude.yaml"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the schema to the path given (default docs/paude.schema.json)."""
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0] if args else SCHEMA_PATH)
    target.write_text(schema_json(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
