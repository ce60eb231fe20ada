"""A local certificate authority for ``skymesh up --tls``: one CA, one server certificate.

Real S3 clients talk HTTPS, and over HTTPS boto3 sends UNSIGNED-PAYLOAD bodies instead
of SHA-256-hashing every byte for the signature, which on a CPU without SHA
instructions costs the client and the gateway as much as the rest of a PUT. A network
on loopback has no public name a public CA would certify, so ``up --tls`` makes its
own CA once under the network home; clients trust ``ca.pem`` (``AWS_CA_BUNDLE``).

The files stay between starts, so a client told to trust ``ca.pem`` keeps trusting
it; they are made again only when missing, close to expiry, or (the server
certificate) no longer covering the hosts asked for. Keys are ECDSA P-256 and
owner-only on disk.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from skymesh.private import private_dir, write_private

VALIDITY = dt.timedelta(days=365)
# made again when less than this is left, so a long-running network does not expire
RENEW_BEFORE = dt.timedelta(days=7)


@dataclass(frozen=True)
class LocalTls:
    """Where one network's TLS files are."""

    ca: Path  # what clients trust: AWS_CA_BUNDLE, ``aws --ca-bundle``, boto3 ``verify=``
    cert: Path  # the gateway's certificate (GatewayConfig.tls_cert)
    key: Path  # the gateway's private key (GatewayConfig.tls_key), owner-only


def ensure_local_tls(directory: Path, hosts: Sequence[str]) -> LocalTls:
    """The CA and a server certificate for ``hosts`` (names or IP addresses) in ``directory``,
    reused when still good, else made anew."""
    files = LocalTls(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    private_dir(directory)
    ca_key_path = directory / "ca-key.pem"
    now = dt.datetime.now(dt.UTC)
    ca = _load_cert(files.ca)
    if ca is None or not ca_key_path.exists() or _expiring(ca, now):
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _make_ca(ca_key, now)
        _write(ca_key_path, _key_pem(ca_key), private=True)
        _write(files.ca, ca.public_bytes(serialization.Encoding.PEM))
    server = _load_cert(files.cert)
    if server is None or not files.key.exists() or not _serves(server, ca, hosts, now):
        signer = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
        assert isinstance(signer, ec.EllipticCurvePrivateKey)
        key = ec.generate_private_key(ec.SECP256R1())
        server = _make_server(key, ca, signer, hosts, now)
        _write(files.key, _key_pem(key), private=True)
        _write(files.cert, server.public_bytes(serialization.Encoding.PEM))
    return files


def _load_cert(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _expiring(cert: x509.Certificate, now: dt.datetime) -> bool:
    return cert.not_valid_after_utc - now < RENEW_BEFORE or cert.not_valid_before_utc > now


def _serves(
    cert: x509.Certificate, ca: x509.Certificate, hosts: Sequence[str], now: dt.datetime
) -> bool:
    """Still valid, issued by this CA, and naming every host."""
    if _expiring(cert, now):
        return False
    try:
        cert.verify_directly_issued_by(ca)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, x509.ExtensionNotFound, InvalidSignature):
        return False
    return all(_general_name(h) in names for h in hosts)


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _make_ca(key: ec.EllipticCurvePrivateKey, now: dt.datetime) -> x509.Certificate:
    # a random suffix: two networks' CAs never share a name a client could confuse
    name = _name(f"skymesh local CA {secrets.token_hex(4)}")
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )


def _make_server(
    key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    hosts: Sequence[str],
    now: dt.datetime,
) -> x509.Certificate:
    public = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0] if hosts else "skymesh gateway"))
        .issuer_name(ca.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + VALIDITY, ca.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([_general_name(h) for h in hosts]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Atomically, so that a crash never leaves half a key; keys readable by the owner only
    (created so), certificates by anyone who may enter the folder."""
    write_private(path, data, mode=0o600 if private else 0o644)
