"""A throw-away certificate authority for tests, demos and benchmarks (``cryptography`` only).

The CA signs one server certificate (``localhost`` / 127.0.0.1) and one client certificate per
identity; the client certificate's CN is the identity the broker uses as user name
(``use_identity_as_username``), so a station's CN is its station id and the controller's CN is
``fleet-controller``. Keys are EC P-256: fast enough to issue a thousand client certificates.

Not for production keys: they are written unencrypted. ``crl()`` is the (empty) revocation
list the broker reads; :class:`fleet.enroll.Enrollment` over the same directory revokes into it.

    python -m sim.pki DIR st-001 st-002 fleet-controller
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CONTROLLER_IDENTITY = "fleet-controller"
VALID_DAYS = 30


@dataclass(frozen=True)
class ClientFiles:
    """PEM files a client presents: its certificate and key, and the CA to check the server."""

    ca: Path
    cert: Path
    key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


class TestPKI:
    """A CA in ``directory`` (created if needed) that issues server and client certificates."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        # called with each client identity handed out (a running test broker registers it)
        self.listeners: list[Callable[[str], None]] = []
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca = self.dir / "ca.crt"
        ca_key = self.dir / "ca.key"
        if self.ca.exists():
            loaded = serialization.load_pem_private_key(ca_key.read_bytes(), password=None)
            assert isinstance(loaded, ec.EllipticCurvePrivateKey)
            self._ca_key = loaded
            self._ca_cert = x509.load_pem_x509_certificate(self.ca.read_bytes())
        else:
            self._ca_key = ec.generate_private_key(ec.SECP256R1())
            now = dt.datetime.now(dt.UTC)
            self._ca_cert = (
                x509.CertificateBuilder()
                .subject_name(_name("Roadside test CA"))
                .issuer_name(_name("Roadside test CA"))
                .public_key(self._ca_key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5))
                .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        key_cert_sign=True,
                        crl_sign=True,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .sign(self._ca_key, hashes.SHA256())
            )
            _write_key(self._ca_key, ca_key)
            self.ca.write_bytes(self._ca_cert.public_bytes(serialization.Encoding.PEM))

    def _issue(self, cn: str, *, server: bool) -> ClientFiles:
        cert_path, key_path = self.dir / f"{cn}.crt", self.dir / f"{cn}.key"
        if cert_path.exists() and key_path.exists():
            return ClientFiles(self.ca, cert_path, key_path)
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self._ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName(cn), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        cert = builder.sign(self._ca_key, hashes.SHA256())
        _write_key(key, key_path)
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return ClientFiles(self.ca, cert_path, key_path)

    def server(self, hostname: str = "localhost") -> ClientFiles:
        """The broker's certificate (SAN: ``hostname`` and 127.0.0.1)."""
        return self._issue(hostname, server=True)

    def client(self, identity: str) -> ClientFiles:
        """A client certificate with CN ``identity`` (issued once, then reused)."""
        files = self._issue(identity, server=False)
        for listener in list(self.listeners):
            listener(identity)
        return files

    def identities(self) -> list[str]:
        """Every client identity issued so far in this directory."""
        return sorted(
            p.stem
            for p in self.dir.glob("*.crt")
            if p.stem != "ca"
            and ExtendedKeyUsageOID.CLIENT_AUTH
            in x509.load_pem_x509_certificate(p.read_bytes())
            .extensions.get_extension_for_class(x509.ExtendedKeyUsage)
            .value
        )

    def crl(self) -> Path:
        """The CA's revocation list (``crl.pem``; an empty one is made when missing)."""
        path = self.dir / "crl.pem"
        if not path.exists():
            now = dt.datetime.now(dt.UTC)
            crl = (
                x509.CertificateRevocationListBuilder()
                .issuer_name(self._ca_cert.subject)
                .last_update(now - dt.timedelta(minutes=5))
                .next_update(now + dt.timedelta(days=VALID_DAYS))
                .sign(self._ca_key, hashes.SHA256())
            )
            path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        return path

    def foreign_client(self, identity: str) -> ClientFiles:
        """A client certificate for ``identity`` signed by a *different* CA (must be refused)."""
        other = TestPKI(self.dir / "foreign-ca")
        return other.client(identity)


@click.command("make-test-pki")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.argument("identities", nargs=-1)
@click.option("--server", default="localhost", show_default=True, help="Broker host name (CN).")
def main(directory: Path, identities: tuple[str, ...], server: str) -> None:
    """Make (or extend) a test CA in DIRECTORY: a broker certificate and one per IDENTITY.

    Identities are station ids and fleet-controller; prints the files as JSON.
    """
    pki = TestPKI(directory)
    out = {"ca": str(pki.ca), "server": _files(pki.server(server))}
    for identity in identities or (CONTROLLER_IDENTITY,):
        out[identity] = _files(pki.client(identity))
    click.echo(json.dumps(out, indent=2))


def _files(f: ClientFiles) -> dict[str, str]:
    return {"cert": str(f.cert), "key": str(f.key)}


if __name__ == "__main__":
    main()
