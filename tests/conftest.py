"""Shared test configuration: real-tool markers and golden files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).parent / "golden"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite golden files from the current output instead of comparing")


def _podman_usable() -> bool:
    return shutil.which("podman") is not None


def _pulumi_usable() -> bool:
    from paude.home import paude_home
    from paude.toolchain import find_engine

    engine, _ = find_engine(paude_home())
    return engine is not None


def _k8s_provider_usable() -> bool:
    from paude.home import paude_home
    from paude.toolchain import find_engine

    engine, _ = find_engine(paude_home())
    plugin = "pulumi-resource-kubernetes"
    return shutil.which(plugin) is not None or (
        engine is not None and (engine.bin_dir / plugin).exists())


def _cluster_tools_usable() -> bool:
    from tests.integration.cluster import tools_present

    return tools_present()


def _node_usable() -> bool:
    from tests.integration.node import node_tools_present

    return node_tools_present()


_REQUIREMENTS = {
    "requires_podman": (_podman_usable, "podman is not installed"),
    "requires_pulumi": (_pulumi_usable, "no Pulumi engine (scripts/build-engine.sh)"),
    "requires_k8s_provider": (_k8s_provider_usable,
                              "no pulumi-kubernetes plugin (scripts/build-engine.sh --kubernetes)"),
    "requires_cluster": (_cluster_tools_usable,
                         "no test API server or registry (scripts/build-kube.sh, "
                         "scripts/build-registry.sh)"),
    "requires_node": (_node_usable,
                      "no test node (root, scripts/setup-podman.sh packages, "
                      "scripts/build-node.sh)"),
}


_probed: dict[str, bool] = {}


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip real-tool tests on a laptop without the tool; with CI=true, fail instead."""
    for marker, (probe, reason) in _REQUIREMENTS.items():
        if item.get_closest_marker(marker) is None:
            continue
        if marker not in _probed:
            _probed[marker] = probe()
        if _probed[marker]:
            continue
        if IN_CI:
            pytest.fail(f"CI=true but {reason}: integration tests may not skip in CI")
        pytest.skip(reason)


class Golden:
    """Compare text with tests/golden/NAME, or rewrite it under --update-golden."""

    def __init__(self, update: bool) -> None:
        self.update = update

    def check(self, name: str, actual: str) -> None:
        path = GOLDEN_DIR / name
        if self.update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual, encoding="utf-8")
            return
        assert path.exists(), f"missing golden file {path}; run pytest --update-golden"
        expected = path.read_text(encoding="utf-8")
        assert actual == expected, (
            f"{name} differs from its golden file; if the change is intended, run "
            f"`pytest --update-golden` and review the diff")


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Golden:
    """The golden-file checker."""
    return Golden(bool(request.config.getoption("--update-golden")))
