"""Where a custom rule's code lives, found without running it, and whether a repository
could have written it.

A custom check runs with the user's rights (and the state passphrase in its environment),
so its code must come from outside every repository paude plans: the agent writes files
there, and its commits reach the host by `git pull`."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from collections.abc import Iterable
from pathlib import Path

# FILE.py:FUNCTION (a path, relative to the policy file) or package.module:FUNCTION.
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
CHECK_PATTERN = rf"^(?:[^:]+\.py|{_IDENT}(?:\.{_IDENT})*):{_IDENT}$"


def is_file_check(check: str) -> bool:
    """True for FILE.py:FUNCTION, False for package.module:FUNCTION."""
    return check.split(":", 1)[0].endswith(".py")


def inside(path: Path, roots: Iterable[str | Path]) -> Path | None:
    """The root that holds `path` once every symlink is resolved, or None (also for a
    symlink loop, which leads nowhere and cannot be read)."""
    try:
        real = path.resolve()
    except (RuntimeError, OSError):  # Python 3.11 raises RuntimeError for a loop
        return None
    for root in roots:
        folder = Path(root).resolve()
        if real == folder or real.is_relative_to(folder):
            return folder
    return None


def repository_root(folder: Path) -> Path:
    """The repository a folder belongs to: the nearest ancestor holding `.git`, else the
    folder itself. Code anywhere in it may have come from the agent."""
    folder = folder.resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return folder


def module_locations(name: str) -> tuple[list[Path], bool]:
    """The files and folders that make up module `name` and the packages above it, found
    the way the import system would, without importing anything; and whether the whole
    chain was found that way.

    Only the top-level name goes through sys.meta_path (which does not run the package);
    submodules are looked up in their package's folders by the path finder. A package that
    extends its path when imported cannot be followed: the chain is then incomplete, and
    only importing it tells where the rest comes from. Raises LookupError when the
    top-level module is not installed."""
    parts = name.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise LookupError(f"no installed module {parts[0]}")
    found = spec_locations(spec)
    for index in range(1, len(parts)):
        search = list(spec.submodule_search_locations or [])
        sub = importlib.machinery.PathFinder.find_spec(".".join(parts[: index + 1]), search)
        if sub is None:
            return found, False
        spec = sub
        found += spec_locations(spec)
    return found, True


def spec_locations(spec: importlib.machinery.ModuleSpec) -> list[Path]:
    """The file a module loads from and the folders a package's submodules come from."""
    paths = [Path(p) for p in spec.submodule_search_locations or []]
    if spec.origin and spec.has_location:
        paths.append(Path(spec.origin))
    return paths
