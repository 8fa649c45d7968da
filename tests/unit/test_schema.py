"""The committed JSON Schema of paude.yaml matches the models."""

from __future__ import annotations

import json
from pathlib import Path

from paude.models import PaudeFile
from paude.schema import SCHEMA_ID, main, schema_json

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "paude.schema.json"


def test_schema_is_up_to_date() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == schema_json(), (
        "docs/paude.schema.json is stale; regenerate it with "
        "`python -m paude.schema docs/paude.schema.json` and commit the result"
    )


def test_schema_describes_every_field() -> None:
    schema = json.loads(schema_json())
    assert schema["$id"] == SCHEMA_ID
    assert schema["additionalProperties"] is False
    models = [schema, *schema["$defs"].values()]
    for model in models:
        for name, field in model["properties"].items():
            assert field.get("description"), f"{model['title']}.{name} has no description"
    assert set(schema["properties"]) == set(PaudeFile.model_fields)


def test_main_writes_the_schema(tmp_path: Path) -> None:
    target = tmp_path / "schema.json"
    assert main([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == schema_json()
