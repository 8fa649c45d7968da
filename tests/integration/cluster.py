"""A real Kubernetes API server and a real image registry on loopback, for cluster tests.

Both are built from Go modules by scripts/build-kube.sh and scripts/build-registry.sh
(the CI script builds them). The API server has no kubelet: objects are stored, validated
and served, but no pod runs, so tests assert on what the server holds."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.helpers import BASE_IMAGE, Paude

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "paude"


def kube_bin() -> Path:
    """Where kube-apiserver, etcd and kubectl are."""
    return Path(os.environ.get("PAUDE_TEST_KUBE_BIN") or CACHE / "kube-bin")


def registry_bin() -> Path:
    """Where the registry binary is."""
    return Path(os.environ.get("PAUDE_TEST_REGISTRY_BIN") or CACHE / "registry-bin")


def tools_present() -> bool:
    """Whether every binary the cluster tests need has been built."""
    return all((kube_bin() / tool).is_file() for tool in ("kube-apiserver", "etcd", "kubectl")) \
        and (registry_bin() / "registry").is_file()


@dataclass
class Cluster:
    """The running API server (through its kubeconfig) and registry (host:port)."""

    kubeconfig: Path
    registry: str

    @property
    def kubectl_argv(self) -> tuple[str, ...]:
        """kubectl with this server's kubeconfig and context."""
        return (str(kube_bin() / "kubectl"), "--kubeconfig", str(self.kubeconfig),
                "--context", "paude-test")

    def kubectl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """kubectl against the test server, to observe what paude did."""
        return subprocess.run([*self.kubectl_argv, *args], input=stdin, capture_output=True,
                              text=True, timeout=60)

    def api_port(self) -> int:
        """The API server's port, from the kubeconfig's server URL."""
        config = yaml.safe_load(self.kubeconfig.read_text(encoding="utf-8"))
        return int(str(config["clusters"][0]["cluster"]["server"]).rsplit(":", 1)[1])

    def items(self, *args: str) -> list[dict[str, Any]]:
        """The objects of a list (`kubectl get KIND ...`) as JSON."""
        return list(self.get(*args)["items"])  # type: ignore[call-overload]

    def get(self, *args: str) -> dict[str, object]:
        """An object (or list) as JSON; fails the test when kubectl fails."""
        result = self.kubectl("get", *args, "-o", "json")
        assert result.returncode == 0, result.stderr
        data: dict[str, object] = json.loads(result.stdout)
        return data

    def exists(self, *args: str) -> bool:
        """Whether kubectl finds the object."""
        return self.kubectl("get", *args).returncode == 0

    def tags(self, repository: str) -> list[str]:
        """Tags the registry holds for a repository."""
        url = f"http://{self.registry}/v2/{repository}/tags/list"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(url, timeout=10) as response:
                data = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:  # nothing pushed to this repository yet
                return []
            raise
        return list(data.get("tags") or [])


    def delete_tag(self, repository: str, tag: str) -> None:
        """Delete a tag's manifest from the registry, as someone cleaning it up would."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        url = f"http://{self.registry}/v2/{repository}/manifests/{tag}"
        accept = ", ".join(("application/vnd.oci.image.manifest.v1+json",
                            "application/vnd.docker.distribution.manifest.v2+json"))
        head = urllib.request.Request(url, method="HEAD", headers={"Accept": accept})
        with opener.open(head, timeout=10) as response:
            digest = response.headers["Docker-Content-Digest"]
        delete = urllib.request.Request(
            f"http://{self.registry}/v2/{repository}/manifests/{digest}", method="DELETE")
        with opener.open(delete, timeout=10) as response:
            assert response.status == 202


def define(paude: Paude, cluster: Cluster, namespace: str, domains: str = "[default]",
           extra: str = "", *, create_namespace: bool = True) -> None:
    """The session's paude.yaml for the test server, and the environment that reaches it."""
    (paude.repo / "paude.yaml").write_text(
        f"version: 1\ndefaults:\n  agent: {{install: none}}\n  image: {{base: {BASE_IMAGE}}}\n"
        f"sessions:\n  {paude.session}:\n    backend: openshift\n"
        f"    allowed_domains: {domains}\n"
        f"    openshift:\n      namespace: {namespace}\n      context: paude-test\n"
        f"      create_namespace: {str(create_namespace).lower()}\n"
        f"      image_registry: {cluster.registry}/paude\n"
        f"      registry_tls_verify: false\n      wait_for_ready: false\n      pvc_size: 2Gi\n"
        f"{extra}")
    paude.extra_env.update({"KUBECONFIG": str(cluster.kubeconfig),
                            "PATH": f"{kube_bin()}{os.pathsep}{os.environ['PATH']}"})


def _start(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


def start_cluster(state: Path, apiserver_args: Sequence[str] = ()) -> Iterator[Cluster]:
    """Start the API server (APISERVER_ARGS added to its own) and the registry; stop both
    afterwards."""
    kube_state, registry_state = state / "kube", state / "registry"
    kubeconfig = _start(["bash", str(SCRIPTS / "run-kube-apiserver.sh"), "--dir",
                         str(kube_state), "--bin", str(kube_bin()), "--", *apiserver_args])
    try:
        address = _start(["bash", str(SCRIPTS / "run-registry.sh"), "--dir",
                          str(registry_state), "--bin", str(registry_bin())])
        try:
            yield Cluster(Path(kubeconfig), address)
        finally:
            subprocess.run(["bash", str(SCRIPTS / "run-registry.sh"), "--stop", "--dir",
                            str(registry_state)], capture_output=True, check=False)
    finally:
        subprocess.run(["bash", str(SCRIPTS / "run-kube-apiserver.sh"), "--stop", "--dir",
                        str(kube_state)], capture_output=True, check=False)
