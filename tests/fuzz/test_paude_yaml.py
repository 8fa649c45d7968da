"""paude.yaml: generated near-valid documents and raw mutations are accepted or refused with
a ConfigError naming the file, quickly; every accepted one survives a rewrite, renders
well-formed files and runs as both stack programs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paude.config import dump_paude_file, load_paude_file
from paude.definition import CreateFlags, plan_definition
from paude.errors import ConfigError
from paude.models import PaudeFile
from tests.fuzz import strategies as fz
from tests.fuzz.harness import bounded, fuzz, ran, readable
from tests.fuzz.world import CA_NAMES, FIXED_CA_PATHS, World, check_sessions, world

# Hypothesis warns when it describes the big generated documents; that is expected.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

__all__ = ["world"]

# The strategies need the CA paths before the world exists: they live at fixed names
# under each world, and `{cas}` is filled in per example.
CA_PATHS = [f"{{cas}}/{n}" for n in CA_NAMES] + list(FIXED_CA_PATHS)


def _fill(text: str, world: World) -> str:
    return text.replace("{cas}", str(world.home.parent / "cas"))


def check_paude_yaml(world: World, data: bytes) -> bool:
    """Load one paude.yaml; True when it was accepted (and then fully checked)."""
    path = world.root / "paude.yaml"
    path.write_bytes(data)
    try:
        with bounded("loading paude.yaml"):
            file = load_paude_file(path)
    except ConfigError as exc:
        readable(exc, str(path))
        return False
    # `paude create` rewrites the file: what it writes reads back as the same definition.
    again = world.root / "rewritten" / "paude.yaml"
    again.parent.mkdir(exist_ok=True)
    again.write_text(dump_paude_file(file), encoding="utf-8")
    assert load_paude_file(again).model_dump(mode="json") == file.model_dump(mode="json")
    _check_create(world, file)
    check_sessions(world, file, list(file.sessions))
    return True


def _check_create(world: World, file: PaudeFile) -> None:
    """`paude create NEW` adds one session to the file as written and loses nothing: the
    text it would write reads back as the old definition plus the new session."""
    name = next(n for n in ("fz-new", "fz-new-2", "fz-new-3") if n not in file.sessions)
    try:
        definition = plan_definition(world.root, name, CreateFlags(
            yolo=True, allowed_domains=("pypi", ".example.com"), args="-p 'hi there'"))
    except ConfigError as exc:  # the file is refused as a whole; nothing else may fail
        readable(exc)
        return
    again = world.root / "created" / "paude.yaml"
    again.parent.mkdir(exist_ok=True)
    again.write_text(definition.text, encoding="utf-8")
    written = load_paude_file(again)
    assert written.model_dump(mode="json") == definition.file.model_dump(mode="json")
    assert set(written.sessions) == {*file.sessions, name}
    for old, spec in file.sessions.items():
        assert written.sessions[old].model_dump(mode="json") == spec.model_dump(mode="json")
    assert written.defaults.model_dump(mode="json") == file.defaults.model_dump(mode="json")


def _encode(text: str) -> bytes:
    # Lone surrogates go out as the bytes a careless writer would produce (not UTF-8).
    return text.encode("utf-8", "surrogatepass")


@fuzz("paude.yaml structured")
@given(doc=fz.paude_documents(CA_PATHS), style=st.integers(0, 3))
def test_structured_documents(world: World, doc: dict[str, object], style: int) -> None:
    text = _fill(fz.as_yaml(doc, style), world)
    ran("paude.yaml structured", accepted=check_paude_yaml(world, _encode(text)))


@fuzz("paude.yaml text mutations")
@given(text=fz.mutated_text(fz.SEED_YAML))
def test_text_mutations(world: World, text: str) -> None:
    ran("paude.yaml text mutations", accepted=check_paude_yaml(world, _encode(text)))


@fuzz("paude.yaml bytes")
@given(data=st.one_of(fz.mutated_bytes(fz.SEED_YAML), st.binary(max_size=64)))
def test_byte_mutations(world: World, data: bytes) -> None:
    ran("paude.yaml bytes", accepted=check_paude_yaml(world, data))


@fuzz("paude.yaml shapes")
@given(text=fz.shapes)
def test_hostile_shapes(world: World, text: str) -> None:
    # Alias bombs, deep nesting, huge values and many keys: refused or accepted in bounded time.
    ran("paude.yaml shapes", accepted=check_paude_yaml(world, _encode(text)))
