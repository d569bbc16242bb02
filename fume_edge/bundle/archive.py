"""Reading a bundle as hostile input: one pass over the tar, the signed manifest first, every member checked.

A bundle is an uncompressed tar whose first two members are `manifest.json` and `manifest.sig`. The signature is
checked before any other byte is trusted; then each member must be a regular file with a safe relative name
(stdlib's `filter="data"` checks where this Python has them, plus our own), listed in the manifest, of the listed
size and sha256. Nothing outside the manifest, nothing missing, nothing past the size cap. With `dest`, members
are written there as they are hashed, so what was checked is exactly what lands on disk.
"""

from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path, PurePosixPath
from typing import IO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fume_edge.bundle.keys import check_signature
from fume_edge.bundle.manifest import MANIFEST_NAME, SIGNATURE_NAME, Manifest, Member
from fume_edge.errors import FumeEdgeError

_MAX_MANIFEST_BYTES = 1 << 20
_BLOCK = 1 << 20


def safe_member_name(name: str) -> bool:
    """A relative POSIX path with no `..`, no empty or `.` parts and no backslashes."""
    path = PurePosixPath(name)
    return (
        bool(name)
        and "\\" not in name
        and not path.is_absolute()
        and all(part not in ("", ".", "..") for part in name.split("/"))
    )


def _check_member(member: tarfile.TarInfo, dest: Path | None, source: str) -> None:
    if not safe_member_name(member.name):
        raise FumeEdgeError(f"{source}: member {member.name!r} has an unsafe path; refusing the bundle")
    if not member.isreg():
        raise FumeEdgeError(f"{source}: member {member.name!r} is not a regular file (link or device); refusing")
    data_filter = getattr(tarfile, "data_filter", None)  # Python ≥ 3.11.4 / 3.12 (PEP 706)
    if data_filter is not None and dest is not None:
        try:
            data_filter(member, str(dest))
        except tarfile.FilterError as exc:
            raise FumeEdgeError(f"{source}: member {member.name!r} refused by the tar data filter ({exc})") from None


def _small(tar: tarfile.TarFile, member: tarfile.TarInfo | None, name: str, source: str) -> bytes:
    if member is None or member.name != name or not member.isreg() or member.size > _MAX_MANIFEST_BYTES:
        raise FumeEdgeError(
            f"{source}: not a fume-edge bundle ({name} must come first); make it with `fume-edge bundle make`"
        )
    handle = tar.extractfile(member)
    assert handle is not None  # a regular file always has data
    data = handle.read()
    if len(data) != member.size:
        raise FumeEdgeError(f"{source}: truncated bundle ({name} cut short); copy it again")
    return data


def _copy_hashed(handle: IO[bytes], expected: Member, name: str, out: IO[bytes] | None, source: str) -> None:
    digest, total = hashlib.sha256(), 0
    for block in iter(lambda: handle.read(_BLOCK), b""):
        digest.update(block)
        total += len(block)
        if out is not None:
            out.write(block)
    if total != expected.size:
        raise FumeEdgeError(f"{source}: truncated bundle ({name}: {total} of {expected.size} bytes); copy it again")
    if digest.hexdigest() != expected.sha256:
        raise FumeEdgeError(
            f"{source}: member {name} does not match its sha256 in the signed manifest (tampered "
            "or damaged); do not install it"
        )


def read_bundle(path: Path, keys: dict[str, Ed25519PublicKey], max_bytes: int, dest: Path | None = None) -> Manifest:
    """The verified manifest of the bundle at `path`; every member checked, and written under `dest` if given.

    Any failure is one FumeEdgeError line; a partly written `dest` is the caller's to remove.
    """
    source = str(path)
    if not path.is_file():
        raise FumeEdgeError(f"{source}: bundle file not found")
    if path.stat().st_size > max_bytes:
        raise FumeEdgeError(
            f"{source}: {path.stat().st_size / 1e6:.1f} MB is over the bundle size cap "
            f"({max_bytes / 1e6:.0f} MB); raise --max-mb only for a bundle you expect to be that big"
        )
    try:
        with tarfile.open(path, mode="r:") as tar:
            manifest_bytes = _small(tar, tar.next(), MANIFEST_NAME, source)
            signature = _small(tar, tar.next(), SIGNATURE_NAME, source)
            manifest = Manifest.from_bytes(manifest_bytes, source)
            check_signature(keys, manifest.key_id, manifest_bytes, signature, source)
            seen: set[str] = set()
            while (member := tar.next()) is not None:
                _check_member(member, dest, source)
                expected = manifest.members.get(member.name)
                if expected is None or member.name in seen:
                    raise FumeEdgeError(
                        f"{source}: member {member.name!r} is not in the signed manifest (or comes "
                        "twice); refusing the bundle"
                    )
                if member.size != expected.size:
                    raise FumeEdgeError(
                        f"{source}: member {member.name} is {member.size} bytes, the manifest says "
                        f"{expected.size}; do not install it"
                    )
                seen.add(member.name)
                handle = tar.extractfile(member)
                assert handle is not None
                if dest is None:
                    _copy_hashed(handle, expected, member.name, None, source)
                    continue
                target = dest / member.name
                target.parent.mkdir(parents=True, exist_ok=True)
                with open(target, "xb") as out:
                    _copy_hashed(handle, expected, member.name, out, source)
    except (tarfile.TarError, EOFError) as exc:
        raise FumeEdgeError(f"{source}: truncated or damaged bundle ({exc}); copy it again") from None
    missing = sorted(set(manifest.members) - seen)
    if missing:
        raise FumeEdgeError(
            f"{source}: truncated bundle ({len(missing)} member(s) missing, e.g. {missing[0]}); copy it again"
        )
    return manifest
