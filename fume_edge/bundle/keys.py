"""Ed25519 signing keys for model bundles: a key pair per signer, a folder of trusted public keys per device.

A key's id is the first 16 hex digits of the sha256 of its raw public bytes; the manifest names the id it was
signed with, so a device holding several trusted keys checks the one that matters and says which was missing.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from fume_edge.errors import FumeEdgeError

DEFAULT_TRUSTED_KEYS = Path("/etc/fume-edge/trusted_keys")
TRUSTED_KEYS_ENV = "FUME_EDGE_TRUSTED_KEYS"  # overrides the default folder (tests, a device without /etc access)


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_keypair(private_path: Path, overwrite: bool = False) -> tuple[Path, Path]:
    """Write a new private key (PEM, mode 0600) and its public key beside it (`.pub`); returns both paths."""
    public_path = private_path.with_suffix(".pub")
    for path in (private_path, public_path):
        if path.exists() and not overwrite:
            raise FumeEdgeError(
                f"{path}: exists; choose another name or pass --overwrite (a lost key cannot sign "
                "updates for devices that trust it)"
            )
    private_path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public_path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private_path, public_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    if not path.is_file():
        raise FumeEdgeError(f"{path}: signing key not found; make one with `fume-edge bundle keygen {path}`")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise FumeEdgeError(
            f"{path}: not an unencrypted PEM private key ({exc}); use a key from `fume-edge bundle keygen`"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise FumeEdgeError(f"{path}: not an Ed25519 key; use a key from `fume-edge bundle keygen`")
    return key


def trusted_keys_dir(folder: Path | None = None) -> Path:
    """The folder given, else $FUME_EDGE_TRUSTED_KEYS, else /etc/fume-edge/trusted_keys."""
    return folder or Path(os.environ.get(TRUSTED_KEYS_ENV) or DEFAULT_TRUSTED_KEYS)


def load_trusted_keys(folder: Path) -> dict[str, Ed25519PublicKey]:
    """Every Ed25519 public key (`*.pub`, PEM) in `folder`, by key id."""
    if not folder.is_dir():
        raise FumeEdgeError(
            f"{folder}: trusted keys folder not found; copy the signer's .pub file there (or pass --trusted-keys DIR)"
        )
    keys: dict[str, Ed25519PublicKey] = {}
    for path in sorted(folder.glob("*.pub")):
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except ValueError as exc:
            raise FumeEdgeError(
                f"{path}: not a PEM public key ({exc}); replace it with a .pub from `fume-edge bundle keygen`"
            ) from None
        if isinstance(key, Ed25519PublicKey):
            keys[key_id(key)] = key
    return keys


def check_signature(
    keys: dict[str, Ed25519PublicKey], signer: str, message: bytes, signature: bytes, source: str
) -> None:
    """Raise unless `signature` over `message` is by the trusted key `signer`."""
    key = keys.get(signer)
    if key is None:
        raise FumeEdgeError(
            f"{source}: signed by key {signer}, which is not among the trusted keys; add the "
            "signer's .pub to the trusted keys folder only if you trust it"
        )
    try:
        key.verify(signature, message)
    except InvalidSignature:
        raise FumeEdgeError(
            f"{source}: the signature does not match the manifest (tampered or wrong key); do not install it"
        ) from None
