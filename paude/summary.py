"""Session-level statements about a plan, built from structured resource changes."""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

from paude import sizing
from paude.fields import YOLO_FLAG
from paude.policies.rules import egress_of
from paude.provenance import printable
from paude.results import DefinitionChange, DefinitionCommit, ResourceChange, SummaryItem

_IMAGES = {"base-image": "base image (your Dockerfile)", "agent-image": "agent image",
           "proxy-image": "proxy image"}


def summarize(changes: Sequence[ResourceChange], *, new_session: bool,
              definition: Sequence[DefinitionChange] = ()) -> tuple[SummaryItem, ...]:
    """What a reviewer needs first: security, data and rebuilds, then the rest."""
    by_name = {c.name: c for c in changes}
    items: list[SummaryItem] = definition_items(definition)
    if new_session:
        items.append(SummaryItem("new-session", f"new session: {len(changes)} resources to create"))
    # Podman records the allowlist on the proxy container; a cluster session carries the
    # squid configuration in the proxy's ConfigMap.
    proxy = by_name.get("proxy-config") or by_name.get("proxy")
    if proxy is not None and proxy.op in ("replace", "update") and not new_session:
        items.extend(_egress(proxy))
    if proxy is not None and any(e.startswith("*") for e in _allowlist(proxy.new_inputs)):
        items.append(SummaryItem(
            "egress-unrestricted",
            "egress is UNRESTRICTED (allowed_domains: all): the agent can send your code "
            "anywhere", security=True))
    agent = by_name.get("agent")
    if agent is not None and agent.op in ("replace", "update") and not new_session:
        items.extend(_agent_changes(agent))
    for name in ("agent", "proxy", "gateway"):
        change = by_name.get(name)
        if change is not None and change.op in ("create", "replace", "update"):
            items.extend(_limits(name, change, new_session))
        drifted = change.old_inputs.get("drift") if change is not None else None
        if change is not None and change.op != "same" and isinstance(drifted, list):
            items.append(SummaryItem(
                "drift", f"{name} container changed outside paude; apply recreates it as "
                "declared", security=True, details=tuple(str(d) for d in drifted[:_DETAILS])))
    items.extend(_gateway_items(by_name, new_session=new_session))
    workspace = by_name.get("workspace")
    if workspace is not None:
        items.append(_workspace(workspace))
    image = by_name.get("agent-image")
    if image is not None and new_session and image.new_inputs.get("files"):
        items.append(_agent_image(image.new_inputs))
    for name, label in _IMAGES.items():
        change = by_name.get(name)
        drifted = change.old_inputs.get("drift") if change is not None else None
        if change is not None and change.op != "same" and isinstance(drifted, list):
            # A pushed image whose registry lost it: pushed again, not rebuilt.
            items.append(SummaryItem(
                "drift", f"{label} changed outside paude; apply pushes it again",
                details=tuple(str(d) for d in drifted[:_DETAILS])))
            if set(change.replace_keys) <= {"drift"}:
                continue
        if change is not None and change.op in ("create", "replace") and not new_session:
            items.append(SummaryItem("image-rebuilt", f"{label} rebuilt",
                                     details=tuple(_file_diff(change))))
            if name == "agent-image" and change.op == "replace":
                items.extend(_claude_code_change(change))
    for name in ("agent", "proxy", "gateway"):
        change = by_name.get(name)
        if change is not None and change.op in ("replace", "create") and not new_session:
            why = ", ".join(change.replace_keys) or "missing"
            items.append(SummaryItem("container-recreated",
                                     f"{name} container recreated ({why})"))
    for name in ("internal-network", "egress-network"):
        change = by_name.get(name)
        if change is not None and change.op != "same" and not new_session:
            items.append(SummaryItem("network-changed", f"{name} will be {change.op}d",
                                     security=True))
    order = {True: 0, False: 1}
    return tuple(sorted(items, key=lambda i: (order[i.data_loss], order[i.security])))


def definition_items(definition: Sequence[DefinitionChange]) -> list[SummaryItem]:
    """The definition's files that changed since the last apply; loudly when the change came
    in commits from a session (the agent edited its own sandbox)."""
    items = []
    arrived = [c for c in definition if c.from_session]
    if arrived:
        named = [f"{_name(c.file)} ({_commit(c.commits[0])})" for c in arrived[:3]]
        more = f"; and {len(arrived) - 3} more files" if len(arrived) > 3 else ""
        details = [f"{_name(c.file)}: {_commit(x, author=True)}"
                   for c in arrived for x in c.commits]
        if len(details) > _DETAILS:
            details = [*details[:_DETAILS - 1], f"... and {len(details) - _DETAILS + 1} more"]
        items.append(SummaryItem("definition-changed-by-session",
                                 f"definition changed by session commits: {'; '.join(named)}"
                                 f"{more}", security=True, details=tuple(details)))
    local = [c for c in definition if not c.from_session]
    if local:
        more = f" and {len(local) - 5} more" if len(local) > 5 else ""
        items.append(SummaryItem(
            "definition-changed", "definition changed since the last apply: "
            + ", ".join(f"{_name(c.file)} ({c.change})" for c in local[:5]) + more))
    return items


_DETAILS = 20  # detail lines per item


def _name(path: str) -> str:
    # File names come from the repository, where the agent names them.
    return printable(path, 120)


def _commit(commit: DefinitionCommit, *, author: bool = False) -> str:
    by = f" by {commit.author}" if author else ""
    return f"{commit.short} '{commit.subject}'{by}, from {commit.source}"


def _egress(proxy: ResourceChange) -> list[SummaryItem]:
    old = set(_allowlist(proxy.old_inputs))
    new = set(_allowlist(proxy.new_inputs))
    # An entry only widens egress if the old list did not already allow it (a .suffix
    # covers its names, `*` covers everything, a plain name covers its host's rules), and
    # only narrows it likewise. A deny entry works the other way round.
    added = sorted(e for e in new - old if not _is_deny(e) and not _covered(e, old))
    removed = sorted(e for e in old - new if not _is_deny(e) and not _covered(e, new))
    # A deny dropped with its host (nothing there reachable any more) widens nothing.
    widened = [f"+ {d}" for d in added] + [
        f"- {d}" for d in sorted(old - new)
        if _is_deny(d) and any(e.partition(" ")[0] == d.split()[1] for e in new)]
    narrowed = [f"- {d}" for d in removed] + [f"+ {d}" for d in sorted(new - old) if _is_deny(d)]
    items = []
    if widened:
        items.append(SummaryItem("egress-widened", "egress widened", security=True,
                                 details=tuple(widened)))
    if narrowed:
        items.append(SummaryItem("egress-narrowed", "egress narrowed", security=True,
                                 details=tuple(narrowed)))
    return items


def _is_deny(entry: str) -> bool:
    return entry.startswith("deny ")


def _covered(entry: str, entries: set[str]) -> bool:
    if any(e.startswith("*") for e in entries):
        return True
    if entry.startswith(("*", "~")):
        return False
    # Entries are 'host' (a tunnel: every request) or 'host METHODS PATHS' (a rule).
    host, _, rule = entry.partition(" ")
    plain = {e for e in entries if " " not in e}
    if rule and host in plain:
        return True
    name = host.lstrip(".")
    return any(s.startswith(".") and (name.endswith(s) or name == s[1:]) and s != entry
               for s in plain)


def _agent_changes(agent: ResourceChange) -> list[SummaryItem]:
    """yolo toggled, and credentials that enter or leave the agent container."""
    items = []
    old_yolo, new_yolo = _yolo(agent.old_inputs), _yolo(agent.new_inputs)
    if old_yolo is not None and new_yolo is not None and old_yolo != new_yolo:
        state = "ON: claude runs without permission prompts" if new_yolo else "off"
        items.append(SummaryItem("yolo-toggled", f"yolo turned {state}", security=True))
    old_mounts, new_mounts = _mounts(agent.old_inputs), _mounts(agent.new_inputs)
    if old_mounts is not None and new_mounts is not None:
        added, removed = sorted(new_mounts - old_mounts), sorted(old_mounts - new_mounts)
        if added:
            items.append(SummaryItem("credentials-added", "credentials added to the agent",
                                     security=True, details=tuple(f"+ {m}" for m in added)))
        if removed:
            items.append(SummaryItem("credentials-removed",
                                     "credentials removed from the agent", security=True,
                                     details=tuple(f"- {m}" for m in removed)))
    return items


def _gateway_items(by_name: dict[str, ResourceChange], *, new_session: bool
                   ) -> list[SummaryItem]:
    """Model credentials rotated (the gateway alone is recreated), and what of ~/.claude a
    new agent container is seeded with."""
    items = []
    gateway, agent = by_name.get("gateway"), by_name.get("agent")
    if (gateway is not None and not new_session and gateway.op in ("replace", "update")
            and "secret_env" in gateway.replace_keys):
        kept = agent is None or agent.op == "same"
        items.append(SummaryItem(
            "credentials-rotated", "credentials rotated: the model gateway is recreated"
            + ("; the agent container is kept" if kept else ""), security=True,
            details=tuple(str(s) for s in gateway.new_inputs.get("credential_sources") or [])))
    if gateway is not None and gateway.op in ("create", "replace"):
        routes = [str(r).removeprefix("model gateway: ")
                  for r in gateway.new_inputs.get("routes") or []]
        sources = [str(s) for s in gateway.new_inputs.get("credential_sources") or []]
        items.append(SummaryItem(
            "model-gateway", "model gateway routes: " + (", ".join(routes) or "none")
            + (f" (credentials from {', '.join(sources)})" if sources else
               " (no model credential)")))
    if gateway is not None and gateway.op != "delete":
        items.extend(_github_writes(gateway))
    copied = agent.new_inputs.get("copied") if agent is not None else None
    if agent is not None and agent.op in ("create", "replace") and isinstance(copied, list) \
            and copied:
        items.append(SummaryItem("claude-state-copied", "copied into the agent: "
                                 + ", ".join(str(c) for c in copied)))
    return items


def _github_writes(gateway: ResourceChange) -> list[SummaryItem]:
    """Repositories a push through the gateway may write with the user's GitHub token."""
    old = {str(r) for r in gateway.old_inputs.get("github_writes") or []}
    new = {str(r) for r in gateway.new_inputs.get("github_writes") or []}
    items = []
    if new - old:
        items.append(SummaryItem(
            "github-writes-widened", "pushes with your GitHub token allowed to: "
            + ", ".join(sorted(new - old)), security=True))
    if old - new:
        items.append(SummaryItem(
            "github-writes-narrowed", "pushes with your GitHub token no longer allowed to: "
            + ", ".join(sorted(old - new))))
    return items


def _limits(name: str, change: ResourceChange, new_session: bool) -> list[SummaryItem]:
    """Resource limits: what a new container gets, and any limit raised or removed."""
    new = sizing.limits_in(change.new_inputs)
    if new is None:
        return []
    shown = sizing.Limits.from_props(new).describe()
    old = None if new_session or change.op == "create" else sizing.limits_in(change.old_inputs)
    unlimited = [k for k, v in new.items() if v is None]
    if old is None:
        text = f"{name} limits: {shown}"
        if unlimited and name == "agent":
            return [SummaryItem("limits-removed", f"{text} (no {' or '.join(unlimited)} limit: "
                                "a runaway agent can exhaust this machine)", security=True)]
        return [SummaryItem("limits-set", text)] if not new_session or name == "agent" else []
    raised, lowered = sizing.changes(old, new)
    items = []
    if raised:
        items.append(SummaryItem("limits-raised", f"{name} limits raised", security=True,
                                 details=tuple(raised)))
    if lowered:
        items.append(SummaryItem("limits-lowered", f"{name} limits lowered",
                                 details=tuple(lowered)))
    return items


def _container(inputs: dict[str, Any]) -> dict[str, Any] | None:
    """A StatefulSet's agent container (a cluster session), else None."""
    try:
        return dict(inputs["spec"]["template"]["spec"]["containers"][0])
    except (KeyError, IndexError, TypeError):
        return None


def _yolo(inputs: dict[str, Any]) -> bool | None:
    env = inputs.get("env")
    container = _container(inputs)
    if container is not None:
        env = {e.get("name"): e.get("value", "") for e in container.get("env") or []}
    if not isinstance(env, dict):
        return None
    commands = " ".join(str(env.get(k, "")) for k in ("PAUDE_AGENT_CMD", "PAUDE_AGENT_ONCE_CMD"))
    return YOLO_FLAG in commands


def _mounts(inputs: dict[str, Any]) -> set[str] | None:
    # Read-only binds are the user's credentials; the workspace volume is not one.
    container = _container(inputs)
    if container is not None:
        return {str(m.get("mountPath")) for m in container.get("volumeMounts") or []
                if m.get("readOnly")}
    volumes = inputs.get("volumes")
    if not isinstance(volumes, list):
        return None
    return {str(v).split(":")[1] for v in volumes if str(v).endswith(":ro")}


def _allowlist(inputs: dict[str, Any]) -> list[str]:
    value = inputs.get("allowlist")
    if isinstance(value, list):
        return [str(v) for v in value]
    conf = (inputs.get("data") or {}).get("squid.conf") if isinstance(inputs.get("data"),
                                                                       dict) else None
    if not isinstance(conf, str):
        return []
    egress = egress_of(conf)
    if egress.unrestricted:
        return ["* (all domains: unrestricted)"]
    return sorted(egress.names) + sorted(f"~{p}" for p in egress.patterns)


def _workspace(change: ResourceChange) -> SummaryItem:
    if change.op == "create":
        # A podman local volume has no quota on overlay/ext4: the plan says so where the
        # session is created, as a cluster claim's size is its limit.
        unlimited = "; no size limit: podman volumes have none" if change.type.startswith(
            "podman:") else ""
        return SummaryItem("workspace-created",
                           "workspace volume created (a volume kept by an earlier destroy is "
                           f"re-attached{unlimited})")
    if change.op in ("replace", "delete") and not change.retained:
        return SummaryItem("workspace-replaced",
                           f"workspace volume will be {change.op}d: its data is LOST",
                           security=True, data_loss=True)
    if change.op in ("replace", "delete"):
        return SummaryItem("workspace-detached",
                           f"workspace volume leaves the stack ({change.op}) but is kept on disk")
    return SummaryItem("workspace-kept", "workspace volume kept")


# How a rendered agent Containerfile names the Claude Code release it installs; states
# written before the release was recorded beside the build are read this way.
_CLAUDE_RELEASE = re.compile(r"claude-code@([0-9][0-9A-Za-z.\-]*)|install\.sh \| bash"
                             r"(?: -s ([0-9][0-9A-Za-z.\-]*))?")


def _claude_code(inputs: dict[str, Any]) -> str | None:
    recorded = inputs.get("claude_code")
    if isinstance(recorded, str):
        return recorded
    files = inputs.get("files")
    text = str(files.get("Containerfile", "")) if isinstance(files, dict) else ""
    found = _CLAUDE_RELEASE.search(text)
    if found is None:
        return None
    return found.group(1) or found.group(2) or "latest (unpinned)"


def _agent_image(inputs: dict[str, Any]) -> SummaryItem:
    """What a new session's agent image is made of: the settings of this machine (or of
    paude.yaml) that shape it, said once."""
    found = inputs.get("files")
    files: dict[str, Any] = found if isinstance(found, dict) else {}
    text = str(files.get("Containerfile", ""))
    bases = inputs.get("base_images") or []
    how = "npm" if "npm install" in text else "native installer" if "install.sh" in text else ""
    release = _claude_code(inputs)
    parts = [f"on {bases[0]}" if bases else "from your Dockerfile"]
    parts.append(f"Claude Code {release} ({how})" if release else "no Claude Code installed")
    cas = len([name for name in files if str(name).startswith("ca/")])
    if cas:
        parts.append(f"{cas} extra CA certificate{'s' if cas > 1 else ''} trusted")
    return SummaryItem("agent-image", "agent image " + ", ".join(parts))


def _claude_code_change(change: ResourceChange) -> list[SummaryItem]:
    """The agent's own upgrade, said plainly: the workspace and Claude's history stay."""
    old, new = _claude_code(change.old_inputs), _claude_code(change.new_inputs)
    if old == new:
        return []
    return [SummaryItem("agent-version",
                        f"Claude Code {old or 'not installed'} \u2192 {new or 'not installed'}")]


def _file_diff(change: ResourceChange) -> list[str]:
    # Say why an image is rebuilt: the changed lines of its rendered build files.
    old = change.old_inputs.get("files") or {}
    new = change.new_inputs.get("files") or {}
    lines: list[str] = []
    for name in sorted(set(old) | set(new)):
        a = str(old.get(name, "")).splitlines()
        b = str(new.get(name, "")).splitlines()
        if a == b:
            continue
        if name.startswith("ca/"):
            # A certificate's base64 says nothing to a reviewer; that trust changed does.
            what = "added" if not a else "removed" if not b else "changed"
            lines.append(f"{name}: CA certificate {what} (image.ca_certificates)")
            continue
        for line in difflib.unified_diff(a, b, lineterm="", n=0):
            if line.startswith(("+++", "---", "@@")):
                continue
            lines.append(f"{name}: {line.strip()}")
    base = change.old_inputs.get("base_changed")
    if base:
        lines.append(f"base image {base} changed since this image was built "
                     "(rebuilt or updated on this machine)")
    platforms = [change.old_inputs.get("platform"), change.new_inputs.get("platform")]
    if platforms[0] != platforms[1]:
        lines.append(f"platform: {platforms[0] or 'the host'} \u2192 {platforms[1] or 'the host'}"
                     " (image.platform)")
    if not lines and change.old_inputs.get("tag") != change.new_inputs.get("tag"):
        lines.append("build context changed (a file the Dockerfile copies, or a build arg)")
    return lines[:20]
