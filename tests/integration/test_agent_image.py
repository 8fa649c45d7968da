"""Claude Code installed with npm behind this network's TLS-inspecting proxy, on real podman."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.integration.helpers import BASE_IMAGE, Paude, podman

pytestmark = [pytest.mark.requires_podman, pytest.mark.requires_pulumi, pytest.mark.slow]

# The host's bundle holds the CA of the proxy that inspects HTTPS to the npm registry.
HOST_BUNDLE = os.environ.get("PAUDE_TEST_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")


def make_test_ca(folder: Path) -> tuple[Path, str]:
    """A throwaway self-signed CA: proof that paude's trust step, not the base, adds it."""
    key, cert = folder / "test-ca.key", folder / "test-ca.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=paude integration test CA", "-keyout", str(key),
                    "-out", str(cert)], check=True, capture_output=True)
    body = "".join(cert.read_text().splitlines()[1:-1])
    return cert, body[:64]


def test_npm_install_with_extra_ca_runs_claude(paude: Paude, tmp_path: Path) -> None:
    cert, fingerprint_text = make_test_ca(tmp_path)
    definition = {
        "version": 1,
        "defaults": {"image": {"base": BASE_IMAGE, "ca_certificates": [HOST_BUNDLE, str(cert)]}},
        "sessions": {paude.session: {"agent": {"install": "npm", "command": ["bash"]}}},
    }
    (paude.repo / "paude.yaml").write_text(yaml.safe_dump(definition))
    paude.ok("apply", paude.session, "--yes")

    agent, proxy = f"paude-{paude.session}-agent", f"paude-{paude.session}-proxy"
    version = podman("exec", agent, "claude", "--version", check=False)
    assert version.returncode == 0, version.stderr
    assert "Claude Code" in version.stdout
    for container in (agent, proxy):
        bundle = podman("exec", container, "cat", "/etc/ssl/certs/ca-certificates.crt").stdout
        assert fingerprint_text in bundle.replace("\n", ""), container
