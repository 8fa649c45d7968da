"""Where and how the engine runs: the engine context, the Automation API's workspace
options (paude's environment for the engine and its plugins) and the stack object every
command addresses by name. Part of the engine layer (paude/engine.py drives the runs)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pulumi import automation as auto
from semver import VersionInfo

from paude import engine_text as text
from paude import enginewatch, forkserver, statefile
from paude.home import default_backend_url, passphrase, write_if_changed
from paude.results import ProgressEvent
from paude.toolchain import Engine, engine_env, ensure_engine

PROJECT = "paude"
Program = Callable[[], None]
OnProgress = Callable[[ProgressEvent], None]
Notice = Callable[[str], None]
# What a command opens a stack for: a plan reads, an apply or a destroy changes it.
Purpose = Literal["plan", "apply", "destroy"]


@dataclass(frozen=True)
class EngineContext:
    """Where stacks live and how the engine is run."""

    home: Path
    backend_url: str
    engine: Engine
    passphrase: str = field(repr=False)
    # Told what paude repaired or waits for (a stale lock cleared, a crash's leftovers).
    on_notice: Notice | None = field(default=None, repr=False, compare=False)

    @property
    def work_dir(self) -> Path:
        """Holds Pulumi.yaml and per-stack settings; never inside the installed package."""
        return self.home / "project"

    def notice(self, message: str) -> None:
        """Pass a message to the caller, if it listens."""
        if self.on_notice is not None:
            self.on_notice(message)


def connect(home: Path, backend_url: str | None = None, *,
            on_install: Callable[[int, int | None], None] | None = None,
            on_notice: Notice | None = None) -> EngineContext:
    """Locate (or install) the engine and describe the state backend."""
    engine = ensure_engine(home, progress=on_install)
    return EngineContext(home, backend_url or default_backend_url(home), engine, passphrase(home),
                         on_notice)


def locate(home: Path) -> Engine:
    """The engine of PAUDE_HOME `home` (found, or the pinned release installed), for a
    context whose state lives elsewhere (a render's throwaway backend)."""
    return ensure_engine(home)


def _options(ctx: EngineContext) -> auto.LocalWorkspaceOptions:
    _write_project(ctx)
    # The backend goes to each engine run in its environment: processes of repositories
    # with different backends share the project folder, and the environment wins over it.
    # Dynamic providers run under a watch that ends them with their engine.
    env = {**engine_env(ctx.engine), "PULUMI_CONFIG_PASSPHRASE": ctx.passphrase,
           "PULUMI_BACKEND_URL": ctx.backend_url,
           "PULUMI_PYTHON_CMD": str(enginewatch.interpreter(ctx.home))}
    served = forkserver.socket_path()
    if served:  # plugins start as forks of paude's warm fork server
        env[forkserver.ENV] = served
    return auto.LocalWorkspaceOptions(
        work_dir=str(ctx.work_dir),
        pulumi_home=str(ctx.home / "pulumi"),
        pulumi_command=_command(ctx.engine),
        env_vars=env,
        secrets_provider="passphrase",
    )


def _write_project(ctx: EngineContext) -> None:
    """Pulumi.yaml, written here and atomically: the Automation API rewrites it in place on
    every run, and a paude running beside this one could read it half-written."""
    content = f"name: {PROJECT}\nruntime: python\nbackend:\n  url: {ctx.backend_url}\n"
    write_if_changed(ctx.work_dir / "Pulumi.yaml", content)


def _command(engine: Engine) -> auto.PulumiCommand:
    # PulumiCommand wants ROOT/bin/pulumi, but a CLI found on PATH may sit anywhere; point
    # it at the binary paude already found and version-checked.
    command = auto.PulumiCommand.__new__(auto.PulumiCommand)
    command.command = str(engine.bin_dir / "pulumi")
    command.version = VersionInfo.parse(engine.version.lstrip("v"))
    return command


def _noop() -> None:
    """Placeholder program for operations that never run one (destroy, outputs)."""


class _Named(auto.Stack):
    """A stack addressed by name: every command paude runs passes `--stack NAME`, so the
    `pulumi stack select` the Automation API starts with is one engine start for nothing."""

    def __init__(self, name: str, workspace: auto.LocalWorkspace, backend_url: str) -> None:
        self.name = name
        self.workspace = workspace
        self.backend_url = backend_url

    def outputs(self) -> auto.OutputMap:
        """The outputs, read from a file backend's state when none is a secret (the SDK asks
        the engine twice after every up)."""
        deployment = statefile.read(self.backend_url, PROJECT, self.name)
        values = text.plain_outputs(deployment) if deployment and (
            deployment is not statefile.MISSING) else None
        if values is None:
            return super().outputs()
        return {k: auto.OutputValue(value=v, secret=False) for k, v in values.items()}

    def info(self, show_secrets: bool = True) -> auto.UpdateSummary | None:
        """The last update's summary, read from a file backend's history: the SDK asks the
        engine for it (one more engine start) after every up, refresh and destroy, and paude
        takes what it reports from the engine's events instead."""
        found = statefile.last_update(self.backend_url, PROJECT, self.name)
        try:
            if found is not None:
                return auto.UpdateSummary(
                    kind=found["kind"], message=found.get("message", ""),
                    start_time=datetime.fromtimestamp(found["startTime"], UTC),
                    end_time=(datetime.fromtimestamp(found["endTime"], UTC)
                              if found.get("endTime") is not None else None),
                    environment=found.get("environment") or {},
                    config=found.get("config") or {}, result=found["result"],
                    version=found.get("version"),
                    resource_changes=found.get("resourceChanges"))
        except (KeyError, TypeError, ValueError, OverflowError, OSError):
            pass
        return super().info(show_secrets)


def _workspace(program: Program | None, opts: auto.LocalWorkspaceOptions) -> auto.LocalWorkspace:
    # What the Automation API's create_stack and select_stack make (paude writes the
    # project file itself, see _write_project).
    return auto.LocalWorkspace(**{**vars(opts), "program": program or _noop})


def quiet_abandoned_programs() -> None:
    """Keep one teardown message of the SDK's off the user's terminal (once per process).

    When an engine run ends while its inline program still waits on it (an update the
    API server refused, say), the SDK's language host stops the program's event loop and
    leaves its main coroutine pending. Collected later, that coroutine's cleanup asks for
    the loop that is gone, and Python prints "Exception ignored in <coroutine object
    run_in_stack>" with a traceback after paude's own error. Nothing is lost: the engine
    already reported the failure. That one message goes to the debug log; every other
    unraisable exception is reported as before."""
    global _previous_hook
    if _previous_hook is not None:
        return
    _previous_hook = sys.unraisablehook
    sys.unraisablehook = _unraisable


_previous_hook: Callable[[Any], object] | None = None


def _unraisable(unraisable: Any) -> None:
    exc, where = unraisable.exc_value, repr(unraisable.object)
    if isinstance(exc, RuntimeError) and "no running event loop" in str(exc) \
            and "run_in_stack" in where:
        logging.getLogger(__name__).debug("an ended engine run's program: %s", exc)
        return
    assert _previous_hook is not None
    _previous_hook(unraisable)
