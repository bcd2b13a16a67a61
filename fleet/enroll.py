"""Station enrollment: the fleet's CA, one-time expiring tokens, and revocation through a CRL.

An operator creates a token for one station id (``POST /enroll/tokens``); the station makes its
key pair itself and sends a CSR with the token (``POST /enroll``, authenticated by the token alone).
The token works once and until it expires; the CSR's CN must be the token's station. Back go the
client certificate signed by the fleet CA, the CA certificate, the broker's address and the fleet's
configuration-signing public key (which the station pins). Revoking a station
(``POST /enroll/revoke/{station}``) adds its certificates to the CRL file Mosquitto reads
(``crlfile``); the broker refuses them from its next reload on.

State (tokens as SHA-256 digests, issued serials, revocations) is a SQLite file beside the CA key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from fleet.auth import Principal, api_error, require
from fleet.errors import FleetError
from roadside.clock import Clock, SystemClock

CERT_DAYS = 365
DEFAULT_TOKEN_TTL_S = 7 * 86400
STATION_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    digest TEXT PRIMARY KEY, station TEXT NOT NULL, created REAL NOT NULL, expires REAL NOT NULL,
    used REAL, created_by TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS certs (
    serial TEXT PRIMARY KEY, station TEXT NOT NULL, issued REAL NOT NULL, revoked REAL);
"""


class EnrollError(FleetError):
    """An enrollment refused; ``status`` and ``code`` are what the API answers."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Issued:
    station: str
    certificate: str  # PEM
    ca: str  # PEM
    serial: str


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Enrollment:
    """The fleet CA in ``directory`` (``ca.crt``, ``ca.key``; made when missing) and its records."""

    def __init__(self, directory: Path, clock: Clock | None = None) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.clock = clock or SystemClock()
        self.ca_path, self.key_path = self.dir / "ca.crt", self.dir / "ca.key"
        self.crl_path = self.dir / "crl.pem"
        if not self.ca_path.exists():
            self._make_ca()
        loaded = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        if not isinstance(loaded, ec.EllipticCurvePrivateKey):
            raise FleetError(f"{self.key_path}: expected an EC private key")
        self._key = loaded
        self._ca = x509.load_pem_x509_certificate(self.ca_path.read_bytes())
        self._db = sqlite3.connect(
            self.dir / "enroll.db", isolation_level=None, check_same_thread=False
        )
        self._db.executescript(SCHEMA)
        if not self.crl_path.exists():
            self.write_crl()

    def _now(self) -> dt.datetime:
        return self.clock.now()

    def _make_ca(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        now = self._now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name("Roadside fleet CA"))
            .issuer_name(_name("Roadside fleet CA"))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=10 * 365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(key, hashes.SHA256())
        )
        self.key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.key_path.chmod(0o600)
        self.ca_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    @property
    def ca_pem(self) -> str:
        return self._ca.public_bytes(serialization.Encoding.PEM).decode()

    # -- tokens --------------------------------------------------------------------------------
    def create_token(self, station: str, ttl_s: float, created_by: str) -> tuple[str, dt.datetime]:
        """A new one-time token for ``station``, valid ``ttl_s`` seconds: (token, expiry)."""
        token = secrets.token_urlsafe(32)
        now = self._now().timestamp()
        self._db.execute(
            "INSERT INTO tokens VALUES (?, ?, ?, ?, NULL, ?)",
            (_digest(token), station, now, now + ttl_s, created_by),
        )
        return token, dt.datetime.fromtimestamp(now + ttl_s, dt.UTC)

    def _redeem(self, token: str) -> str:
        """Mark ``token`` used (atomically) and return its station; refuse replay and expiry."""
        digest, now = _digest(token), self._now().timestamp()
        row = self._db.execute(
            "SELECT station, expires, used FROM tokens WHERE digest = ?", (digest,)
        ).fetchone()
        if row is None:
            raise EnrollError(401, "enroll_token_unknown", "enrollment token not recognised")
        station, expires, used = row
        if used is not None:
            when = dt.datetime.fromtimestamp(used, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
            raise EnrollError(
                409, "enroll_token_used", f"enrollment token for {station} already used at {when}"
            )
        if now >= expires:
            when = dt.datetime.fromtimestamp(expires, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
            raise EnrollError(
                410, "enroll_token_expired", f"enrollment token for {station} expired at {when}"
            )
        claimed = self._db.execute(
            "UPDATE tokens SET used = ? WHERE digest = ? AND used IS NULL", (now, digest)
        ).rowcount
        if claimed != 1:  # another request redeemed it between our read and our write
            raise EnrollError(
                409, "enroll_token_used", f"enrollment token for {station} already used"
            )
        return str(station)

    # -- certificates --------------------------------------------------------------------------
    def enroll(self, token: str, csr_pem: str) -> Issued:
        """Check the CSR, redeem the token, sign the station's certificate."""
        try:
            csr = x509.load_pem_x509_csr(csr_pem.encode())
        except ValueError:
            raise EnrollError(
                422, "bad_csr", "csr: not a PEM certificate signing request"
            ) from None
        if not csr.is_signature_valid:
            raise EnrollError(422, "bad_csr", "csr: signature does not match its key")
        if not isinstance(csr.public_key(), ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey):
            raise EnrollError(422, "bad_csr", "csr: expected an EC or Ed25519 key")
        cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        cn = str(cns[0].value) if cns else ""
        station = self._redeem(token)
        if cn != station:
            raise EnrollError(
                422, "csr_station_mismatch", f"csr: CN {cn!r} but the token is for {station!r}"
            )
        now = self._now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(station))
            .issuer_name(self._ca.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        serial = f"{cert.serial_number:x}"
        self._db.execute(
            "INSERT INTO certs VALUES (?, ?, ?, NULL)", (serial, station, now.timestamp())
        )
        pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        return Issued(station, pem, self.ca_pem, serial)

    def release(self, token: str) -> None:
        """Make a redeemed ``token`` usable again (its certificate never reached the station,
        e.g. the broker could not admit it), keeping its expiry."""
        self._db.execute("UPDATE tokens SET used = NULL WHERE digest = ?", (_digest(token),))

    def revoke(self, station: str) -> int:
        """Revoke every certificate of ``station``; rewrite the CRL. Returns how many."""
        n = self._db.execute(
            "UPDATE certs SET revoked = ? WHERE station = ? AND revoked IS NULL",
            (self._now().timestamp(), station),
        ).rowcount
        self.write_crl()
        return int(n)

    def revoked(self) -> list[tuple[str, str, float]]:
        rows = self._db.execute(
            "SELECT serial, station, revoked FROM certs WHERE revoked IS NOT NULL ORDER BY revoked"
        ).fetchall()
        return [(str(s), str(st), float(t)) for s, st, t in rows]

    def write_crl(self) -> Path:
        """The CRL of every revoked certificate, signed by the CA, written atomically."""
        now = self._now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self._ca.subject)
            .last_update(now - dt.timedelta(minutes=5))
            .next_update(now + dt.timedelta(days=30))
        )
        for serial, _station, when in self.revoked():
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(int(serial, 16))
                .revocation_date(dt.datetime.fromtimestamp(when, dt.UTC))
                .build()
            )
        crl = builder.sign(self._key, hashes.SHA256())
        tmp = self.crl_path.with_suffix(".tmp")
        tmp.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
        tmp.replace(self.crl_path)
        return self.crl_path


@dataclass(frozen=True)
class EnrollContext:
    """What the enrollment router hands out besides the certificate (set as
    ``app.state.enrollment`` by whoever starts the API)."""

    enrollment: Enrollment
    broker_host: str
    broker_port: int
    fleet_key_pem: str  # the configuration-signing public key (PEM)
    admit: Callable[[str], None] | None = None
    """Gives the enrolled station its broker identity (the dynamic-security client and role,
    ``fleet/mosquitto/README.md``); None where the broker's admin registers stations."""


class TokenIn(BaseModel):
    station: str = Field(pattern=STATION_ID)
    ttl_s: float = Field(default=DEFAULT_TOKEN_TTL_S, gt=0, le=90 * 86400)


class EnrollIn(BaseModel):
    token: str = Field(min_length=16, max_length=256)
    csr: str = Field(min_length=1, max_length=16384)


def _context(request: Request) -> EnrollContext:
    ctx = getattr(request.app.state, "enrollment", None)
    if not isinstance(ctx, EnrollContext):
        raise api_error(503, "enrollment_unavailable", "this controller does not enroll stations")
    return ctx


def _refused(exc: EnrollError) -> Exception:
    return api_error(exc.status, exc.code, str(exc))


router = APIRouter()


@router.post("/enroll/tokens", status_code=201)
def post_token(
    req: TokenIn,
    request: Request,
    principal: Annotated[Principal, Depends(require("operator"))],
) -> dict[str, Any]:
    """Create a one-time enrollment token for one station (an operator's action)."""
    ctx = _context(request)
    token, expires = ctx.enrollment.create_token(req.station, req.ttl_s, principal.name)
    request.app.state.auth.audit(principal, "enroll_token", req.station, {"expires": str(expires)})
    return {"station": req.station, "token": token, "expires": expires.isoformat()}


@router.post("/enroll")
def post_enroll(req: EnrollIn, request: Request) -> dict[str, Any]:
    """Enroll a station: authenticated by its one-time token, answered with its certificate."""
    ctx = _context(request)
    try:
        issued = ctx.enrollment.enroll(req.token, req.csr)
    except EnrollError as exc:
        raise _refused(exc) from None
    if ctx.admit is not None:
        try:
            ctx.admit(issued.station)
        except FleetError as exc:  # the broker is down or refused: the station may try again
            ctx.enrollment.release(req.token)
            raise api_error(503, "broker_admission_failed", str(exc)) from None
    return {
        "station": issued.station,
        "certificate": issued.certificate,
        "ca": issued.ca,
        "serial": issued.serial,
        "broker": {"host": ctx.broker_host, "port": ctx.broker_port},
        "fleet_key": ctx.fleet_key_pem,
    }


@router.post("/enroll/revoke/{station}")
def post_revoke(
    station: str,
    request: Request,
    principal: Annotated[Principal, Depends(require("operator"))],
) -> dict[str, Any]:
    """Revoke a station's certificates: the broker refuses them from its next CRL reload."""
    ctx = _context(request)
    n = ctx.enrollment.revoke(station)
    request.app.state.auth.audit(principal, "enroll_revoke", station, {"certificates": n})
    return {"station": station, "revoked": n, "crl": str(ctx.enrollment.crl_path)}


def attach(
    app: Any,
    directory: Path,
    broker: tuple[str, int],
    signer: ed25519.Ed25519PrivateKey,
    admit: Callable[[str], None] | None = None,
) -> Enrollment:
    """Serve enrollment on ``app`` with the CA in ``directory``; stations get ``broker`` and the
    public half of ``signer`` (the configuration-signing key) to pin, and are admitted at the
    broker by ``admit`` (:meth:`fleet.broker_admin.BrokerAdmin.admit`) before they get their
    certificate."""
    enrollment = Enrollment(directory)
    pem = signer.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    app.state.enrollment = EnrollContext(
        enrollment, broker[0], broker[1], pem.decode(), admit=admit
    )
    return enrollment
