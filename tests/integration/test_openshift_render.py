"""`paude plan NAME --render DIR` with the real engine and pulumi-kubernetes' render mode."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.integration.helpers import BASE_IMAGE, Paude
from tests.unit.test_k8s_manifests import MODELS, OPENSHIFT_FIELDS, _check_openshift
from tests.unit.test_openshift_program import VARIANTS

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi,
              pytest.mark.requires_k8s_provider]
GOLDEN = Path(__file__).parents[1] / "golden" / "k8s"


def define(paude: Paude, spec: dict[str, Any]) -> None:
    session = {"backend": "openshift", **spec}
    (paude.repo / "paude.yaml").write_text(yaml.safe_dump({
        "version": 1, "defaults": {"agent": {"install": "none"}, "image": {"base": BASE_IMAGE}},
        "sessions": {"demo": session}}))


def comparable(doc: dict[str, Any]) -> Any:
    """What must match the golden manifest: everything but the values render cannot know
    (the Service address), image tags, and Secret contents."""
    body = dict(doc)
    body.pop("status", None)
    meta = {k: v for k, v in body.get("metadata", {}).items() if k in ("name", "namespace",
                                                                       "labels")}
    body["metadata"] = meta
    if body["kind"] == "Secret":
        return {"kind": "Secret", "keys": sorted(body.get("data") or body.get("stringData"))}
    text = json.dumps(body, sort_keys=True)
    text = text.replace('"0.0.0.0"', '"<address>"').replace('"172.30.12.34"', '"<address>"')
    text = re.sub(r":[0-9a-f]{16}\b", ":<tag>", text)
    return json.loads(text)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_render_matches_the_golden_manifests(paude: Paude, variant: str,
                                             tmp_path: Path) -> None:
    define(paude, VARIANTS[variant])
    out = tmp_path / "manifests"
    paude.extra_env["KUBECONFIG"] = str(tmp_path / "no-kubeconfig")  # must not matter
    result = paude.ok("plan", "demo", "--render", str(out))
    files = sorted(out.rglob("*.yaml"))
    assert len(files) >= 9 and all(str(f) in result.stdout for f in files)
    rendered = [yaml.safe_load(f.read_text()) for f in files]
    api = client.ApiClient()
    for doc in rendered:
        if doc["kind"] in OPENSHIFT_FIELDS:  # BuildConfig, ImageStream: not in the client
            _check_openshift(doc)
            continue
        obj = api.deserialize(json.dumps(doc), MODELS[doc["kind"]], "application/json")
        assert api.sanitize_for_serialization(obj) == doc, doc["metadata"]["name"]
        if doc["kind"] == "Secret":
            assert "refresh" not in json.dumps(doc)  # contents are redacted in renders
    golden = list(yaml.safe_load_all((GOLDEN / f"{variant}.yaml").read_text()))
    for doc in rendered + golden:
        for container in (doc.get("spec", {}).get("template", {}).get("spec", {})
                          .get("containers", [])):
            container["image"] = "<paude image>"
    key = lambda d: (d["kind"], d["metadata"]["name"])  # noqa: E731
    assert sorted(map(key, rendered)) == sorted(map(key, golden))
    by_key = {key(d): comparable(d) for d in golden}
    for doc in rendered:
        assert comparable(doc) == by_key[key(doc)], key(doc)
    # Nothing was applied and no stack was kept.
    assert not (paude.home / "state" / ".pulumi" / "stacks").exists() or not any(
        (paude.home / "state" / ".pulumi" / "stacks").rglob("*.json"))
