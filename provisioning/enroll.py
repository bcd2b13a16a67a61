"""The station's side of enrollment: its own key, a CSR, the token, and what comes back.

:func:`enroll` makes the station's key pair in the station directory (mode 0600; it never leaves
the station), sends a CSR with the one-time token to the fleet's ``POST /enroll`` and installs the
answer: the client certificate, the fleet CA, the fleet's configuration-signing key (pinned: a
different key later is refused) and the broker's address in the configuration's ``[uplink]``,
validated as the agent validates it. Offline: :func:`make_bundle` at the office puts the
configuration and the token in one file; :func:`apply_bundle` in the field writes the
configuration, makes the key and leaves a pending enrollment that :func:`complete_pending`
finishes when the station first reaches the fleet (``roadside-enroll.timer`` retries it).
"""

from __future__ import annotations

import json
import os
import re
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.config import StationConfig, load_config
from agent.errors import ConfigError
from provisioning.commission import write_config

KEY_NAME, CERT_NAME, CA_NAME, FLEET_KEY_NAME = "station.key", "station.crt", "ca.crt", "fleet.pub"
PENDING_NAME = "pending-enrollment.json"
BUNDLE_KIND = "roadside-station-bundle/1"


class EnrollFailed(Exception):
    """Enrollment did not complete; ``exit_code`` 1 (fleet refused or unreachable) or 2 (input)."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Enrolled:
    station: str
    certificate: Path
    broker: str
    fleet_key: Path


def station_key(directory: Path) -> ec.EllipticCurvePrivateKey:
    """The station's private key in ``directory``, made (0600) on first use."""
    path = Path(directory) / KEY_NAME
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise EnrollFailed(f"{path}: not an EC private key", 2)
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return key


def make_csr(key: ec.EllipticCurvePrivateKey, station: str) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, station)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def request_certificate(
    fleet_url: str, token: str, csr: str, *, cafile: Path | None = None, timeout_s: float = 30.0
) -> dict[str, Any]:
    """POST the CSR and token to ``fleet_url``/enroll; the fleet's answer, or EnrollFailed."""
    url = fleet_url.rstrip("/") + "/enroll"
    body = json.dumps({"token": token, "csr": csr}).encode()
    req = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    context = ssl.create_default_context(cafile=str(cafile)) if cafile else None
    try:
        with urllib.request.urlopen(req, timeout=timeout_s, context=context) as resp:
            doc: dict[str, Any] = json.loads(resp.read())
            return doc
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", exc.reason)
        except ValueError:
            detail = exc.reason
        raise EnrollFailed(f"{url}: the fleet refused the enrollment: {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EnrollFailed(f"{url}: fleet unreachable: {reason}") from None


def _uplink_toml(values: dict[str, Any]) -> str:
    lines = ["[uplink]  # written by roadside-provision enroll"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def with_uplink(text: str, values: dict[str, Any]) -> str:
    """Configuration text with its ``[uplink]`` table replaced by ``values``."""
    out: list[str] = []
    skipping = False
    for line in text.splitlines():
        header = re.match(r"^\s*\[+\s*([A-Za-z0-9_.-]+)\s*\]+", line)
        if header:
            skipping = header.group(1) == "uplink" or header.group(1).startswith("uplink.")
        if not skipping:
            out.append(line)
    return "\n".join(out).rstrip("\n") + "\n\n" + _uplink_toml(values)


def install_answer(
    answer: dict[str, Any], directory: Path, config_path: Path, *, repin: bool = False
) -> Enrolled:
    """Write the certificate, CA and pinned fleet key; point the configuration's uplink at them."""
    directory = Path(directory)
    config = load_config(config_path)
    if answer.get("station") != config.station_id:
        raise EnrollFailed(
            f"fleet answered for {answer.get('station')!r}, this is {config.station_id!r}"
        )
    pinned = directory / FLEET_KEY_NAME
    if pinned.exists() and not repin and pinned.read_text() != answer["fleet_key"]:
        raise EnrollFailed(
            f"{pinned}: the fleet's signing key changed; refusing it (--repin to accept)"
        )
    for name, text in (
        (CERT_NAME, answer["certificate"]),
        (CA_NAME, answer["ca"]),
        (FLEET_KEY_NAME, answer["fleet_key"]),
    ):
        tmp = directory / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(directory / name)
    broker = answer["broker"]
    values = {
        **{k: v for k, v in config.uplink.items() if k not in ("host", "port")},
        "host": broker["host"],
        "port": int(broker["port"]),
        "ca": str(directory / CA_NAME),
        "cert": str(directory / CERT_NAME),
        "key": str(directory / KEY_NAME),
        "fleet_key": str(pinned),
    }
    text = with_uplink(Path(config_path).read_text(encoding="utf-8"), values)
    try:
        write_config(Path(config_path), text)
    except ConfigError as exc:
        raise EnrollFailed(str(exc), 2) from None
    where = f"{broker['host']}:{broker['port']}"
    return Enrolled(config.station_id, directory / CERT_NAME, where, pinned)


def _config(config_path: Path) -> StationConfig:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise EnrollFailed(str(exc), 2) from None


def enroll(
    config_path: Path,
    fleet_url: str,
    token: str,
    directory: Path,
    *,
    cafile: Path | None = None,
    repin: bool = False,
) -> Enrolled:
    """Enroll the station of ``config_path`` now (online)."""
    config = _config(config_path)
    csr = make_csr(station_key(directory), config.station_id)
    answer = request_certificate(fleet_url, token, csr, cafile=cafile)
    return install_answer(answer, directory, config_path, repin=repin)


# -- offline ------------------------------------------------------------------------------------
def make_bundle(config_path: Path, fleet_url: str, token: str, out: Path) -> Path:
    """One file for one station: its configuration, the fleet's address and the token."""
    config = _config(config_path)
    doc = {
        "kind": BUNDLE_KIND,
        "station": config.station_id,
        "config": Path(config_path).read_text(encoding="utf-8"),
        "fleet": fleet_url,
        "token": token,
    }
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the token is a secret
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)
    return Path(out)


def apply_bundle(bundle: Path, config_path: Path, directory: Path) -> str:
    """In the field: write the bundle's configuration, make the key, leave enrollment pending."""
    try:
        doc = json.loads(Path(bundle).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EnrollFailed(f"{bundle}: not a station bundle: {exc}", 2) from None
    if not isinstance(doc, dict) or doc.get("kind") != BUNDLE_KIND:
        raise EnrollFailed(f"{bundle}: not a station bundle (kind {BUNDLE_KIND})", 2)
    try:
        config = write_config(Path(config_path), doc["config"])
    except ConfigError as exc:
        raise EnrollFailed(f"{bundle}: its configuration: {exc}", 2) from None
    csr = make_csr(station_key(directory), config.station_id)
    pending = {"fleet": doc["fleet"], "token": doc["token"], "csr": csr, "config": str(config_path)}
    fd = os.open(Path(directory) / PENDING_NAME, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(pending, f)
    return config.station_id


def complete_pending(directory: Path, *, cafile: Path | None = None) -> Enrolled | None:
    """Finish a pending enrollment if there is one (None: nothing pending)."""
    path = Path(directory) / PENDING_NAME
    if not path.exists():
        return None
    pending = json.loads(path.read_text(encoding="utf-8"))
    kept = path.with_name(path.name + ".answer")  # the token works once: keep what it bought
    if kept.exists():
        answer = json.loads(kept.read_text(encoding="utf-8"))
    else:
        answer = request_certificate(
            pending["fleet"], pending["token"], pending["csr"], cafile=cafile
        )
        tmp = kept.with_suffix(".tmp")
        tmp.write_text(json.dumps(answer), encoding="utf-8")
        tmp.replace(kept)
    done = install_answer(answer, directory, Path(pending["config"]))
    path.unlink()
    kept.unlink()
    return done
