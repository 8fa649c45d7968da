"""builds-sandboxed after an upgrade: an image a stack of the previous release built and
keeps is no build, so its state (which records no build proxy) does not block the plan."""

from __future__ import annotations

from typing import Any

from paude.policies import rules
from paude.policies.resources import Resource

IMAGE = "pulumi-python:dynamic/podman:Image"


def image(**props: Any) -> Resource:
    return Resource(IMAGE, "agent-image", {"tag": "localhost/paude-agent:1", **props}, False,
                    f"urn:pulumi:demo::paude::{IMAGE}::agent-image")


def test_an_image_the_stack_already_built_is_not_a_build() -> None:
    # What the engine shows the pack for an unchanged image of an old stack: its outputs as
    # recorded when the previous release built it, with no build proxy among them.
    kept = image(image_id="sha256:" + "1" * 64, built=True)
    assert list(rules.check_builds_sandboxed([kept], {})) == []


def test_an_image_to_build_still_needs_the_sandbox() -> None:
    # The controls: a new or changed tag is previewed from its declared inputs, where
    # image_id and built are not set yet.
    for declared in (image(), image(image_id=None, built=None), image(built=True),
                     image(image_id="sha256:1")):
        found = list(rules.check_builds_sandboxed([declared], {}))
        assert len(found) == 1 and "host's network" in found[0].detail
    sandboxed = image(build_proxy_image="localhost/paude-proxy:1", build_squid_conf="x")
    assert list(rules.check_builds_sandboxed([sandboxed], {})) == []
