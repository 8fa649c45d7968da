"""The session's TLS inspection CA as a Pulumi dynamic resource.

The proxy decrypts the hosts that carry method/path rules with certificates it signs with
this CA. The key is made once per session, kept in state as a secret, and handed only to
the proxy; the agent trusts the certificate. Module path and class names are stored in
stack state: add, never rename."""

from __future__ import annotations

import datetime
from typing import Any

from pulumi import Input, Output, ResourceOptions
from pulumi.dynamic import CreateResult, DiffResult, ReadResult, Resource, ResourceProvider

# Long enough that no session outlives it; a new CA replaces the agent's trust, so it is
# never rotated behind the user's back.
VALIDITY_DAYS = 3650


def make_ca(session: str) -> tuple[str, str]:
    """A fresh P-256 CA for `session`: (certificate PEM, private key PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME,
                                         f"paude {session} egress inspection CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=VALIDITY_DAYS))
        # pathlen 0: it signs the proxy's host certificates and no other CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return cert_pem, key_pem


class SessionCAProvider(ResourceProvider):
    """Makes the CA at create; nothing outside state holds it, so read changes nothing."""

    serialize_as_secret_always = False

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Generate the key pair and certificate."""
        cert_pem, key_pem = make_ca(props["session"])
        return CreateResult(f"ca-{props['session']}",
                            {**props, "cert_pem": cert_pem, "key_pem": key_pem})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """State is the only copy: what it holds is what exists."""
        return ReadResult(id_, props)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Only another session's name would need another CA."""
        changed = olds.get("session") != news.get("session")
        return DiffResult(changes=changed, replaces=["session"] if changed else [],
                          stables=["cert_pem", "key_pem"], delete_before_replace=True)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Nothing outside state to remove."""


class SessionCA(Resource, module="paude", name="SessionCA"):
    """The session's inspection CA; key_pem is a secret output."""

    cert_pem: Output[str]
    key_pem: Output[str]

    def __init__(self, name: str, props: dict[str, Input[Any]],
                 opts: ResourceOptions | None = None) -> None:
        secret = ResourceOptions(additional_secret_outputs=["key_pem"])
        super().__init__(SessionCAProvider(), name,
                         {**props, "cert_pem": None, "key_pem": None},
                         ResourceOptions.merge(opts, secret) if opts else secret)
