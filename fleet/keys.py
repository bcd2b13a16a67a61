"""The controller's Ed25519 signing key: generate once, keep the private half, hand out the public.

``roadside-fleet keygen DIR`` writes ``DIR/fleet-signing.key`` (PKCS#8 PEM, mode 0600) and
``DIR/fleet-signing.pub`` (the file provisioning copies onto every station). The controller loads
the private key at start; signing itself is :mod:`roadside.signing`.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from fleet.errors import KeyFileError
from roadside import signing

PRIVATE_NAME = "fleet-signing.key"
PUBLIC_NAME = "fleet-signing.pub"


@dataclass(frozen=True)
class KeyPair:
    """Where a generated key pair was written, and its id."""

    private: Path
    public: Path
    key_id: str


def generate_keypair(directory: Path, *, force: bool = False) -> KeyPair:
    """Write a new signing key pair into ``directory``; refuse to overwrite unless ``force``."""
    directory = Path(directory)
    private, public = directory / PRIVATE_NAME, directory / PUBLIC_NAME
    if not directory.is_dir():
        raise KeyFileError(f"{directory}: no such directory")
    if private.exists() and not force:
        raise KeyFileError(f"{private}: already exists (use --force to replace the fleet's key)")
    key = signing.generate_key()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private(private, pem, replace=force)
    signing.save_public_key(key.public_key(), public)
    return KeyPair(private, public, signing.key_id(key.public_key()))


def write_private(path: Path, data: bytes, *, replace: bool = False) -> None:
    """Write a secret file that is 0600 from its first byte: created with that mode (no window
    between write and chmod), fsynced, then renamed over ``path`` when ``replace``."""
    target = path if not replace else path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{target}: already exists") from None
    except OSError as exc:
        raise KeyFileError(f"{target}: cannot create: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if replace:
            os.replace(target, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            target.unlink()
        raise KeyFileError(f"{path}: cannot write: {exc.strerror}") from None


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """The controller's private key; :class:`KeyFileError` names the file when it cannot be used."""
    try:
        return signing.load_private_key(Path(path))
    except signing.SignatureError as exc:
        raise KeyFileError(str(exc)) from None
