"""What a failed engine run means for the user: the paude error, with a hint they can act
on, for a busy stack, a missing one, a policy pack that could not start, a StatefulSet
stuck on a broken pod, and anything else the engine reported. Text in, errors out:
engine.py, which owns the Automation API, says which kind of failure it caught."""

from __future__ import annotations

from typing import Literal

from paude import engine_text as text
from paude.errors import EngineError, PaudeError, SessionBusyError, SessionNotFoundError

# busy: another process holds the stack's lock; missing: no such stack.
Kind = Literal["busy", "missing", "failed"]


def describe(kind: Kind, name: str, stderr: str, diagnostics: list[str]) -> PaudeError:
    """The error for session `name`'s failed engine run (its stderr and diagnostics)."""
    if kind == "busy":
        # The engine names each lock: "URL: created by USER@HOST (pid N) at TIME".
        held = text.LOCK_LINE.search(stderr)
        holder = f" (pid {held['pid']} on {held['host']})" if held else ""
        where = f"the lock file {held['url']}" if held else "the stale lock under the state backend"
        return SessionBusyError(
            f"session {name} is being changed by another paude or pulumi process{holder}",
            hint=f"wait for it to finish and retry; if no such process exists, run "
                 f"`pulumi cancel` on stack {name} or remove {where}")
    if kind == "missing":
        return SessionNotFoundError(f"session {name} has no stack",
                                    hint=f"run `paude apply {name}` first")
    # Several resources failing for one cause report it once each: say it once.
    briefs = dict.fromkeys(text.brief(d) for d in diagnostics if d)
    said = "\n".join(b for b in briefs if not b.startswith(text.ENGINE_NOISE)) or text.tail(stderr)
    pack = text.PACK_FAILURE.search(f"{said}\n{stderr}")
    if pack:
        return PaudeError(f"session {name}: the policy pack could not start: {pack.group(1)}",
                          hint="fix the custom rule or the organisation's policy file that "
                               "names it ($PAUDE_HOME/policy.yaml, default ~/.paude/policy.yaml), "
                               "then run the command again")
    stuck = text.STUCK_STATEFULSET.search(said)
    if stuck:
        return EngineError(
            f"the Pulumi engine failed for session {name}:\n{text.indent(said)}",
            hint=f"the agent pod {stuck['pod']} never became ready, and a StatefulSet does not "
                 f"replace such a pod with the new version by itself: once the cause is "
                 f"fixed, delete it (`kubectl -n {stuck['ns']} delete pod {stuck['pod']}`; "
                 f"the workspace is on its claim) and run the command again")
    return EngineError(f"the Pulumi engine failed for session {name}:\n{text.indent(said)}",
                       hint="fix the cause above and run the command again; "
                            "PAUDE_DEBUG=1 shows the full engine output")
