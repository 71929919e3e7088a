"""Mutual TLS for every tejido connection: who may talk to a cluster is decided by its CA.

A cluster has one certificate authority (``tejido certs init``). Every node and every
client holds a certificate that CA signed (``tejido certs issue``). With TLS configured:

1. The accepting side requires a client certificate and verifies it against the cluster CA
   (``CERT_REQUIRED``): a peer with no certificate, a self-signed one, or one from another
   CA fails the TLS handshake before a single tejido frame is read.
2. The connecting side verifies the server's certificate against the same CA, and (unless
   ``check_hostname`` is off) that it names the host it dialled (IP or DNS SAN).
3. Only TLS 1.2 and 1.3 are offered; the ssl module negotiates 1.3 when both sides have it.

The contexts are plain `ssl.SSLContext` objects from the standard library; certificate
*generation* lives in `tejido.net.certs` and needs the optional ``cryptography`` package.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from tejido.core.errors import BadInput

__all__ = ["TLSConfig", "peer_names"]


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """Paths to the cluster CA certificate and this endpoint's certificate and key (PEM)."""

    ca: Path
    cert: Path | None
    key: Path | None
    check_hostname: bool = True

    @classmethod
    def from_dir(
        cls, directory: str | Path, name: str, *, check_hostname: bool = True
    ) -> TLSConfig:
        """The layout ``tejido certs`` writes: ``ca.pem``, ``NAME.pem``, ``NAME.key`` in DIR."""
        base = Path(directory)
        return cls(base / "ca.pem", base / f"{name}.pem", base / f"{name}.key", check_hostname)

    def _check_files(self) -> None:
        for label, path in (
            ("CA certificate", self.ca),
            ("certificate", self.cert),
            ("key", self.key),
        ):
            if path is not None and not path.is_file():
                raise BadInput(f"TLS {label} {str(path)!r} does not exist (see `tejido certs`)")

    def _base(self, purpose: int) -> ssl.SSLContext:
        self._check_files()
        context = ssl.SSLContext(purpose)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_verify_locations(cafile=str(self.ca))
        if self.cert is not None:
            try:
                context.load_cert_chain(str(self.cert), str(self.key) if self.key else None)
            except ssl.SSLError as exc:
                raise BadInput(
                    f"TLS certificate {str(self.cert)!r} and key {str(self.key)!r} do not load "
                    f"as a pair: {exc}"
                ) from None
        return context

    def server_context(self) -> ssl.SSLContext:
        """For the accepting side: present our certificate, require one signed by the CA."""
        if self.cert is None:
            raise BadInput("a TLS server needs a certificate and key")
        context = self._base(ssl.PROTOCOL_TLS_SERVER)
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    def client_context(self) -> ssl.SSLContext:
        """For the connecting side: verify the server against the CA, present our certificate."""
        context = self._base(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = self.check_hostname
        context.verify_mode = ssl.CERT_REQUIRED
        return context


def peer_names(peercert: object) -> list[str]:
    """The common name and DNS names of a verified peer certificate (``getpeercert()`` dict)."""
    if not isinstance(peercert, dict):
        return []
    names: list[str] = []
    for rdn in peercert.get("subject", ()):
        for attr, value in rdn:
            if attr == "commonName":
                names.append(value)
    for kind, value in peercert.get("subjectAltName", ()):
        if kind == "DNS":
            names.append(value)
    return list(dict.fromkeys(names))
