"""CA certificate files for the images: only certificates leave the host.

image.ca_certificates names files on the host, in paude.yaml, which the agent can write: a
path such as ~/.ssh/id_rsa must not carry the key into the agent's own image. A file is
accepted only when every PEM block in it is a certificate, and only the certificates are
copied, re-encoded from their bytes (no text of the file comes along)."""

from __future__ import annotations

import base64
import binascii
import re
import stat
from pathlib import Path

# A corporate bundle is a few hundred kilobytes; a larger "certificate file" is a mistake.
MAX_BYTES = 4 << 20
_BEGIN = re.compile(r"-----BEGIN ([^-\r\n]*)-----")
_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END ([^-\r\n]*)-----", re.S)
_LINE = 64


class NotCertificates(ValueError):
    """The file is not (only) PEM certificates; the message says what it is instead."""


def read_certificates(path: Path) -> list[str]:
    """The certificates in a PEM file, each as its own canonical PEM text.

    Raises FileNotFoundError when nothing is there, NotCertificates for anything else that
    is not a file of certificates."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise NotCertificates(f"cannot be read: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise NotCertificates("is not a regular file")
    if info.st_size > MAX_BYTES:
        raise NotCertificates(f"is larger than {MAX_BYTES >> 20} MiB")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise NotCertificates(f"cannot be read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise NotCertificates("is not a PEM text file (a DER certificate? convert it with "
                              "`openssl x509 -inform der -in FILE -out FILE.pem`)") from None
    return certificate_blocks(text)


def certificate_blocks(text: str) -> list[str]:
    """Each certificate of a PEM text; NotCertificates when any other PEM block is there
    (a private key, say) or a certificate block is not well formed."""
    labels = _BEGIN.findall(text)
    others = sorted({label for label in labels if label != "CERTIFICATE"})
    if others:
        raise NotCertificates(f"holds a {others[0]} block, and a certificate file holds "
                              "nothing but certificates")
    blocks = []
    for match in _BLOCK.finditer(text):
        body, end = match.groups()
        if end != "CERTIFICATE":
            raise NotCertificates(f"has a CERTIFICATE block that ends as {end}")
        blocks.append(_pem(_der(body)))
    if len(blocks) != len(labels):
        raise NotCertificates("has a CERTIFICATE block without its END line")
    if not blocks:
        raise NotCertificates("holds no PEM certificate")
    return blocks


def _der(body: str) -> bytes:
    """A block's bytes, checked to be one DER SEQUENCE holding a SEQUENCE, as every X.509
    certificate is."""
    try:
        der = base64.b64decode("".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        raise NotCertificates("has a CERTIFICATE block that is not base64") from None
    if len(der) < 4 or der[0] != 0x30:
        raise NotCertificates("has a CERTIFICATE block that is not a certificate")
    size, header = der[1], 2
    if size & 0x80:
        count = size & 0x7F
        if not 1 <= count <= 4 or len(der) < 2 + count:
            raise NotCertificates("has a CERTIFICATE block that is not a certificate")
        size, header = int.from_bytes(der[2:2 + count], "big"), 2 + count
    if header + size != len(der) or header >= len(der) or der[header] != 0x30:
        raise NotCertificates("has a CERTIFICATE block that is not a certificate")
    return der


def _pem(der: bytes) -> str:
    encoded = base64.b64encode(der).decode("ascii")
    lines = [encoded[i:i + _LINE] for i in range(0, len(encoded), _LINE)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


# Where hosts keep the CA certificates they trust beyond the system's standard roots:
# Debian/Ubuntu (update-ca-certificates), Fedora/RHEL and Arch (update-ca-trust).
HOST_CA_DIRS = ("/usr/local/share/ca-certificates", "/etc/pki/ca-trust/source/anchors",
                "/etc/ca-certificates/trust-source/anchors")


def host_certificate_files(dirs: tuple[str, ...] | None = None) -> list[str]:
    """The certificate files this host adds to its trust store, in a stable order (their
    text is hashed into image tags)."""
    found: list[str] = []
    for folder in HOST_CA_DIRS if dirs is None else dirs:
        root = Path(folder)
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if path.suffix in (".crt", ".pem") and path.is_file():
                found.append(str(path))
    return found
