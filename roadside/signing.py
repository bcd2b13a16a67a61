"""Ed25519 signatures over configuration documents, so a compromised broker cannot forge one.

A document is a JSON object; its *canonical bytes* are compact JSON with sorted keys and UTF-8
text, NaN refused. The fleet signs those bytes with its private key; a station verifies
with the public key it received at provisioning. The signed envelope travels as JSON::

    {"doc": {...}, "sig": "<base64 signature>", "key": "<key id>"}

``key`` is the first 16 hex digits of the SHA-256 of the raw public key, so a station can say
which key it expected when a signature fails. :func:`document_hash` (SHA-256 of the canonical
bytes, hex) is what acks and status messages carry as the configuration hash.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


class SignatureError(ValueError):
    """A signed envelope is missing, malformed or does not verify (message says which)."""


def canonical_bytes(doc: dict[str, Any]) -> bytes:
    """Deterministic bytes of a JSON document: sorted keys, no spaces, UTF-8, no NaN."""
    try:
        return json.dumps(
            doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
    except (TypeError, ValueError) as exc:
        raise SignatureError(f"document is not plain JSON: {exc}") from None


def document_hash(doc: dict[str, Any]) -> str:
    """Hex SHA-256 of the canonical bytes."""
    return hashlib.sha256(canonical_bytes(doc)).hexdigest()


def generate_key() -> Ed25519PrivateKey:
    """A new signing key."""
    return Ed25519PrivateKey.generate()


def key_id(public: Ed25519PublicKey) -> str:
    """Short id of a public key (16 hex digits of its SHA-256)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(doc: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """Signed envelope ``{"doc", "sig", "key"}`` for ``doc``."""
    sig = key.sign(canonical_bytes(doc))
    return {"doc": doc, "sig": base64.b64encode(sig).decode(), "key": key_id(key.public_key())}


def verify(envelope: Any, public: Ed25519PublicKey) -> dict[str, Any]:
    """Return the document inside ``envelope`` if its signature verifies with ``public``.

    Raises :class:`SignatureError` naming the problem: not an envelope, unsigned, undecodable
    signature, signed by another key, or a signature that does not match the bytes.
    """
    if not isinstance(envelope, dict) or not isinstance(envelope.get("doc"), dict):
        raise SignatureError("not a signed document: expected an object with 'doc' and 'sig'")
    sig_text = envelope.get("sig")
    if not sig_text:
        raise SignatureError("unsigned document: 'sig' is missing")
    try:
        sig = base64.b64decode(str(sig_text), validate=True)
    except ValueError:
        raise SignatureError("signature is not base64") from None
    expected = key_id(public)
    try:
        public.verify(sig, canonical_bytes(envelope["doc"]))
    except InvalidSignature:
        got = envelope.get("key", "?")
        who = f"signed by key {got}, expected {expected}" if got != expected else "tampered"
        raise SignatureError(f"bad signature ({who})") from None
    return dict(envelope["doc"])


def encode_envelope(envelope: dict[str, Any]) -> bytes:
    """Envelope as the JSON bytes published on a config topic."""
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()


def decode_envelope(data: bytes | bytearray) -> Any:
    """Parse published bytes into an envelope (verification is :func:`verify`'s job)."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SignatureError(f"config payload is not JSON: {exc}") from None


# ---------------------------------------------------------------- key files (PEM)


def save_private_key(key: Ed25519PrivateKey, path: Path) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM, mode 0600."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def save_public_key(public: Ed25519PublicKey, path: Path) -> None:
    """Write ``public`` as SubjectPublicKeyInfo PEM."""
    path.write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read an Ed25519 private key PEM; :class:`SignatureError` names the file on failure."""
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SignatureError(f"{path}: cannot read signing key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{path}: not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Read an Ed25519 public key PEM; :class:`SignatureError` names the file on failure."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise SignatureError(f"{path}: cannot read public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{path}: not an Ed25519 public key")
    return key
