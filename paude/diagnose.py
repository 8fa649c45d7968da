"""Checks behind `paude doctor`: engine, podman, base image and state backend, each with a
fix; and the effective settings of this machine with where each comes from."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from paude import machine, proc, settings
from paude.config import PAUDE_FILE, find_project_root, load_paude_file
from paude.errors import PaudeError
from paude.home import default_backend_url
from paude.toolchain import BUILD_HINT, PULUMI_VERSION, find_engine


@dataclass(frozen=True)
class Check:
    """One diagnosis: what was checked, whether it is usable, and the fix if not."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None


def check_engine(home: Path) -> Check:
    """Is a Pulumi CLI of at least the pinned version available?"""
    engine, problems = find_engine(home)
    if engine is not None:
        helper = engine.bin_dir / "pulumi-resource-pulumi-python"
        if not helper.exists():
            return Check("engine", False, f"pulumi {engine.version} at {engine.bin_dir}, but "
                         "pulumi-resource-pulumi-python is missing beside it",
                         f"install the complete engine: {BUILD_HINT}")
        return Check("engine", True, f"pulumi {engine.version} ({engine.source}: {engine.bin_dir})")
    detail = "; ".join(problems) or f"no pulumi in {home / 'bin'} or on PATH"
    return Check("engine", False, detail,
                 f"paude downloads pulumi v{PULUMI_VERSION} on first use; {BUILD_HINT}")


def check_podman() -> Check:
    """Is podman installed, and can it talk to its engine?"""
    if proc.which("podman") is None:
        return Check("podman", False, "podman is not installed",
                     "install podman (e.g. `apt-get install podman`)")
    result = proc.run(["podman", "info", "--format",
                       "{{.Version.Version}} runtime={{.Host.OCIRuntime.Name}} "
                       "cgroups={{.Host.CgroupsVersion}}"], check=False, timeout=60)
    if not result.ok:
        return Check("podman", False, result.stderr.strip().splitlines()[-1:][0]
                     if result.stderr.strip() else "podman info failed",
                     "run `podman info` to see why podman cannot start")
    return Check("podman", True, f"podman {result.stdout.strip()}")


def check_base_image(home: Path) -> Check:
    """Are this machine's base images there, the agent's and the proxy's? (A registry
    image is pulled on first use; a local one must have been built.)"""
    settings = machine.load(home)
    agent, proxy = settings.default_base, settings.proxy_base
    # (who uses it, the setting naming it, the image, what builds a local one)
    wanted = [("agent and proxy" if proxy == agent else "agent", "image.base", agent,
               "make base-image")]
    if proxy != agent:
        wanted.append(("proxy", "proxy.base", proxy, "make proxy-base"))
    found = []
    for user, setting, image, build in wanted:
        if not image.startswith("localhost/"):
            found.append(f"{user}: {image} (pulled from its registry on first use)")
            continue
        if proc.which("podman") is None:
            return Check("base", False, f"{image}: podman is not installed",
                         "install podman first")
        if not proc.run(["podman", "image", "exists", image], check=False, timeout=60).ok:
            return Check("base", False, f"{image} is named as {setting} in "
                         f"{machine.machine_file(home)} but podman has no such image",
                         f"build it: `{build}` (from the paude repository), or name a "
                         f"reachable image in {setting}")
        found.append(f"{user}: {image} (local)")
    return Check("base", True, "; ".join(found))


def check_state(home: Path, backend_url: str | None) -> Check:
    """Is the state backend reachable (for a local file backend: writable)?"""
    url = backend_url or os.environ.get("PAUDE_STATE_BACKEND") or default_backend_url(home)
    if url.startswith("file://"):
        path = Path(url.removeprefix("file://")).expanduser()
        if path.is_dir() and os.access(path, os.W_OK):
            return Check("state", True, url)
        return Check("state", False, f"{url} is not a writable directory",
                     f"create it (`mkdir -p {path}`) or set PAUDE_STATE_BACKEND")
    return Check("state", True, f"{url} (remote; credentials are checked on first use)")


def run_all(home: Path, backend_url: str | None = None) -> list[Check]:
    """Every check, in the order a user would fix them."""
    checks: list[tuple[str, Callable[[], Check]]] = [
        ("engine", lambda: check_engine(home)), ("podman", check_podman),
        ("base", lambda: check_base_image(home)),
        ("state", lambda: check_state(home, backend_url))]
    out = []
    for name, check in checks:
        try:
            out.append(check())
        except PaudeError as exc:  # this machine's config.yaml is wrong, say
            out.append(Check(name, False, exc.message, exc.hint))
    return out


@dataclass(frozen=True)
class Settings:
    """The effective settings, the paude.yaml they were read with, and why it was not read."""

    rows: list[settings.Setting]
    machine_file: Path
    paude_file: Path | None
    problem: str | None = None


def effective_settings(home: Path, cwd: Path) -> Settings:
    """This machine's settings, under the paude.yaml of the repository at `cwd` if any."""
    path = find_project_root(cwd) / PAUDE_FILE
    file, problem = None, None
    if path.is_file():
        try:
            file = load_paude_file(path)
        except PaudeError as exc:
            problem = f"{path} was not read: {exc.message}"
    try:
        rows = settings.effective(home, file)
    except PaudeError as exc:  # config.yaml itself is wrong: say so, with the fix
        return Settings([], machine.machine_file(home), None, exc.message)
    return Settings(rows, machine.machine_file(home), path if file is not None else None, problem)
