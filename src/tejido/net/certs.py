"""Certificates for mutual TLS: a cluster CA, and node and client certificates it signs.

Layout of a certificate directory (what `TLSConfig.from_dir` reads)::

    DIR/ca.pem  DIR/ca.key          the cluster's CA (keep ca.key off the nodes if you can)
    DIR/NAME.pem  DIR/NAME.key      one endpoint: a node (``n1``) or a client (``client``)

Rules:

1. Keys are ECDSA P-256; private keys are written with mode 0600, never overwritten.
2. Every issued certificate names its endpoint in the subject common name and as a DNS
   subject alternative name, plus every ``--ip``/``--dns`` given, so a dialler checking the
   host name of ``127.0.0.1`` or ``node1.example`` finds it. It is valid for both server
   and client authentication: a node accepts connections and dials its peers.
3. The CA certificate is a CA (basic constraints ``ca=True, path_length=0``) and signs only
   leaf certificates.

Needs the optional ``cryptography`` package (``pip install tejido[tls]``); it is imported
only when a certificate is made, and its absence is reported with that command.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from tejido.core.errors import BadInput

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey

__all__ = ["MissingCryptography", "init_ca", "issue", "self_signed"]


class MissingCryptography(BadInput):
    """The ``cryptography`` package is not installed."""


def _require_cryptography() -> None:
    try:
        import cryptography  # noqa: F401
    except ImportError:
        raise MissingCryptography(
            "making certificates needs the `cryptography` package: pip install tejido[tls]"
        ) from None


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_pem(key: EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization as s

    return key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption())


def _refuse_existing(*paths: Path) -> None:
    for path in paths:
        if path.exists():
            raise BadInput(f"{str(path)!r} already exists; refusing to overwrite it")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)


def init_ca(directory: str | Path, cluster: str = "tejido", *, days: int = 3650) -> Path:
    """Create ``DIR/ca.pem`` and ``DIR/ca.key`` for a new cluster CA; returns ca.pem's path."""
    _require_cryptography()
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    base = Path(directory)
    base.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = base / "ca.pem", base / "ca.key"
    _refuse_existing(cert_path, key_path)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{cluster} cluster CA")])
    start = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path


def _sans(name: str, ips: Sequence[str], dns: Sequence[str]) -> x509.SubjectAlternativeName:
    from cryptography import x509

    entries: list[x509.GeneralName] = [x509.DNSName(name)]
    entries.extend(x509.DNSName(d) for d in dns if d != name)
    for ip in ips:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError:
            raise BadInput(f"--ip {ip!r} is not an IP address") from None
    return x509.SubjectAlternativeName(entries)


def _leaf(
    name: str,
    key: EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: EllipticCurvePrivateKey,
    ips: Sequence[str],
    dns: Sequence[str],
    days: int,
) -> x509.Certificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    start = _now()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_sans(name, ips, dns), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )


def _check_name(name: str) -> None:
    if not name or not all(ch.isalnum() or ch in "-_." for ch in name) or name == "ca":
        raise BadInput(
            f"certificate name {name!r} must be letters, digits, '-', '_' or '.' (and not 'ca')"
        )


def issue(
    directory: str | Path,
    name: str,
    *,
    ips: Sequence[str] = ("127.0.0.1",),
    dns: Sequence[str] = ("localhost",),
    days: int = 825,
) -> Path:
    """Issue ``DIR/NAME.pem`` and ``DIR/NAME.key`` signed by the CA in DIR; returns NAME.pem."""
    _require_cryptography()
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    _check_name(name)
    base = Path(directory)
    ca_cert_path, ca_key_path = base / "ca.pem", base / "ca.key"
    for path in (ca_cert_path, ca_key_path):
        if not path.is_file():
            raise BadInput(
                f"no CA in {str(base)!r}: {path.name} is missing (run `tejido certs init`)"
            )
    cert_path, key_path = base / f"{name}.pem", base / f"{name}.key"
    _refuse_existing(cert_path, key_path)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise BadInput(f"{str(ca_key_path)!r} is not an ECDSA key made by `tejido certs init`")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _leaf(name, key, ca_cert.subject, ca_key, ips, dns, days)
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path


def self_signed(
    directory: str | Path,
    name: str,
    *,
    ips: Sequence[str] = ("127.0.0.1",),
    dns: Sequence[str] = ("localhost",),
    days: int = 30,
) -> Path:
    """A certificate signed by its own key (no CA): what an impostor would present."""
    _require_cryptography()
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    _check_name(name)
    base = Path(directory)
    base.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = base / f"{name}.pem", base / f"{name}.key"
    _refuse_existing(cert_path, key_path)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = _leaf(name, key, subject, key, ips, dns, days)
    _write_private(key_path, _key_pem(key))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path
