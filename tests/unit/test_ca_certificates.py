"""image.ca_certificates names host files from a file the agent can write: only certificates
are accepted, and only certificates are copied into the images."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest

from paude.certs import MAX_BYTES, NotCertificates, certificate_blocks, read_certificates
from paude.cli import main
from paude.config import load_paude_file
from paude.errors import ConfigError
from paude.models import PaudeFile, resolve
from paude.stacks.podman.images import agent_build, ca_files, proxy_build
from tests.certs import CERT_A, CERT_B

DER_A = base64.b64decode("".join(CERT_A.splitlines()[1:-1]))


@pytest.fixture
def user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home folder holding an SSH-style private key, and a repository folder."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-out", str(home / ".ssh" / "id_ecdsa")],
                   check=True, capture_output=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PAUDE_HOME", str(tmp_path / "paude-home"))
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    return home


def definition(repo: Path, *paths: str) -> Path:
    entries = "".join(f"        - {p}\n" for p in paths)
    path = repo / "paude.yaml"
    path.write_text(f"version: 1\nsessions:\n  demo:\n    image:\n      ca_certificates:\n"
                    f"{entries}", encoding="utf-8")
    return path


def config_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_paude_file(path)
    return caught.value


def test_a_private_key_is_refused_with_file_and_line(user: Path, tmp_path: Path) -> None:
    cert = tmp_path / "corp-ca.pem"
    cert.write_text(CERT_A)
    path = definition(tmp_path / "repo", str(cert), "~/.ssh/id_ecdsa")
    error = config_error(path)
    [problem] = error.problems
    assert (problem.path, problem.line) == ("sessions.demo.image.ca_certificates.1", 7)
    text = error.render()
    assert f"{path}:7: sessions.demo.image.ca_certificates.1: ~/.ssh/id_ecdsa holds a " \
           "PRIVATE KEY block" in text
    assert "only PEM CERTIFICATE blocks are copied into the images" in text
    assert "BEGIN" not in text.replace("CERTIFICATE blocks", "")  # no key material shown


def test_control_a_real_certificate_is_accepted_and_copied(user: Path, tmp_path: Path) -> None:
    cert = tmp_path / "corp-ca.pem"
    cert.write_text(CERT_A)
    file = load_paude_file(definition(tmp_path / "repo", str(cert)))
    session = resolve(file, "demo")
    assert ca_files(session) == {"ca/paude-0-0.crt": CERT_A}
    assert agent_build(session).files["ca/paude-0-0.crt"] == CERT_A
    assert proxy_build(session).files["ca/paude-0-0.crt"] == CERT_A


def test_the_cli_exits_1_before_anything_runs(user: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    repo = tmp_path / "repo"
    path = definition(repo, "~/.ssh/id_ecdsa")
    monkeypatch.chdir(repo)
    assert main(["plan", "demo"]) == 1
    err = capsys.readouterr().err
    assert f"{path}:6: sessions.demo.image.ca_certificates.0" in err and "PRIVATE KEY" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("label", ["PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY",
                                   "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY",
                                   "PGP PRIVATE KEY BLOCK", "TRUSTED CERTIFICATE"])
def test_a_certificate_with_anything_else_is_refused_whole(label: str) -> None:
    other = f"-----BEGIN {label}-----\nAAAA\n-----END {label}-----\n"
    for text in (CERT_A + other, other + CERT_A):
        with pytest.raises(NotCertificates, match=f"holds a {label} block"):
            certificate_blocks(text)


def test_a_key_inside_a_json_file_is_refused() -> None:
    """Application-default credentials carry their key as an escaped PEM string."""
    adc = '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nMIIE' \
          '\\n-----END PRIVATE KEY-----\\n"}'
    with pytest.raises(NotCertificates, match="PRIVATE KEY"):
        certificate_blocks(adc)


@pytest.mark.parametrize(("text", "words"), [
    ("", "holds no PEM certificate"),
    ("machine example.com login u password hunter2\n", "holds no PEM certificate"),
    ("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n", "not base64"),
    ("-----BEGIN CERTIFICATE-----\n" + base64.b64encode(b"secret text").decode()
     + "\n-----END CERTIFICATE-----\n", "not a certificate"),
    # a DER certificate one byte short
    ("-----BEGIN CERTIFICATE-----\n" + base64.b64encode(DER_A[:-1]).decode()
     + "\n-----END CERTIFICATE-----\n", "not a certificate"),
    (CERT_A.removesuffix("-----END CERTIFICATE-----\n"), "without its END line"),
    ("-----BEGIN CERTIFICATE-----\n" + CERT_A, "not base64"),
    ("-----BEGIN CERTIFICATE-----\nMIIB\n-----END X509 CRL-----\n", "ends as X509 CRL"),
])
def test_what_is_not_a_certificate(text: str, words: str) -> None:
    with pytest.raises(NotCertificates, match=words):
        certificate_blocks(text)


def test_only_the_certificates_are_copied() -> None:
    bundle = ("# Issuer: CN=Example Root\n# password: not-for-the-image\n" + CERT_A
              + "\nsome notes\n" + CERT_B.replace("\n", "\r\n"))
    assert certificate_blocks(bundle) == [CERT_A, CERT_B]


@pytest.mark.parametrize("what", ["device", "folder", "fifo", "huge", "der"])
def test_files_that_are_not_pem_text(tmp_path: Path, what: str) -> None:
    path = {"device": Path("/dev/zero"), "folder": tmp_path, "fifo": tmp_path / "fifo",
            "huge": tmp_path / "huge.pem", "der": tmp_path / "ca.der"}[what]
    if what == "fifo":
        os.mkfifo(path)
    elif what == "huge":
        path.write_text(CERT_A * (MAX_BYTES // len(CERT_A) + 1))
    elif what == "der":
        path.write_bytes(DER_A)
    words = {"device": "not a regular file", "folder": "not a regular file",
             "fifo": "not a regular file", "huge": "larger than 4 MiB",
             "der": "not a PEM text file"}[what]
    with pytest.raises(NotCertificates, match=words):
        read_certificates(path)


def test_a_missing_file_is_left_to_the_build(tmp_path: Path) -> None:
    """A teammate without the file can still list and plan other things; the build says."""
    file = PaudeFile.model_validate({"sessions": {"demo": {"image": {
        "ca_certificates": [str(tmp_path / "not-here.pem")]}}}})
    with pytest.raises(ConfigError, match=r"image\.ca_certificates\.0: cannot read"):
        ca_files(resolve(file, "demo"))


def test_a_file_that_changes_after_loading_is_checked_again(user: Path, tmp_path: Path) -> None:
    cert = tmp_path / "corp-ca.pem"
    cert.write_text(CERT_A)
    session = resolve(load_paude_file(definition(tmp_path / "repo", str(cert))), "demo")
    cert.write_text(CERT_A + (user / ".ssh" / "id_ecdsa").read_text())
    with pytest.raises(ConfigError, match=r"image\.ca_certificates\.0: .* holds a PRIVATE KEY"):
        ca_files(session)
