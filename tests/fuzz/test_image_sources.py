"""paude.json and devcontainer.json (JSONC): generated image settings with comments and
trailing commas, and raw mutations, are accepted or refused with a ConfigError naming the
file; security properties are ignored with a warning; accepted ones render and run."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paude.config import session_from
from paude.errors import ConfigError, PaudeError
from paude.image_sources import IMAGE_SOURCES, SECURITY_PROPERTIES, _strip_jsonc, load_image_source
from paude.models import PaudeFile
from tests.fuzz import strategies as fz
from tests.fuzz.checks import check_renders, run_cluster_program, run_podman_program
from tests.fuzz.harness import bounded, fuzz, ran, readable
from tests.fuzz.world import World, world

# Hypothesis warns when it describes the big generated documents; that is expected.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

__all__ = ["world"]

commands = st.one_of(fz.sharp_text(), st.lists(fz.arguments, max_size=3),
                     st.dictionaries(fz.names, st.one_of(fz.sharp_text(), st.lists(fz.arguments,
                                                                                   max_size=2)),
                                     max_size=2))
PROPERTIES: dict[str, st.SearchStrategy[Any]] = {
    "image": fz.images, "base": fz.images,
    "build": fz.optional_fields({"dockerfile": fz.repo_paths, "context": fz.repo_paths,
                                 "args": st.dictionaries(fz.env_names, fz.env_values, max_size=2),
                                 "options": st.lists(fz.sharp_text(), max_size=2),
                                 "target": fz.names}, extra_keys=False),
    "packages": st.lists(fz.packages, max_size=3),
    "features": st.dictionaries(fz.sharp_text(12), fz.json_values(), max_size=2),
    "setup": commands, "postCreateCommand": commands,
    "containerEnv": st.dictionaries(fz.env_names, fz.env_values, max_size=3),
    "venv": st.one_of(st.sampled_from(["auto", "none", ".venv"]),
                      st.lists(fz.repo_paths, max_size=2)),
    "name": fz.sharp_text(),
    "customizations": fz.json_values(),
    **{key: st.one_of(st.booleans(), st.lists(fz.sharp_text(), max_size=2))
       for key in sorted(SECURITY_PROPERTIES)},
}
# JSON has no NaN: floats are left out so the JSONC round trip can be compared exactly.
documents = fz.optional_fields(PROPERTIES).filter(lambda d: "NaN" not in json.dumps(d))


@st.composite
def jsonc(draw: st.DrawFn, data: Any) -> str:
    """`data` as JSON with comments between tokens and trailing commas."""
    lines = json.dumps(data, indent=1, ensure_ascii=draw(st.booleans())).split("\n")
    comment = st.text(st.characters(blacklist_characters="\n\r\u2028\u2029\x85",
                                    blacklist_categories=("Cs",)), max_size=10)
    out = []
    for index, line in enumerate(lines):
        following = lines[index + 1].strip() if index + 1 < len(lines) else ""
        if following[:1] in ("}", "]") and line.strip() not in ("{", "[") \
                and not line.endswith(("[", "{")) and draw(st.booleans()):
            line += ","
        choice = draw(st.integers(0, 5))
        if choice == 0:
            line += " // " + draw(comment)
        elif choice == 1:
            line = "/* " + draw(comment).replace("*/", "") + " */" + line
        out.append(line)
    return "\n".join(out)


def check_source(world: World, where: str, data: bytes, parsed: Any = None) -> bool:
    """Load one image source file; True when accepted (and then rendered and run)."""
    world.clean_sources()
    path = world.root / where
    path.write_bytes(data)
    try:
        with bounded(f"loading {where}"):
            found = load_image_source(world.root)
    except ConfigError as exc:
        readable(exc, where)
        return False
    assert found is not None and found.source == where
    warnings = found.warnings
    if isinstance(parsed, dict):
        for key in SECURITY_PROPERTIES & set(parsed):
            assert any(repr(key) in w and "ignored" in w for w in warnings), (key, warnings)
    file = PaudeFile.model_validate({"sessions": {"demo": {}}})
    try:
        session, _ = session_from(file, world.root, "demo")
    except PaudeError as exc:
        readable(exc)
        return True
    assert session.image_source == where
    check_renders(session)
    run_podman_program(session, world.root)
    run_cluster_program(session, world.root)
    return True


@fuzz("image source structured")
@given(data=st.data(), doc=documents, where=st.sampled_from(IMAGE_SOURCES))
def test_structured_sources(world: World, data: st.DataObject, doc: dict[str, Any],
                            where: str) -> None:
    text = data.draw(jsonc(doc))
    # Comments and trailing commas go; everything inside strings stays.
    assert json.loads(_strip_jsonc(text)) == doc
    accepted = check_source(world, where, text.encode("utf-8", "surrogatepass"), doc)
    ran("image source structured", accepted=accepted)


SEED_JSON = [
    '{"image": "python:3.12", "packages": ["make"], "setup": "pip install -e ."}',
    '{\n  // a comment\n  "build": {"dockerfile": "Dockerfile", "args": {"A": "1"},},\n'
    '  "postCreateCommand": ["make", "test"], /* c */\n  "containerEnv": {"X": "y"},\n'
    '  "runArgs": ["--privileged"], "mounts": [],\n}',
    '{"features": {"ghcr.io/devcontainers/features/node:1": {"version": "20"}},'
    ' "name": "x", "venv": ".venv"}',
]
JSON_FRAGMENTS = ['"', "\\", "\\u", "\\ud800", "//", "/*", "*/", ",", ",,", "{", "}", "[", "]",
                  ":", "null", "1e999", "-0", "NaN", "Infinity", "\n", "\x00", "\ufeff",
                  '"a": 1', "true", "[" * 100, "{\"a\":" * 70, "\u2028", "'"]


@fuzz("image source text mutations")
@given(text=fz.mutated_text(SEED_JSON, JSON_FRAGMENTS), where=st.sampled_from(IMAGE_SOURCES))
def test_text_mutations(world: World, text: str, where: str) -> None:
    accepted = check_source(world, where, text.encode("utf-8", "surrogatepass"))
    ran("image source text mutations", accepted=accepted)
