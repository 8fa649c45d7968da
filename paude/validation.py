"""Turning pydantic validation errors into readable problems: field paths and messages."""

from __future__ import annotations

import difflib
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from paude.models import PaudeFile, SessionSpec

LocPart = int | str
Loc = tuple[LocPart, ...]


def dotted(loc: Loc) -> str:
    """A field path as `sessions.demo.image`; a key that would not read as one word (empty,
    spaces, control characters) is quoted, so every path names its field visibly."""
    parts = [_part(p) for p in loc if p != "[key]"]
    return ".".join(parts) if parts else "(top level)"


def entry_loc(loc: Loc) -> Loc:
    """`loc` without the tags of an allowed_domains entry's form ('name' or 'rule', which
    pydantic inserts after the index): paths then name the field as it is written."""
    out: list[LocPart] = []
    for i, part in enumerate(loc):
        if part in ("name", "rule") and i >= 2 and isinstance(loc[i - 1], int) \
                and loc[i - 2] == "allowed_domains":
            continue
        out.append(part)
    return tuple(out)


def _part(part: LocPart) -> str:
    text = str(part)
    return text if text and text.isprintable() and not any(c.isspace() for c in text) \
        else repr(text)


def _unwrap(tp: Any) -> Any:
    """Strip Annotated[...] and `| None` from a field annotation."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
            continue
        if origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
                continue
        return tp


def _model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model class that validates the value at `loc`, if any."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        elif get_origin(tp) is list:
            tp = get_args(tp)[0]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


_TYPE_MESSAGES = {
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list, e.g. [a, b]",
    "dict_type": "expected a mapping of keys to values",
    "model_type": "expected a mapping of keys to values",
    "model_attributes_type": "expected a mapping of keys to values",
    "missing": "required field is missing",
}


def message(err: ErrorDetails, root_model: type[BaseModel]) -> str:
    """A readable message for one pydantic error; never echoes the input (it may be a secret)."""
    kind = err["type"]
    loc = tuple(err["loc"])
    if kind == "extra_forbidden" and loc:
        field = str(loc[-1])
        model = _model_at(root_model, loc[:-1])
        message = f"unknown field {field!r}"
        known = list(model.model_fields) if model else []
        close = difflib.get_close_matches(field, known, n=1, cutoff=0.6)
        if close:
            message += f"; did you mean {close[0]!r}?"
        elif model is PaudeFile and field in SessionSpec.model_fields:
            message += "; session settings go under `defaults:` or `sessions.NAME:`"
        return message
    if kind == "bool_type" and isinstance(err.get("input"), str):
        return "expected true or false (without quotes)"
    if kind == "string_type" and isinstance(err.get("input"), int | float):
        return "expected a string: put numbers in quotes"
    if kind in _TYPE_MESSAGES:
        return _TYPE_MESSAGES[kind]
    message = err["msg"].removeprefix("Value error, ")
    return message.replace("Input should be", "must be")
