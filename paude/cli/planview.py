"""Renders plans as text, JSON and markdown. Pure functions: golden-tested."""

from __future__ import annotations

import json
import re
from typing import Any

from paude.results import OP_ORDER, ApplyResult, PlanResult, PolicyFinding, ResourceChange

PLAN_JSON_VERSION = 1
_SYMBOL = {"create": "+", "replace": "-/+", "update": "~", "delete": "-", "same": "="}


def _counts_line(counts: dict[str, int]) -> str:
    parts = [f"{counts[op]} to {op}" for op in OP_ORDER if op != "same" and counts.get(op)]
    unchanged = counts.get("same", 0)
    if not parts:
        return f"No changes. {unchanged} resources unchanged."
    return "Plan: " + ", ".join(parts) + f", {unchanged} unchanged."


def _change_line(change: ResourceChange) -> str:
    note = ""
    if change.op in ("replace", "update") and (change.replace_keys or change.diff_keys):
        note = "  (" + ", ".join(change.replace_keys or change.diff_keys) + ")"
    if change.retained:
        note += "  [kept on disk]"
    symbol = _SYMBOL.get(change.op, "?")
    return f"  {symbol:>3} {change.op:<8} {change.name:<18} {change.type}{note}"


def _ordered(changes: tuple[ResourceChange, ...]) -> list[ResourceChange]:
    rank = {op: i for i, op in enumerate(OP_ORDER)}
    return sorted(changes, key=lambda c: (rank.get(c.op, 9), c.name))


def _finding_where(finding: PolicyFinding) -> str:
    return finding.resource or "session"


def _new(finding: PolicyFinding) -> str:
    return " (new: not at the base)" if finding.new else ""


def policy_lines(findings: tuple[PolicyFinding, ...]) -> list[str]:
    """The policy section of a text plan: blocking findings first, each with its fix."""
    if not findings:
        return ["Policies: all rules passed."]
    lines = ["Policies:"]
    for f in sorted(findings, key=lambda f: (not f.blocking, f.rule, f.resource)):
        mark = "BLOCKED" if f.blocking else "advisory"
        lines.append(f"  {mark:<8} [{f.rule}] {_finding_where(f)}: {f.message}{_new(f)}")
        if f.fix:
            lines.append(f"           fix: {f.fix}")
    return lines


def plan_text(plan: PlanResult) -> str:
    """The terminal form: session summary first, then the resource diff."""
    head = f"Session {plan.session} ({plan.backend})"
    head += f" against {plan.base.label}" if plan.base is not None else ""
    head += ": new session" if plan.new_session else ""
    head += ": removed from paude.yaml" if plan.removed_session else ""
    lines = [head]
    for item in plan.summary:
        mark = "!!" if item.data_loss else "! " if item.security else "* "
        lines.append(f"  {mark} {item.text}")
        lines.extend(f"       {d}" for d in item.details)
    for warning in plan.warnings:
        lines.append(f"  warning: {warning}")
    lines.append("")
    lines.append("Resources:")
    lines.extend(_change_line(c) for c in _ordered(plan.changes))
    lines.append("")
    lines.append(_counts_line(plan.counts()))
    lines.extend(policy_lines(plan.policy))
    return "\n".join(lines) + "\n"


def plan_json(plan: PlanResult) -> dict[str, Any]:
    """The versioned JSON form documented in docs/plan-json.md."""
    out: dict[str, Any] = {
        "version": PLAN_JSON_VERSION,
        "session": plan.session,
        "backend": plan.backend,
        "new_session": plan.new_session,
        "has_changes": plan.has_changes,
        "summary": [item.to_json() for item in plan.summary],
        "counts": plan.counts(),
        "resources": [c.to_json() for c in _ordered(plan.changes)],
        "warnings": list(plan.warnings),
        "policy": {"passed": not plan.blocked,
                   "findings": [f.to_json() for f in plan.policy]},
        "definition_changes": [c.to_json() for c in plan.definition_changes],
    }
    if plan.base is not None:
        out.update(base=plan.base.to_json(), removed_session=plan.removed_session)
    return out


def plan_json_text(plan: PlanResult) -> str:
    """plan_json serialised with a stable key order."""
    return json.dumps(plan_json(plan), indent=2, sort_keys=True) + "\n"


def plan_markdown(plan: PlanResult) -> str:
    """A pull-request comment: summary line, security items first, details collapsible."""
    status = "BLOCKED by policy" if plan.blocked else "changes" if plan.has_changes \
        else "no changes"
    if plan.removed_session:
        status = "removed"
    lines = [f"### paude plan: `{plan.session}` ({plan.backend}) - {status}", ""]
    for item in plan.summary:
        prefix = "**data loss:** " if item.data_loss else "**security:** " if item.security else ""
        lines.append(f"- {prefix}{_inline(item.text)}")
        lines.extend(f"  - {_code(d)}" for d in item.details)
    lines.extend(f"- warning: {w}" for w in plan.warnings)
    lines += ["", f"{_counts_line(plan.counts())}", ""]
    if plan.policy:
        lines += ["| policy | rule | resource | finding | fix |", "|---|---|---|---|---|"]
        for f in sorted(plan.policy, key=lambda f: (not f.blocking, f.rule, f.resource)):
            level = "**mandatory**" if f.blocking else "advisory"
            level += " (new)" if f.new else ""
            lines.append(f"| {level} | `{f.rule}` | {_finding_where(f)} | {_inline(f.message)} | "
                         f"{_cell(f.fix)} |")
    else:
        lines.append("Policies: all rules passed.")
    lines += ["", "<details><summary>Resources</summary>",
              "", "| action | resource | type | because |", "|---|---|---|---|"]
    for c in _ordered(plan.changes):
        because = ", ".join(c.replace_keys or c.diff_keys)
        lines.append(f"| {c.op} | {c.name} | {c.type} | {because} |")
    lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


_MARKUP = re.compile(r"([\\`*\[\]<>|])")


def _inline(text: str) -> str:
    """Plain text in a PR comment: file names and commit subjects (the agent's) must not
    become links, images or markup."""
    return _MARKUP.sub(r"\\\1", text.replace("\n", " "))


def _code(text: str) -> str:
    """A code span that holds any text: its fence is longer than any backtick run inside."""
    text = text.replace("\n", " ")
    fence = "`" * (max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _policy_cell(plan: PlanResult) -> str:
    blocking = sorted({f.rule for f in plan.policy if f.blocking})
    if blocking:
        newly = "newly " if any(f.new for f in plan.policy if f.blocking) else ""
        return f"**{newly}blocked**: " + ", ".join(f"`{r}`" for r in blocking)
    advisory = len(plan.policy)
    return f"{advisory} advisory" if advisory else "passed"


def apply_text(result: ApplyResult) -> str:
    """What an apply did, and where to go next."""
    counts = result.counts()
    done = [f"{counts[op]} {op}d" for op in ("create", "replace", "update", "delete")
            if counts.get(op)]
    line = ", ".join(done) if done else "no changes"
    lines = [f"Session {result.session} applied in {result.seconds:.1f}s: {line}."]
    outs = result.outputs
    if outs.get("agent_container"):
        lines.append(f"  agent:     {outs['agent_container']}")
        lines.append(f"  proxy:     {outs.get('proxy_container', '')}")
        lines.append(f"  workspace: {outs.get('workspace_volume', '')}")
        lines.append(f"  git remote: {outs.get('git_remote_name', '')} -> "
                     f"{outs.get('git_remote_url', '')}")
    return "\n".join(lines) + "\n"


COMMENT_LIMIT = 65_000  # GitHub refuses comments over 65,536 characters
SPLIT_MARKER = "<!-- paude-plan: next comment -->"


def plans_markdown(plans: list[PlanResult], *, limit: int = COMMENT_LIMIT) -> list[str]:
    """One PR comment for many sessions (more when it would be too long): a table of
    summary lines, sessions with security-relevant or data-losing changes first, then
    each session's details."""
    def risk(plan: PlanResult) -> tuple[int, str]:
        data = any(i.data_loss for i in plan.summary)
        security = any(i.security for i in plan.summary)
        order = 0 if plan.blocked else 1 if data else 2 if security else \
            3 if plan.has_changes else 4
        return (order, plan.session)

    ordered = sorted(plans, key=risk)
    head = ["## paude plan", ""]
    base = next((p.base for p in plans if p.base is not None), None)
    if base is not None:
        head += [f"Against the definitions at base `{base.ref}` ({base.commit[:8]}): what "
                 "was approved, not what is running.", ""]
    head += ["| session | backend | changes | security | policy |", "|---|---|---|---|---|"]
    for plan in ordered:
        counts = plan.counts()
        changed = ", ".join(f"{counts[op]} {op}" for op in OP_ORDER
                            if op != "same" and counts.get(op)) or "none"
        changed = "session removed" if plan.removed_session else changed
        flagged = [_inline(i.text) for i in plan.summary if i.security or i.data_loss]
        head.append(f"| `{plan.session}` | {plan.backend} | {changed} | "
                    f"{'; '.join(flagged) or '-'} | {_policy_cell(plan)} |")
    sections = ["\n".join(head) + "\n"] + [plan_markdown(p) for p in ordered]
    parts: list[str] = []
    current = ""
    for section in sections:
        while len(section) > limit:  # one session alone too long: cut it
            if current:
                parts.append(current)
                current = ""
            parts.append(section[:limit])
            section = section[limit:]
        if current and len(current) + len(section) + 1 > limit:
            parts.append(current)
            current = ""
        current = f"{current}\n{section}" if current else section
    if current:
        parts.append(current)
    return parts


def plans_json(plans: list[PlanResult]) -> dict[str, Any]:
    """The JSON form of `plan --all`: version and one plan per session."""
    return {"version": PLAN_JSON_VERSION, "plans": [plan_json(p) for p in plans]}
