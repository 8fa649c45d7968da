"""How a cluster session gets its images.

With `openshift.image_registry` set, paude builds the images locally with podman (exactly
as for a podman session) and pushes them there. Without it, on OpenShift, the images are
built in the cluster: an ImageStream and a binary-source BuildConfig per image, and a build
started from the same files. Tags are content hashes either way, so an unchanged
definition never rebuilds, and the pods name an image that cannot change under them.

Module path and class names are stored in stack state: add, never rename."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource

from paude import proc
from paude.errors import ConfigError, ConfigProblem
from paude.models import Session
from paude.naming import ClusterNames

from ..podman import features, podman
from ..podman.images import BuildSpec, agent_build, dockerfile_build, image_props, proxy_build
from ..podman.resources import Image, ImageProvider, _Provider, _replace_diff, _without

# OpenShift's integrated registry, as pods inside the cluster address it.
INTERNAL_REGISTRY = "image-registry.openshift-image-registry.svc:5000"


class PushedImageProvider(ImageProvider):
    """An image built locally (reusing the podman build cache) and pushed to a registry."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Build the image unless it exists locally, then push it."""
        built = super().create(props)
        outs = dict(built.outs or {})
        with tempfile.TemporaryDirectory(prefix="paude-push-") as tmp:
            digest_file = Path(tmp) / "digest"
            proc.run(podman.push_argv(props["tag"], props["remote"],
                                      tls_verify=bool(props.get("tls_verify", True)),
                                      digest_file=str(digest_file)))
            digest = digest_file.read_text(encoding="utf-8").strip()
        return CreateResult(props["remote"], {**outs, "digest": digest})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Read the tag back from the registry: a tag deleted there is drift, and apply
        pushes it again. A registry that cannot be read is no evidence either way."""
        observed = {k: v for k, v in props.items() if k != "drift"}
        drifted = pushed_drift(str(props.get("remote") or id_),
                               tls_verify=bool(props.get("tls_verify", True)))
        if drifted:
            observed["drift"] = drifted
        return ReadResult(id_, observed, inputs={
            **_without(observed, ("image_id", "built")), "digest": None})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """A new tag, registry or rebuild request pushes again, and so does drift (the
        program never declares any)."""
        keys = ("remote", "tag", "rebuild") if news.get("rebuild") else ("remote", "tag")
        return _replace_diff(olds, news, (*keys, "drift"))


def pushed_drift(remote: str, *, tls_verify: bool) -> list[str]:
    """What differs between a pushed image reference and its registry (one line each)."""
    repository, _, tag = remote.rpartition(":")
    if not repository or "/" in tag:
        return []
    tags = podman.registry_tags(repository, tls_verify=tls_verify)
    if tags is None or tag in tags:
        return []
    return [f"tag {tag} is missing from {repository}"]


class PushedImage(Resource, module="cluster", name="PushedImage"):
    """See PushedImageProvider."""

    remote: pulumi.Output[str]
    digest: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(PushedImageProvider(), name,
                         {"remote": None, "digest": None, **props}, opts)


class ClusterBuildProvider(_Provider):
    """One run of a BuildConfig with the build's files uploaded as its binary source."""

    def create(self, props: dict[str, Any]) -> CreateResult:
        """`oc start-build --from-dir --wait`: returns when the image is in its ImageStream."""
        with tempfile.TemporaryDirectory(prefix="paude-build-") as ctx:
            for name, content in props["files"].items():
                target = Path(ctx) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content, encoding="utf-8")
            proc.run([*props["oc"], "start-build", props["build_config"], "--from-dir", ctx,
                      "--wait"])
        return CreateResult(props["tag"], dict(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Only new content (a new tag) builds again."""
        return _replace_diff(olds, news, ("tag", "build_config"))

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """A finished build leaves nothing to remove; its image lives in the ImageStream."""


class ClusterBuild(Resource, module="cluster", name="ClusterBuild"):
    """See ClusterBuildProvider."""

    def __init__(self, name: str, props: dict[str, Any],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(ClusterBuildProvider(), name, props, opts)


@dataclass(frozen=True)
class ClusterImages:
    """Image references the pods use, and the resources that must exist before them."""

    agent: str
    proxy: str
    ready: tuple[pulumi.Resource, ...] = ()


@dataclass(frozen=True)
class _Builds:
    """The session's build specs, computed once (a repository Dockerfile's context is
    hashed file by file)."""

    base: BuildSpec | None  # the repository's Dockerfile, built locally (registry only)
    images: dict[str, BuildSpec]  # agent and proxy


def _builds(session: Session, owner: Path, files: Path | None = None) -> _Builds:
    base = dockerfile_build(session, owner, files=files) if session.openshift.image_registry \
        else None
    feature_files: dict[str, str] = {}
    if session.image.features:
        if not session.openshift.image_registry:
            raise ConfigError(session.image_source if session.image_source != "default"
                              else "paude.yaml", [ConfigProblem(
                "features", "devcontainer features are installed by a local build without "
                "network, which an in-cluster build cannot do")],
                hint="set openshift.image_registry (paude builds locally and pushes), or "
                     "install what the feature does in image.dockerfile")
        feature_files = features.build_files(session, files or owner)[1]
    return _Builds(base, {"agent": agent_build(session, base.tag if base else None,
                                               feature_files),
                          "proxy": proxy_build(session)})


def image_refs(session: Session, namespace: str, builds: _Builds) -> dict[str, str]:
    """Where the pods pull each image from (known at plan time: tags are content hashes)."""
    registry = session.openshift.image_registry
    out = {}
    for role, spec in builds.images.items():
        tag = spec.tag.rsplit(":", 1)[1]
        if registry:
            out[role] = f"{registry.rstrip('/')}/{spec.repository}:{tag}"
        else:
            stream = ClusterNames(session.name).image_stream(role)
            out[role] = f"{INTERNAL_REGISTRY}/{namespace}/{stream}:{tag}"
    return out


def cluster_images(session: Session, owner: str, namespace: str, meta: Any,
                   opts: pulumi.ResourceOptions, *, render: bool, rebuild: str = "",
                   files: Path | None = None) -> ClusterImages:
    """Declare what makes the session's images available to the cluster."""
    builds = _builds(session, Path(owner), files)
    refs = image_refs(session, namespace, builds)
    if render:  # manifests only: nothing is built or pushed
        if not session.openshift.image_registry:
            _declare_builds(session, builds, namespace, meta, opts, refs, emit_runs=False)
        return ClusterImages(refs["agent"], refs["proxy"])
    if session.openshift.image_registry:
        return ClusterImages(refs["agent"], refs["proxy"],
                             _declare_pushes(session, builds, refs, rebuild, owner))
    return ClusterImages(refs["agent"], refs["proxy"],
                         _declare_builds(session, builds, namespace, meta, opts, refs,
                                         emit_runs=True))


def _declare_pushes(session: Session, builds: _Builds, refs: dict[str, str], rebuild: str,
                    owner: str) -> tuple[pulumi.Resource, ...]:
    def pushed(role: str, extra: dict[str, Any], after: list[pulumi.Resource]) -> PushedImage:
        props = {**image_props(builds.images[role], rebuild), **extra, "remote": refs[role],
                 "tls_verify": session.openshift.registry_tls_verify}
        return PushedImage(f"{role}-image", props,
                           pulumi.ResourceOptions(retain_on_delete=True, depends_on=after))

    # The proxy image first: the other builds run behind a build proxy made from it
    # (stacks/podman/buildbox.py), like the podman stack's.
    proxy = pushed("proxy", {}, [])
    # The session's labels on the sandbox: its next build removes what a killed one left.
    sandboxed = {"build_proxy_image": builds.images["proxy"].tag,
                 "build_owner": {"paude.session": session.name, "paude.repository": owner}}
    after: list[pulumi.Resource] = [proxy]
    if builds.base is not None:
        # Built locally only: the agent image is built FROM it and pushed.
        after = [Image("base-image", {**image_props(builds.base, rebuild), **sandboxed},
                       pulumi.ResourceOptions(retain_on_delete=True, depends_on=after))]
    return (pushed("agent", sandboxed, after), proxy)


def _declare_builds(session: Session, builds: _Builds, namespace: str, meta: Any,
                    opts: pulumi.ResourceOptions, refs: dict[str, str], *, emit_runs: bool
                    ) -> tuple[pulumi.Resource, ...]:
    if session.image.dockerfile is not None:
        # The Dockerfile may come from paude.json or devcontainer.json: name that file.
        from_json = session.image_source not in ("paude.yaml", "default")
        raise ConfigError(
            session.image_source if from_json else "paude.yaml", [ConfigProblem(
                "build.dockerfile" if from_json else f"sessions.{session.name}.image.dockerfile",
                "in-cluster builds take paude's generated build files only")],
            hint="set openshift.image_registry in paude.yaml: paude then builds your "
                 "Dockerfile locally and pushes the result")
    cfg = session.openshift
    oc = ["oc", *(["--context", cfg.context] if cfg.context else []), "--namespace", namespace]
    out: list[pulumi.Resource] = []
    for role, spec in builds.images.items():
        stream = ClusterNames(session.name).image_stream(role)
        tag = refs[role].rsplit(":", 1)[1]
        # Not the session's pod labels: if OpenShift carried them to the build pods, the
        # session's NetworkPolicies would cut the build off from its package mirrors.
        build_meta = {**meta(stream, role), "labels": {
            "app.kubernetes.io/name": "paude", "app.kubernetes.io/managed-by": "paude",
            "paude.io/build-of": session.name, "paude.io/image": role}}
        keep = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(retain_on_delete=True))
        k8s.apiextensions.CustomResource(
            f"{role}-imagestream", api_version="image.openshift.io/v1", kind="ImageStream",
            metadata=build_meta, spec={"lookupPolicy": {"local": False}}, opts=keep)
        config = k8s.apiextensions.CustomResource(
            f"{role}-buildconfig", api_version="build.openshift.io/v1", kind="BuildConfig",
            metadata=build_meta,
            spec={"runPolicy": "Serial", "source": {"type": "Binary", "binary": {}},
                  "strategy": {"type": "Docker",
                               "dockerStrategy": {"dockerfilePath": "Containerfile"}},
                  "output": {"to": {"kind": "ImageStreamTag", "name": f"{stream}:{tag}"}},
                  "successfulBuildsHistoryLimit": 2, "failedBuildsHistoryLimit": 2},
            opts=opts)
        if emit_runs:
            out.append(ClusterBuild(f"{role}-build", {
                "build_config": stream, "tag": tag, "files": spec.files, "oc": oc,
                "base_images": spec.bases,
            }, pulumi.ResourceOptions(depends_on=[config])))
    return tuple(out)
