"""A device's own key pair: Ed25519 to sign requests, X25519 to receive wrapped keys."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from ..errors import ConflictState, InvalidInput, NotFound
from ._encoding import b64d, b64e, dumps, loads_object
from ._files import read_private, write_private

__all__ = ["DeviceKeys", "fingerprint", "load_box_public", "load_sign_public"]

_FORMAT = "tv_device_keys"
_FORMAT_VERSION = 1


def load_sign_public(public_sign_b64: str) -> Ed25519PublicKey:
    """The Ed25519 public key in a ``public_bundle()["sign"]`` value."""
    raw = b64d(public_sign_b64, size=32)
    if raw is None:
        raise InvalidInput("public signing key is not 32 bytes of unpadded base64url")
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise InvalidInput("public signing key is not a valid Ed25519 key") from None


def load_box_public(public_box_b64: str) -> X25519PublicKey:
    """The X25519 public key in a ``public_bundle()["box"]`` value."""
    raw = b64d(public_box_b64, size=32)
    if raw is None:
        raise InvalidInput("public box key is not 32 bytes of unpadded base64url")
    return X25519PublicKey.from_public_bytes(raw)


def fingerprint(public_sign_b64: str) -> str:
    """A short stable fingerprint of a device's public signing key, e.g. ``3f2a-91bc-0d44-7e19-aa01``."""
    raw = load_sign_public(public_sign_b64).public_bytes_raw()
    digest = hashlib.sha256(b"truthvault device key\x00" + raw).hexdigest()[:20]
    return "-".join(digest[i : i + 4] for i in range(0, 20, 4))


class DeviceKeys:
    """A device's private keys; only the public halves ever leave the device."""

    __slots__ = ("_box", "_sign")

    def __init__(self, sign: Ed25519PrivateKey, box: X25519PrivateKey) -> None:
        self._sign = sign
        self._box = box

    def __repr__(self) -> str:
        # Never the private bytes: keys end up in logs and tracebacks through repr.
        return f"DeviceKeys(fingerprint={self.fingerprint()!r})"

    @classmethod
    def generate(cls) -> DeviceKeys:
        """A fresh random key pair."""
        return cls(Ed25519PrivateKey.generate(), X25519PrivateKey.generate())

    def public_bundle(self) -> dict[str, str]:
        """``{"sign": ..., "box": ...}``: the raw public keys in unpadded base64url."""
        return {
            "sign": b64e(self._sign.public_key().public_bytes_raw()),
            "box": b64e(self._box.public_key().public_bytes_raw()),
        }

    def fingerprint(self) -> str:
        """The fingerprint of this device's public signing key."""
        return fingerprint(self.public_bundle()["sign"])

    def sign(self, data: bytes) -> bytes:
        """An Ed25519 signature of ``data`` (64 bytes)."""
        return self._sign.sign(data)

    def exchange(self, peer_box_public: X25519PublicKey) -> bytes:
        """The X25519 shared secret with a peer's public box key."""
        return self._box.exchange(peer_box_public)

    def private_bytes(self) -> bytes:
        """The private keys as versioned JSON bytes (secret: store them only as ``save`` does)."""
        return dumps(
            {
                _FORMAT: _FORMAT_VERSION,
                "sign": b64e(self._sign.private_bytes_raw()),
                "box": b64e(self._box.private_bytes_raw()),
            }
        )

    @classmethod
    def from_private_bytes(cls, data: bytes) -> DeviceKeys:
        """The keys in ``private_bytes()`` output; InvalidInput when it is not that."""
        obj = loads_object(data)
        if obj is None or _FORMAT not in obj:
            raise InvalidInput("not a truthvault device key file")
        if obj[_FORMAT] != _FORMAT_VERSION:
            raise InvalidInput(
                f"device key format version {obj[_FORMAT]!r} is not supported",
                hint="upgrade truthvault on this device",
            )
        sign, box = b64d(obj.get("sign"), size=32), b64d(obj.get("box"), size=32)
        if sign is None or box is None:
            raise InvalidInput("device key file is damaged: a key is missing or malformed")
        return cls(Ed25519PrivateKey.from_private_bytes(sign), X25519PrivateKey.from_private_bytes(box))

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Write the keys to ``path`` atomically, readable by the owner only (mode 0600)."""
        target = Path(path)
        if target.exists() and not overwrite:
            # Losing a device key locks the device out of its hub, so replacing one is explicit.
            raise ConflictState(
                f"a device key already exists at {target}",
                hint="pass overwrite=True only when replacing this device's key on purpose",
            )
        write_private(target, self.private_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> DeviceKeys:
        """The keys saved at ``path``; refuses a file that group or others can access."""
        target = Path(path)
        data = read_private(
            target, "device key", hint=f"chmod 600 {target}, and rotate the key if others may have read it"
        )
        if data is None:
            raise NotFound(f"no device key at {target}", hint="enrol this device first (truthvault enroll)")
        return cls.from_private_bytes(data)
