"""Bounds on the shape of documents read from the repository, checked before they are loaded.

paude.yaml, paude-policy.yaml, paude.json and devcontainer.json are the agent's to write.
YAML aliases let a few hundred bytes stand for billions of nodes (each alias is walked again
by validation and serialisation), and deep nesting exhausts the parsers' recursion. Neither
has a use in a session definition, so both are refused with the line where the limit was
crossed, before any of the document is built. So are escaped lone surrogates ("\\udcff"):
they are not text, and every file or terminal paude would write them to refuses them."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import yaml

# A session definition is tens of nodes deep at most a handful of levels; these leave
# room for generous devcontainer feature options and anchors shared between sessions.
MAX_DEPTH = 64
MAX_NODES = 100_000
_SURROGATE = re.compile("[\ud800-\udfff]")
NOT_TEXT = "holds an escaped lone surrogate (\\uD800-\\uDFFF), which is not text"


class TooComplex(yaml.MarkedYAMLError):
    """A YAML document beyond MAX_DEPTH or MAX_NODES (aliases expanded), with a recursive
    alias, or with a value that is not text."""


def check_yaml(text: str) -> None:
    """Raise TooComplex (a yaml.YAMLError) when `text` is nested too deeply, refers to
    itself, expands to too many nodes or holds a value that is not text; syntax errors are
    left to the loader."""
    sizes: dict[str, int] = {}  # expanded size of each completed anchored node
    open_: list[tuple[str | None, int]] = []  # collections being read: anchor, size so far
    total = 0

    def add(size: int, mark: Any) -> None:
        nonlocal total
        if open_:
            anchor, so_far = open_[-1]
            open_[-1] = (anchor, so_far + size)
        total += size
        if total > MAX_NODES:
            raise TooComplex(problem=f"more than {MAX_NODES} nodes once aliases are expanded "
                             "(an alias bomb?)", problem_mark=mark)

    # The parser is iterative (unlike the composer and constructor that follow), so it
    # reads any nesting without recursing.
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        mark: Any = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            if any(anchor == event.anchor for anchor, _ in open_):
                raise TooComplex(problem=f"alias *{event.anchor} refers to the node "
                                 "that contains it", problem_mark=mark)
            size = sizes.get(event.anchor or "")
            if size is not None:  # else an undefined alias: the loader reports it
                add(size, mark)
        elif isinstance(event, yaml.ScalarEvent):
            if _SURROGATE.search(event.value):
                raise TooComplex(problem=f"a value {NOT_TEXT}", problem_mark=mark)
            if event.anchor:
                sizes[event.anchor] = 1
            add(1, mark)
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(open_) >= MAX_DEPTH:
                raise TooComplex(problem=f"nested more than {MAX_DEPTH} levels deep",
                                 problem_mark=mark)
            open_.append((event.anchor, 1))
        elif isinstance(event, yaml.CollectionEndEvent) and open_:
            anchor, size = open_.pop()
            total += 1  # the collection node itself; its children are counted
            if anchor:
                sizes[anchor] = size
            if open_:
                parent, so_far = open_[-1]
                open_[-1] = (parent, so_far + size)


def load_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    """The composed node tree and the loaded data of one bounded YAML document."""
    check_yaml(text)
    # Composed and loaded apart: loading merges `<<:` keys into the composed nodes, and the
    # node tree must stay as written (lines, duplicate keys).
    return yaml.compose(text, Loader=yaml.SafeLoader), yaml.safe_load(text)


def json_problem(data: Any) -> str | None:
    """Why parsed JSON is too deeply nested or not text, or None (iterative: no recursion
    limit)."""
    level: list[tuple[Any, int]] = [(data, 1)]
    while level:
        value, depth = level.pop()
        children: Iterable[Any] = (
            [*value.keys(), *value.values()] if isinstance(value, dict)
            else value if isinstance(value, list) else ())
        for child in children:
            if isinstance(child, str) and _SURROGATE.search(child):
                return f"a string {NOT_TEXT}"
            if isinstance(child, dict | list):
                if depth + 1 > MAX_DEPTH:
                    return f"nested more than {MAX_DEPTH} levels deep"
                level.append((child, depth + 1))
    return None


# The files of a base commit that a pull-request plan writes out to compare (paude plan
# --base): a repository's definitions and build contexts, never its history.
MAX_TREE_FILES = 50_000
MAX_TREE_BYTES = 512 * 1024 * 1024
