"""Devcontainer features from folders of the repository, as agent image build files.

A feature's install.sh is repository content: it runs in the image build (the build
sandbox), as root as the feature spec says, in a RUN step with no network at all.
Features named by an OCI reference would be fetched from a registry by the build, so
they are refused with the way to vendor them instead."""

from __future__ import annotations

import itertools
import json
import posixpath
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paude.errors import ConfigError, ConfigProblem
from paude.models import Session
from paude.render import render

from . import buildcheck
from .resources import FEATURES_FILE

# A local feature: a path of the repository, written "./path" (devcontainer.json's are
# rebased on the repository when read).
_LOCAL_RE = re.compile(r"^\./[A-Za-z0-9_.@+-]+(?:/[A-Za-z0-9_.@+-]+)*/?$")
_FILE_LIMIT = 1 << 20  # all the files of one feature
_COUNT_LIMIT = 500  # its files and folders (each is read, hashed and copied)
ENV_FILE = "devcontainer-features.env"


@dataclass(frozen=True)
class Feature:
    """One feature, ready for the agent's Containerfile."""

    ref: str  # as written (a safe path: it is quoted in a Containerfile comment)
    folder: str  # in the build context


def option_env(name: str) -> str:
    """The variable an option becomes (the devcontainer feature spec's rule)."""
    env = re.sub(r"[^\w]", "_", name, flags=re.ASCII).upper()
    return f"_{env}" if env[:1].isdigit() else env


def _where(session: Session) -> str:
    return session.image_source if session.image_source not in ("default",) else "paude.yaml"


def _problem(session: Session, ref: str, message: str, hint: str) -> ConfigError:
    return ConfigError(_where(session), [ConfigProblem(f"features.{ref}", message)], hint=hint)


def _options(session: Session, ref: str, manifest: dict[str, Any], value: Any) -> dict[str, str]:
    """The option values a feature installs with: the user's over the manifest's defaults."""
    declared = manifest.get("options") or {}
    if not isinstance(declared, dict):
        raise _problem(session, ref, "devcontainer-feature.json: 'options' is not an object",
                       "fix the feature's manifest")
    if isinstance(value, str):  # the spec's shorthand for the version option
        value = {"version": value}
    elif value is True or value is None:
        value = {}
    if not isinstance(value, dict):
        raise _problem(session, ref, "expected an object of options, a version string or true",
                       'e.g. "./features/tool": {"version": "1.2"}')
    unknown = sorted(set(value) - set(declared))
    if unknown:
        raise _problem(session, ref, f"unknown option(s) {', '.join(map(repr, unknown))}; the "
                       f"feature declares: {', '.join(sorted(declared)) or 'none'}",
                       "use the option names of the feature's devcontainer-feature.json")
    out: dict[str, str] = {}
    for name, spec in declared.items():
        chosen = value.get(name, spec.get("default", "") if isinstance(spec, dict) else "")
        text = str(chosen).lower() if isinstance(chosen, bool) else str(chosen)
        if not isinstance(chosen, str | int | float | bool) or "\x00" in text:
            raise _problem(session, ref, f"option {name!r} must be a string, number or boolean",
                           "fix the option's value")
        out[option_env(str(name))] = text
    return out


def build_files(session: Session, root: Path) -> tuple[list[Feature], dict[str, str]]:
    """The features of the session's image and the build-context files they need (with
    the second build's Containerfile); none when the session has no features."""
    features: list[Feature] = []
    files: dict[str, str] = {}
    for index, (ref, value) in enumerate(session.image.features.items()):
        if not _LOCAL_RE.match(ref) or ".." in ref.split("/"):
            raise _problem(
                session, ref, "only features in a folder of the repository are installed: an "
                "OCI reference would be fetched from a registry, and paude's image builds "
                "reach none",
                "copy the feature's folder (devcontainer-feature.json, install.sh and its "
                "files) into the repository, e.g. .devcontainer/features/NAME, and name it "
                "'./features/NAME' in devcontainer.json ('./PATH' from the repository root "
                "in paude.yaml)")
        folder = buildcheck.inside(root, root / ref, f"features.{ref}", _where(session))
        if not (folder / "devcontainer-feature.json").is_file() or not (
                folder / "install.sh").is_file():
            raise _problem(session, ref, f"{ref} is not a feature folder: it needs "
                           "devcontainer-feature.json and install.sh",
                           "point at the folder that holds the feature's manifest")
        own, size = {}, 0
        entries = list(itertools.islice(folder.rglob("*"), _COUNT_LIMIT + 1))
        if len(entries) > _COUNT_LIMIT:
            raise _problem(session, ref, f"the feature's folder holds more than {_COUNT_LIMIT} "
                           "files and folders", "keep the feature folder to its scripts")
        for path in sorted(entries):
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink():
                raise _problem(session, ref, f"{rel} is a symlink",
                               "replace it with the file itself")
            if not path.is_file():
                continue
            try:
                own[rel] = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise _problem(session, ref, f"{rel} is not UTF-8 text",
                               "features are built from text files (scripts, manifests)"
                               ) from None
            size += len(own[rel])
            if size > _FILE_LIMIT:
                raise _problem(session, ref, "the feature's files exceed 1 MiB",
                               "keep large downloads out of the feature folder")
        try:
            manifest = json.loads(own["devcontainer-feature.json"])
        except json.JSONDecodeError as exc:
            raise _problem(session, ref, f"devcontainer-feature.json: invalid JSON: {exc.msg} "
                           f"(line {exc.lineno})", "fix the feature's manifest") from None
        if not isinstance(manifest, dict):
            raise _problem(session, ref, "devcontainer-feature.json is not a JSON object",
                           "fix the feature's manifest")
        env = {**_options(session, ref, manifest, value), "_REMOTE_USER": "paude",
               "_REMOTE_USER_HOME": "/home/paude", "_CONTAINER_USER": "paude",
               "_CONTAINER_USER_HOME": "/home/paude"}
        own[ENV_FILE] = "".join(f"{k}={shlex.quote(v)}\n" for k, v in sorted(env.items()))
        context = f"features/{index}"
        files.update({posixpath.join(context, rel): text for rel, text in own.items()})
        features.append(Feature(ref.rstrip("/"), context))
    if features:
        files[FEATURES_FILE] = render("Containerfile.features.j2", features=[
            {"ref": f.ref, "folder": f.folder} for f in features])
    return features, files
