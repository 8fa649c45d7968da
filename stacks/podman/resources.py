"""Podman objects as Pulumi dynamic resources with real reads and diffs.

Module path and class names are stored in stack state (dynamic providers are pickled by
reference), so renaming anything here breaks existing stacks: add, never rename.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from pulumi import Input, Output, ResourceOptions
from pulumi.dynamic import (
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from paude import arch, proc, sizing

from . import buildbox, freshness, observe, podman

# The agent's devcontainer features: a second Containerfile in the build context, built
# FROM the first build's image (tagged TAG-prefeatures meanwhile), passed as a build arg.
FEATURES_FILE = "Containerfile.features"
STAGE_ARG = "PAUDE_STAGE"
STAGE_SUFFIX = "prefeatures"

# Inputs whose change requires a new object: podman cannot modify these in place.
_CONTAINER_KEYS = ("name", "image", "image_id", "networks", "volumes", "env", "labels", "user",
                   "cap_drop", "security_opt", "command", "hostname", "read_only", "tmpfs",
                   "restart", "add_hosts", "dns", "secret_env", "copy_in", "sysctls", "limits",
                   "drift")
_NETWORK_KEYS = ("name", "internal", "dns", "labels")


def _replace_diff(olds: dict[str, Any], news: dict[str, Any], keys: tuple[str, ...]) -> DiffResult:
    changed = [k for k in keys if olds.get(k) != news.get(k)]
    # Names are fixed per session, so the old object must go before the new one exists.
    return DiffResult(changes=bool(changed), replaces=changed, stables=[],
                      delete_before_replace=True)


class _Provider(ResourceProvider):
    # The provider holds no secrets; keep its pickled form readable in state.
    serialize_as_secret_always = False


class ImageProvider(_Provider):
    """A content-addressed image: built once per tag, adopted when the tag already exists."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Build the image unless an image with this tag already exists."""
        tag = props["tag"]
        # A rebuild ignores the existing image and podman's layer cache; an image whose base
        # changed since it was built is built again on the base as it is now.
        found, stale = (None, False) if props.get("rebuild") else freshness.stale_base(
            tag, freshness.base_of(props))
        if found is None or stale:
            why = arch.unavailable(props.get("platform"))
            if why is not None:
                raise RuntimeError(f"cannot build {tag}: {why}")
            with tempfile.TemporaryDirectory(prefix="paude-build-") as ctx:
                if not props.get("context_dir"):
                    for name, content in props["files"].items():
                        target = Path(ctx) / name
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_text(content, encoding="utf-8")
                # The user's own Dockerfile builds from its folder in the repository.
                argv = podman.build_argv(tag, props.get("context_dir") or ctx,
                                         build_args=props.get("build_args", {}),
                                         labels=props.get("labels", {}),
                                         file=props.get("dockerfile"),
                                         no_cache=bool(props.get("rebuild")),
                                         platform=props.get("platform"),
                                         ignore_file=props.get("ignore_file"))
                if props.get("context_dir") or FEATURES_FILE not in props["files"]:
                    _build(argv, props)
                else:
                    _build_with_features(props, ctx)
            found = podman.inspect("image", tag)
            if found is None:
                raise RuntimeError(f"podman build reported success but {tag} does not exist")
        return CreateResult(tag, {**props, "image_id": found["Id"], "built": True})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Report the image gone when its tag no longer exists, so a plan rebuilds it, and
        its base changed when the base's layers no longer start it (freshness.py)."""
        base = freshness.base_of(props)
        found, stale = freshness.stale_base(id_, base)
        if found is None:
            return ReadResult(None, {})
        observed = {k: v for k, v in props.items() if k != freshness.BASE_CHANGED}
        if stale:
            observed[freshness.BASE_CHANGED] = base
        observed["image_id"] = found["Id"]
        return ReadResult(id_, observed, inputs=_without(observed, ("image_id", "built")))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """The tag is a hash of every build input, so only a tag change matters, a rebuild
        request (a token that differs from the last one), and a base changed since the
        build (the program never declares one, so a refresh finding it is the diff)."""
        keys = ("tag", "rebuild", freshness.BASE_CHANGED) if news.get("rebuild") else (
            "tag", freshness.BASE_CHANGED)
        changed = [k for k in keys if olds.get(k) != news.get(k)]
        # Built before the old one goes (which is retained anyway): deleting first would make
        # the engine delete what depends on the image, the agent's container, before the
        # build, and a build that then fails would leave the session without its agent.
        return DiffResult(changes=bool(changed), replaces=changed, stables=[],
                          delete_before_replace=False)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Images are a shared build cache; stacks retain them (see retain_on_delete)."""


def _build(argv: list[str], props: dict[str, Any]) -> None:
    """Run a build: in the build sandbox when the image takes anything from the repository
    (build_proxy_image set), else (paude's own proxy image) with a scrubbed environment."""
    # Base images are pulled by podman itself, outside RUN steps, before the proxy
    # variables are set for the build (they would send the pull to the build proxy).
    for base in props.get("base_images") or []:
        if podman.inspect("image", base) is None:
            proc.run([podman.PODMAN, "pull", base], env=buildbox.host_env(), inherit_env=False)
    proxy_image = props.get("build_proxy_image")
    if not proxy_image:
        proc.run(argv, env=buildbox.host_env(), inherit_env=False)
        return
    with buildbox.sandbox(proxy_image, props["build_squid_conf"],
                          props.get("build_owner")) as net:
        result = proc.run([*argv[:2], "--network", net.namespace, *argv[2:]], env=net.env(),
                          inherit_env=False, check=False)
        if result.ok:
            return
        refused = net.refused()
    failure = proc.classify_failure(result)
    if refused:
        # The engine shows a provider's exception message, not a PaudeError's hint.
        raise RuntimeError(f"{failure.message}\nthe build proxy refused: {', '.join(refused)}"
                           " (builds reach only image.build_domains, the Debian archive and "
                           "the agent installer; add a host the build needs to "
                           "image.build_domains in paude.yaml)")
    raise failure


def _build_with_features(props: dict[str, Any], ctx: str) -> None:
    """The agent image, then its devcontainer features on top in a second build with no
    network at all: their install scripts are repository content."""
    tag, labels, no_cache = props["tag"], props.get("labels", {}), bool(props.get("rebuild"))
    stage = f"{tag}-{STAGE_SUFFIX}"
    platform = props.get("platform")
    _build(podman.build_argv(stage, ctx, build_args=props.get("build_args", {}),
                             labels=labels, no_cache=no_cache, platform=platform), props)
    try:
        second = podman.build_argv(tag, ctx, build_args={STAGE_ARG: stage}, labels=labels,
                                   file=f"{ctx}/{FEATURES_FILE}", no_cache=no_cache,
                                   platform=platform)
        result = proc.run([*second[:2], "--network", "none", *second[2:]],
                          env=buildbox.host_env(), inherit_env=False, check=False)
    finally:
        proc.run([podman.PODMAN, "rmi", stage], check=False)
    if not result.ok:
        # The engine shows a provider's exception message, not a PaudeError's hint.
        raise RuntimeError(f"{proc.classify_failure(result).message}\na devcontainer "
                           "feature's install.sh failed: features install with no network, so "
                           "what one downloads must be in its folder (or in image.packages)")


class NetworkProvider(_Provider):
    """A podman bridge network; internal networks have no route out and no external DNS."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Create the network, adopting one this session already labelled.

        Created first and asked about after: podman refuses a name in use, and its answer
        is then read like any other (a podman call less on a new session's path)."""
        made = podman.change(podman.network_create_argv(
            props["name"], internal=props["internal"], dns=props["dns"],
            labels=props["labels"]), check=False)
        # Read either way: the subnet is podman's choice, and the fixed addresses need it.
        existing = podman.inspect("network", props["name"])
        if not made.ok:
            # Refused because it exists (left by a destroy that was killed, or made by a
            # killed run's podman, left to finish): adopted only when it is this session's.
            if existing is None:
                raise proc.classify_failure(made)
            _require_owned(existing.get("labels") or {}, props, "network")
        return CreateResult(props["name"], {**props, **_network_facts(existing or {})})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Observe existence, isolation and DNS (an agent network that gained either is drift)."""
        found = podman.inspect("network", id_)
        if found is None:
            return ReadResult(None, {})
        observed = {**props, **_network_facts(found)}
        return ReadResult(id_, observed, inputs=_inputs_of(observed, _NETWORK_KEYS))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Networks are immutable: any change replaces them."""
        return _replace_diff(olds, news, _NETWORK_KEYS)

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        """Remove the network; already gone is fine."""
        podman.remove([podman.PODMAN, "network", "rm", id_])


class VolumeProvider(_Provider):
    """The workspace volume. Stacks retain it on delete; paude removes it only on request."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Create the volume, or re-attach the one a previous destroy kept."""
        existing = podman.inspect("volume", props["name"])
        if existing is None:
            made = podman.change(podman.volume_create_argv(props["name"],
                                                           labels=props["labels"]),
                                 check=False)
            if made.ok:
                return CreateResult(props["name"], {**props, "adopted": False})
            # Refused because it exists: a killed run's podman, left to finish, made it.
            existing = podman.inspect("volume", props["name"])
            if existing is None:
                raise proc.classify_failure(made)
        _require_owned(existing.get("Labels") or {}, props, "volume")
        return CreateResult(props["name"], {**props, "adopted": True})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Report the volume gone when it was removed by hand."""
        if podman.inspect("volume", id_) is None:
            return ReadResult(None, {})
        return ReadResult(id_, dict(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Only a new name replaces the workspace; label changes are ignored to protect data."""
        return _replace_diff(olds, news, ("name",))

    def delete(self, id_: str, _props: dict[str, Any]) -> None:
        """Remove the volume (only reached when retain_on_delete is off)."""
        podman.remove([podman.PODMAN, "volume", "rm", id_])


class ContainerProvider(_Provider):
    """A container. Containers hold no data (the workspace is a volume), so any change
    replaces them; whether it is running is not state (`paude stop` is not drift)."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Start the container, replacing a leftover of the same session from a failed run."""
        name = props["name"]
        copies = props.get("copy_in") or []
        # Files to copy in go before the first start, so the agent never runs without its
        # settings (podman cp hands them to the container's user); without any, one
        # `podman run` creates and starts it.
        argv = podman.create_argv(props, start=not copies)
        env = dict(props.get("secret_env") or {})
        made = podman.change(argv, env=env, check=False)
        if not made.ok and podman.name_in_use(made.stderr):
            # A leftover of a failed run: asked about only then (a read less per create).
            existing = podman.inspect("container", name)
            if existing is not None:
                _require_owned(existing.get("Config", {}).get("Labels") or {}, props,
                               "container")
                podman.remove([podman.PODMAN, "rm", "--force", "--time", _stop_time(props),
                               name])
            made = podman.change(argv, env=env, check=False)
        if not made.ok:
            raise podman.create_failure(made, props)
        for source, target in copies:
            podman.change([podman.PODMAN, "cp", source, f"{name}:{target}"])
        if copies:
            podman.change([podman.PODMAN, "start", name])
        container_id = podman.wait_running(name, ready=props.get("ready"))
        return CreateResult(props["name"], {**props, "container_id": container_id})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Observe existence, image, networks and limits so hand-made changes show as drift."""
        found = podman.inspect("container", id_)
        if found is None:
            return ReadResult(None, {})
        # While it runs, its cgroups are the truth (`podman update` changes them and not
        # what inspect reports); stopped, the configuration it will start with.
        pid = int((found.get("State") or {}).get("Pid") or 0)
        limits = (sizing.live(pid) if pid > 0 else None) or sizing.observed(
            found.get("HostConfig") or {})
        networks = sorted((found.get("NetworkSettings") or {}).get("Networks") or {})
        declared = props.get("networks") or []
        # Declared entries may carry options (NAME:ip=ADDR); compare the names, and keep
        # the declared form when they match: order and options are not drift.
        same = sorted(str(n).split(":", 1)[0] for n in declared) == networks
        observed = {
            **props,
            "image": found.get("ImageName") or props.get("image"),
            "networks": declared if same else networks,
            "container_id": found.get("Id", ""),
        }
        if "limits" in props:  # a stack from before limits: its containers get them on apply
            observed["limits"] = limits
        # Anything else changed outside paude is listed under `drift`, which the program
        # never declares: any drift is a difference, and apply replaces the container.
        drifted = observe.drift(found, props, observe.image_config(
            str(found.get("Image") or found.get("ImageName") or "")))
        if pid > 0:
            drifted += observe.proxy_config(id_, props, pid)
        observed.pop("drift", None)
        if drifted:
            observed["drift"] = drifted
        return ReadResult(id_, observed, inputs=_without(observed, ("container_id",)))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Any change to the container's definition replaces it."""
        return _replace_diff(olds, news, _CONTAINER_KEYS)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Never reached: every diff is a replacement."""
        return UpdateResult(dict(news))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Stop and remove the container; already gone is fine."""
        podman.remove([podman.PODMAN, "rm", "--force", "--time", _stop_time(props), id_])


def _stop_time(props: dict[str, Any]) -> str:
    """Seconds a container gets to stop before it is killed. squid waits out its
    shutdown_lifetime on SIGTERM and the gateway holds nothing: both go at once (an allowlist
    change replaces the proxy); the agent's entrypoint ends its tmux session first."""
    role = (props.get("labels") or {}).get("paude.role")
    return "0" if role in ("proxy", "gateway") else "1"


def _network_facts(found: dict[str, Any]) -> dict[str, Any]:
    subnets = found.get("subnets") or [{}]
    return {"internal": bool(found.get("internal", False)),
            "dns": bool(found.get("dns_enabled", False)),
            "subnet": subnets[0].get("subnet", "")}


def _inputs_of(props: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: props[k] for k in keys if k in props}


def _without(props: dict[str, Any], computed: tuple[str, ...]) -> dict[str, Any]:
    # Refreshed inputs: everything the program declared, with observed values swapped in.
    return {k: v for k, v in props.items() if k not in computed and not k.startswith("__")}


def _require_owned(labels: dict[str, str], props: dict[str, Any], kind: str) -> None:
    # Never adopt or remove an object that belongs to something else.
    want = props.get("labels", {}).get("paude.session")
    if labels.get("paude.session") != want:
        raise RuntimeError(
            f"a {kind} named {props['name']} already exists and does not belong to paude "
            f"session {want}; remove or rename it, then apply again"
        )


class Image(Resource, module="podman", name="Image"):
    """A content-addressed container image."""

    tag: Output[str]
    image_id: Output[str]

    def __init__(self, name: str, props: dict[str, Input[Any]],
                 opts: ResourceOptions | None = None) -> None:
        super().__init__(ImageProvider(), name, {**props, "image_id": None, "built": None}, opts)


class Network(Resource, module="podman", name="Network"):
    """A podman network."""

    name: Output[str]
    subnet: Output[str]

    def __init__(self, name: str, props: dict[str, Input[Any]],
                 opts: ResourceOptions | None = None) -> None:
        super().__init__(NetworkProvider(), name, {**props, "subnet": None}, opts)


class Volume(Resource, module="podman", name="Volume"):
    """A podman named volume."""

    name: Output[str]

    def __init__(self, name: str, props: dict[str, Input[Any]],
                 opts: ResourceOptions | None = None) -> None:
        super().__init__(VolumeProvider(), name, {**props, "adopted": None}, opts)


class Container(Resource, module="podman", name="Container"):
    """A podman container."""

    name: Output[str]
    container_id: Output[str]

    def __init__(self, name: str, props: dict[str, Input[Any]],
                 opts: ResourceOptions | None = None) -> None:
        super().__init__(ContainerProvider(), name, {**props, "container_id": None}, opts)
