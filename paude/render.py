"""The only jinja2 environment: renders templates/ from validated models."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    # Imported here: reading a static template (template_source, e.g. for `paude status`)
    # needs no jinja2, and importing it costs a short command a tenth of its time.
    import jinja2

    # StrictUndefined: a template that names a missing value is a bug, not an empty string.
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["containerfile_quote"] = containerfile_quote
    return env


def containerfile_quote(value: str) -> str:
    """A double-quoted Containerfile value: only \\, " and $ are special there."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def _load(name: str) -> str:
    return resources.files("paude.templates").joinpath(name).read_text(encoding="utf-8")


def render(name: str, **context: Any) -> str:
    """Render one template by file name with the given context."""
    return _env().get_template(name).render(**context)


def template_source(name: str) -> str:
    """The raw text of a template or static file (hashed into image tags)."""
    return _load(name)
