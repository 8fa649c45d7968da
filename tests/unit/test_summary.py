"""paude.summary.summarize: session-level statements from resource changes."""

from __future__ import annotations

from typing import Any

import pytest

from paude.domains import expand
from paude.egress import RequestRule
from paude.results import ResourceChange, SummaryItem
from paude.summary import summarize

NAMES = ("agent", "agent-image", "egress-network", "internal-network", "proxy", "proxy-image",
         "workspace")
TYPES = {"agent": "podman:Container", "proxy": "podman:Container", "gateway": "podman:Container",
         "agent-image": "podman:Image", "proxy-image": "podman:Image",
         "internal-network": "podman:Network", "egress-network": "podman:Network",
         "workspace": "podman:Volume"}


def change(name: str, op: str = "same", **kw: Any) -> ResourceChange:
    return ResourceChange(name, TYPES[name], op, **kw)


def stack(**ops: ResourceChange) -> list[ResourceChange]:
    """Seven resources, all unchanged unless given."""
    return [ops.get(n.replace("-", "_"), change(n)) for n in NAMES]


def kinds(items: tuple[SummaryItem, ...]) -> list[str]:
    return [i.kind for i in items]


def proxy_allowlist(old: list[Any], new: list[Any]) -> ResourceChange:
    def entries(items: list[Any]) -> list[Any]:
        return [RequestRule.model_validate(i) if isinstance(i, dict) else i for i in items]

    return change("proxy", "replace", diff_keys=("allowlist", "env"), replace_keys=("env",),
                  old_inputs={"allowlist": expand(entries(old)).describe()},
                  new_inputs={"allowlist": expand(entries(new)).describe()})


# ---------------------------------------------------------------- each kind


def test_new_session() -> None:
    items = summarize([change(n, "create") for n in NAMES], new_session=True)
    assert items == (
        SummaryItem("new-session", "new session: 7 resources to create"),
        SummaryItem("workspace-created", "workspace volume created (a volume kept by an "
                                         "earlier destroy is re-attached; no size limit: "
                                         "podman volumes have none)"),
    )


def test_no_changes_keeps_the_workspace() -> None:
    assert summarize(stack(), new_session=False) == (
        SummaryItem("workspace-kept", "workspace volume kept"),)


def test_egress_widened() -> None:
    items = summarize(stack(proxy=proxy_allowlist(["default"], ["default", ".example.com"])),
                      new_session=False)
    assert items[0] == SummaryItem("egress-widened", "egress widened", security=True,
                                   details=("+ .example.com",))
    assert "egress-narrowed" not in kinds(items)
    assert SummaryItem("container-recreated", "proxy container recreated (env)") in items


def test_egress_narrowed() -> None:
    items = summarize(stack(proxy=proxy_allowlist(["default", "github"], ["default"])),
                      new_session=False)
    narrowed = [i for i in items if i.kind == "egress-narrowed"]
    assert narrowed == [SummaryItem(
        "egress-narrowed", "egress narrowed", security=True,
        details=("- .githubusercontent.com GET,HEAD any-path",
                 "- api.github.com GET,HEAD any-path", "- codeload.github.com GET,HEAD any-path",
                 "- github.com GET,HEAD any-path",
                 "- github.com POST ~^/[^/]+/[^/]+/git-upload-pack$"))]
    # The group's deny goes with its host: nothing there is reachable any more.
    assert "egress-widened" not in kinds(items)


def test_method_and_path_changes_are_widening_or_narrowing() -> None:
    read_only = ["default", {"host": "api.example.com", "methods": ["GET"]}]
    writes = ["default", {"host": "api.example.com", "methods": ["GET", "POST"]}]
    items = summarize(stack(proxy=proxy_allowlist(read_only, writes)), new_session=False)
    [widened] = [i for i in items if i.kind == "egress-widened"]
    assert widened.details == ("+ api.example.com GET,POST any-path",)
    # A tunnel becoming a rule narrows only.
    tunnels = ["default", "github.com", "api.github.com", "codeload.github.com",
               ".githubusercontent.com"]
    items = summarize(stack(proxy=proxy_allowlist(tunnels, ["default", "github"])),
                      new_session=False)
    assert "egress-widened" not in kinds(items)
    assert "egress-narrowed" in kinds(items)


def test_proxy_replaced_for_another_reason_says_nothing_about_egress() -> None:
    proxy = change("proxy", "replace", replace_keys=("image",),
                   old_inputs={"allowlist": ["pypi.org"]}, new_inputs={"allowlist": ["pypi.org"]})
    items = summarize(stack(proxy=proxy), new_session=False)
    assert not {"egress-widened", "egress-narrowed"} & set(kinds(items))
    assert SummaryItem("container-recreated", "proxy container recreated (image)") in items


@pytest.mark.parametrize(("old", "new", "direction"), [
    (["default"], ["all"], "egress-widened"),
    (["all"], ["default"], "egress-narrowed"),
    (["api.example.com"], [".example.com"], "egress-widened"),
])
def test_egress_change_has_one_direction(old: list[str], new: list[str], direction: str) -> None:
    items = summarize(stack(proxy=proxy_allowlist(old, new)), new_session=False)
    direction_kinds = ("egress-widened", "egress-narrowed")
    assert [k for k in kinds(items) if k in direction_kinds] == [direction]


def test_workspace_replaced_loses_data() -> None:
    ws = change("workspace", "replace", replace_keys=("name",))
    items = summarize(stack(workspace=ws), new_session=False)
    assert items[0] == SummaryItem("workspace-replaced",
                                   "workspace volume will be replaced: its data is LOST",
                                   security=True, data_loss=True)


def test_workspace_deleted_loses_data() -> None:
    items = summarize(stack(workspace=change("workspace", "delete")), new_session=False)
    assert items[0].kind == "workspace-replaced"
    assert items[0].text == "workspace volume will be deleted: its data is LOST"
    assert items[0].data_loss


def test_retained_workspace_is_detached_not_lost() -> None:
    ws = change("workspace", "replace", replace_keys=("name",), retained=True)
    items = summarize(stack(workspace=ws), new_session=False)
    assert items == (SummaryItem(
        "workspace-detached", "workspace volume leaves the stack (replace) but is kept on disk"),)


def test_workspace_recreated_after_removal() -> None:
    items = summarize(stack(workspace=change("workspace", "create")), new_session=False)
    assert kinds(items) == ["workspace-created"]


def test_image_rebuilt_lists_changed_lines() -> None:
    image = change("agent-image", "replace", replace_keys=("tag",),
                   old_inputs={"files": {"Containerfile": "FROM a\nRUN x\n", "e.sh": "same\n"}},
                   new_inputs={"files": {"Containerfile": "FROM a\nRUN y\n", "e.sh": "same\n"}})
    items = summarize(stack(agent_image=image), new_session=False)
    assert SummaryItem("image-rebuilt", "agent image rebuilt",
                       details=("Containerfile: -RUN x", "Containerfile: +RUN y")) in items


def test_image_rebuilt_on_a_changed_base_says_so() -> None:
    files = {"Containerfile": "FROM localhost/paude-base:bookworm\n"}
    image = change("proxy-image", "replace", replace_keys=("base_changed",),
                   old_inputs={"files": files, "base_changed": "localhost/paude-base:bookworm"},
                   new_inputs={"files": files})
    items = summarize(stack(proxy_image=image), new_session=False)
    assert SummaryItem("image-rebuilt", "proxy image rebuilt", details=(
        "base image localhost/paude-base:bookworm changed since this image was built "
        "(rebuilt or updated on this machine)",)) in items


def test_image_rebuilt_details_are_capped() -> None:
    old = "\n".join(f"old {i}" for i in range(30))
    new = "\n".join(f"new {i}" for i in range(30))
    image = change("proxy-image", "replace", old_inputs={"files": {"Containerfile": old}},
                   new_inputs={"files": {"Containerfile": new}})
    (item,) = [i for i in summarize(stack(proxy_image=image), new_session=False)
               if i.kind == "image-rebuilt"]
    assert item.text == "proxy image rebuilt"
    assert len(item.details) == 20


def test_missing_image_is_rebuilt_without_details() -> None:
    items = summarize(stack(agent_image=change("agent-image", "create")), new_session=False)
    assert SummaryItem("image-rebuilt", "agent image rebuilt") in items


def test_missing_container_is_recreated() -> None:
    items = summarize(stack(agent=change("agent", "create")), new_session=False)
    assert SummaryItem("container-recreated", "agent container recreated (missing)") in items


@pytest.mark.parametrize("op", ["replace", "delete", "create"])
def test_network_changes_are_security_relevant(op: str) -> None:
    net = change("internal-network", op, replace_keys=("dns",))
    items = summarize(stack(internal_network=net), new_session=False)
    assert SummaryItem("network-changed", f"internal-network will be {op}d",
                       security=True) in items


def test_new_session_suppresses_rebuild_and_recreate_items() -> None:
    items = summarize([change(n, "create") for n in NAMES], new_session=True)
    assert not {"image-rebuilt", "container-recreated", "network-changed",
                "egress-widened"} & set(kinds(items))


# ---------------------------------------------------------------- ordering


def test_data_loss_first_then_security_then_the_rest() -> None:
    changes = [
        change("agent-image", "replace", replace_keys=("tag",)),
        change("agent", "replace", replace_keys=("image",)),
        proxy_allowlist(["default"], ["default", ".example.com"]),
        change("internal-network", "replace", replace_keys=("dns",)),
        change("workspace", "replace", replace_keys=("name",)),
        change("egress-network"), change("proxy-image"),
    ]
    items = summarize(changes, new_session=False)
    assert kinds(items) == [
        "workspace-replaced",
        "egress-widened", "network-changed",
        "image-rebuilt", "container-recreated", "container-recreated",
    ]
    flags = [(i.data_loss, i.security) for i in items]
    assert flags == sorted(flags, reverse=True)


# ---------------------------------------------------------------- the user's Dockerfile


def test_base_image_rebuild_is_named_after_the_dockerfile() -> None:
    base = ResourceChange("base-image", "podman:Image", "replace", replace_keys=("tag",),
                          old_inputs={"tag": "localhost/paude-userbase:1", "files": {"D": "x"}},
                          new_inputs={"tag": "localhost/paude-userbase:2", "files": {"D": "x"}})
    items = summarize([*stack(), base], new_session=False)
    assert SummaryItem("image-rebuilt", "base image (your Dockerfile) rebuilt", details=(
        "build context changed (a file the Dockerfile copies, or a build arg)",)) in items


def test_base_image_rebuild_lists_dockerfile_lines() -> None:
    base = ResourceChange("base-image", "podman:Image", "replace", replace_keys=("tag",),
                          old_inputs={"tag": "a", "files": {"Dockerfile": "FROM x:1\n"}},
                          new_inputs={"tag": "b", "files": {"Dockerfile": "FROM x:2\n"}})
    (item,) = [i for i in summarize([*stack(), base], new_session=False)
               if i.kind == "image-rebuilt"]
    assert item.details == ("Dockerfile: -FROM x:1", "Dockerfile: +FROM x:2")


def test_unrestricted_egress_is_said_on_every_plan() -> None:
    same = ResourceChange("proxy", "podman:Container", "same",
                          new_inputs={"allowlist": expand(["all"]).describe()})
    items = summarize(stack(proxy=same), new_session=False)
    unrestricted = [i for i in items if i.kind == "egress-unrestricted"]
    assert len(unrestricted) == 1 and unrestricted[0].security
    assert "UNRESTRICTED" in unrestricted[0].text
    restricted = ResourceChange("proxy", "podman:Container", "same",
                                new_inputs={"allowlist": expand(["default"]).describe()})
    assert "egress-unrestricted" not in kinds(summarize(stack(proxy=restricted),
                                                        new_session=False))


# ---------------------------------------------------------------- cluster sessions


def _squid(entries: list[str]) -> str:
    from paude.models import PaudeFile, resolve
    from paude.stacks.podman.program import squid_conf

    session = resolve(PaudeFile.model_validate(
        {"sessions": {"demo": {"allowed_domains": entries}}}), "demo")
    return squid_conf(session)


def _statefulset(cmd: str, mounts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": {"containers": [{
        "name": "agent", "env": [{"name": "PAUDE_AGENT_CMD", "value": cmd}],
        "volumeMounts": [{"name": "workspace", "mountPath": "/paude"}, *mounts]}]}}}}


def test_cluster_egress_is_read_from_the_proxy_configmap() -> None:
    config = ResourceChange("proxy-config", "kubernetes:core/v1:ConfigMap", "update",
                            diff_keys=("data",),
                            old_inputs={"data": {"squid.conf": _squid(["pypi"])}},
                            new_inputs={"data": {"squid.conf": _squid(["pypi", "github"])}})
    items = {i.kind: i for i in summarize([config], new_session=False)}
    widened = items["egress-widened"]
    assert widened.security and "+ github.com" in widened.details
    assert "+ pypi.org" not in widened.details
    unrestricted = ResourceChange("proxy-config", "kubernetes:core/v1:ConfigMap", "update",
                                  old_inputs=config.old_inputs,
                                  new_inputs={"data": {"squid.conf": _squid(["all"])}})
    kinds = {i.kind for i in summarize([unrestricted], new_session=False)}
    assert {"egress-widened", "egress-unrestricted"} <= kinds


def test_cluster_yolo_and_credentials_are_read_from_the_statefulset() -> None:
    adc = {"name": "credentials", "mountPath": "/home/paude/adc.json", "readOnly": True}
    agent = ResourceChange("agent", "kubernetes:apps/v1:StatefulSet", "update",
                           old_inputs=_statefulset("claude", []),
                           new_inputs=_statefulset("claude --dangerously-skip-permissions",
                                                   [adc]))
    items = {i.kind: i for i in summarize([agent], new_session=False)}
    assert items["yolo-toggled"].text.startswith("yolo turned ON")
    assert items["credentials-added"].details == ("+ /home/paude/adc.json",)


# ---------------------------------------------------------------- the model gateway


def test_a_rotated_credential_recreates_only_the_gateway_and_says_so() -> None:
    gateway = ResourceChange("gateway", "podman:Container", "replace",
                             diff_keys=("secret_env",), replace_keys=("secret_env",),
                             old_inputs={"credential_sources": ["ANTHROPIC_API_KEY"]},
                             new_inputs={"credential_sources": ["ANTHROPIC_API_KEY"]})
    items = summarize([*stack(), gateway], new_session=False)
    rotated = [i for i in items if i.kind == "credentials-rotated"]
    assert rotated and rotated[0].security
    assert rotated[0].text == ("credentials rotated: the model gateway is recreated; the agent "
                               "container is kept")
    assert rotated[0].details == ("ANTHROPIC_API_KEY",)
    # Control: a gateway recreated for another reason is no rotation.
    other = ResourceChange("gateway", "podman:Container", "replace", replace_keys=("image",))
    assert "credentials-rotated" not in kinds(summarize([*stack(), other], new_session=False))


def test_a_new_agent_lists_what_is_copied_in() -> None:
    agent = change("agent", "create", new_inputs={"copied": ["~/.claude/settings.json"]})
    items = summarize(stack(agent=agent), new_session=True)
    copied = [i for i in items if i.kind == "claude-state-copied"]
    assert copied and copied[0].text == "copied into the agent: ~/.claude/settings.json"


def test_a_new_gateway_names_its_routes_and_credential_sources() -> None:
    gateway = ResourceChange("gateway", "podman:Container", "create", new_inputs={
        "routes": ["model gateway: claude", "model gateway: vertexai"],
        "credential_sources": ["ANTHROPIC_API_KEY"]})
    items = summarize([*stack(), gateway], new_session=True)
    [item] = [i for i in items if i.kind == "model-gateway"]
    assert item.text == ("model gateway routes: claude, vertexai (credentials from "
                         "ANTHROPIC_API_KEY)")


NPM = "RUN npm install --global @anthropic-ai/claude-code@{} \\\n && claude --version\n"


def test_claude_code_upgrade_is_named() -> None:
    image = change("agent-image", "replace", replace_keys=("tag",),
                   old_inputs={"files": {"Containerfile": NPM.format("2.1.332")}},
                   new_inputs={"files": {"Containerfile": NPM.format("2.1.340")},
                               "claude_code": "2.1.340"})
    items = summarize(stack(agent_image=image, workspace=change("workspace", "same")),
                      new_session=False)
    assert SummaryItem("agent-version", "Claude Code 2.1.332 \u2192 2.1.340") in items
    assert SummaryItem("workspace-kept", "workspace volume kept") in items


def test_claude_code_from_the_native_installer_and_unpinned_states() -> None:
    old = "RUN curl -fsSL https://claude.ai/install.sh | bash \\\n"
    new = "RUN curl -fsSL https://claude.ai/install.sh | bash -s 2.1.332 \\\n"
    image = change("agent-image", "replace", old_inputs={"files": {"Containerfile": old}},
                   new_inputs={"files": {"Containerfile": new}})
    texts = [i.text for i in summarize(stack(agent_image=image), new_session=False)]
    assert "Claude Code latest (unpinned) \u2192 2.1.332" in texts


def test_same_claude_code_says_nothing_about_it() -> None:
    # Control for the two above: another change rebuilds the image, the release stays.
    image = change("agent-image", "replace",
                   old_inputs={"files": {"Containerfile": "FROM a\n" + NPM.format("2.1.332")}},
                   new_inputs={"files": {"Containerfile": "FROM b\n" + NPM.format("2.1.332")}})
    items = summarize(stack(agent_image=image), new_session=False)
    assert "agent-version" not in kinds(items) and "image-rebuilt" in kinds(items)


def test_a_certificate_change_is_named_not_dumped() -> None:
    image = change("proxy-image", "replace",
                   old_inputs={"files": {"Containerfile": "FROM a\n", "ca/paude-0-0.crt": "X\n"}},
                   new_inputs={"files": {"Containerfile": "FROM a\n", "ca/paude-0-0.crt": "Y\n",
                                         "ca/paude-1-0.crt": "Z\n"}})
    (item,) = [i for i in summarize(stack(proxy_image=image), new_session=False)
               if i.kind == "image-rebuilt"]
    assert item.details == ("ca/paude-0-0.crt: CA certificate changed (image.ca_certificates)",
                            "ca/paude-1-0.crt: CA certificate added (image.ca_certificates)")


def test_a_new_sessions_agent_image_says_what_shapes_it() -> None:
    image = change("agent-image", "create", new_inputs={
        "base_images": ["localhost/paude-base:bookworm"], "claude_code": "2.1.332",
        "files": {"Containerfile": "FROM x\n" + NPM.format("2.1.332"),
                  "ca/paude-0-0.crt": "A\n", "ca/paude-1-0.crt": "B\n"}})
    items = summarize([image], new_session=True)
    assert SummaryItem("agent-image", "agent image on localhost/paude-base:bookworm, Claude "
                       "Code 2.1.332 (npm), 2 extra CA certificates trusted") in items
    none = change("agent-image", "create", new_inputs={
        "base_images": ["b:1"], "files": {"Containerfile": "FROM b:1\n"}})
    assert SummaryItem("agent-image", "agent image on b:1, no Claude Code installed") in \
        summarize([none], new_session=True)
    # An existing session's plan does not repeat it.
    assert "agent-image" not in kinds(summarize([image], new_session=False))


def test_github_writes_widened_and_narrowed() -> None:
    widened = summarize([change("gateway", "replace",
                                old_inputs={"github_writes": ["org/a"]},
                                new_inputs={"github_writes": ["org/a", "org/*"]})],
                        new_session=False)
    item = next(i for i in widened if i.kind == "github-writes-widened")
    assert item.security and item.text.endswith("allowed to: org/*")
    narrowed = summarize([change("gateway", "replace", old_inputs={"github_writes": ["org/a"]},
                                 new_inputs={"github_writes": []})], new_session=False)
    assert [i.kind for i in narrowed if i.kind.startswith("github")] == \
        ["github-writes-narrowed"]
    same = summarize([change("gateway", "same", old_inputs={"github_writes": ["org/a"]},
                             new_inputs={"github_writes": ["org/a"]})], new_session=False)
    assert not [i for i in same if i.kind.startswith("github")]  # control
