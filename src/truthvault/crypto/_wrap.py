"""Key wrapping: the tenant's keyring reaches a new device without the hub ever seeing it.

Two ways: an enrolled device wraps it to the new device's X25519 box key (ephemeral X25519,
HKDF-SHA256, AES-256-GCM), or the user's recovery passphrase unlocks a copy wrapped with a key
derived by scrypt (memory-hard, so a stolen envelope resists guessing). Envelopes are JSON with
unpadded base64url fields and a version; they may travel through the hub, so everything read
from one is checked before use.
"""

from __future__ import annotations

import secrets
import unicodedata
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..errors import DecryptionFailed, InvalidInput
from ._encoding import b64d, b64e, dumps, loads_object
from ._keys import DeviceKeys, load_box_public

__all__ = [
    "MIN_PASSPHRASE_LENGTH",
    "unwrap_for_device",
    "unwrap_with_passphrase",
    "wrap_for_device",
    "wrap_with_passphrase",
]

MIN_PASSPHRASE_LENGTH = 12
_VERSION = 1
_DEVICE_ALG = "x25519-hkdf-sha256-aes256gcm"
_DEVICE_LABEL = b"truthvault/wrap/device/v1"
_PASSPHRASE_ALG = "scrypt-aes256gcm"
_PASSPHRASE_LABEL = b"truthvault/wrap/passphrase/v1"
# Lower bounds keep a careless caller from making a guessable envelope; upper bounds keep a
# hostile envelope (it may come through the hub) from making this device spend gigabytes.
_MIN_N, _MAX_N, _MAX_R, _MAX_P = 2**10, 2**20, 32, 16


def _parse(envelope: bytes, alg: str) -> dict[str, Any]:
    obj = loads_object(envelope)
    if obj is None or "tv_wrap" not in obj:
        raise DecryptionFailed("not a truthvault wrapped-key envelope", reason="malformed")
    if obj["tv_wrap"] != _VERSION:
        raise DecryptionFailed(
            f"wrapped-key envelope version {obj['tv_wrap']!r} is not supported",
            hint="upgrade truthvault on this device",
            reason="unsupported",
        )
    if obj.get("alg") != alg:
        raise DecryptionFailed(
            f"wrapped-key envelope is {obj.get('alg')!r}, expected {alg!r}",
            hint="a device envelope opens with a device key, a recovery envelope with the passphrase",
            reason="malformed",
        )
    return obj


def _device_key(shared: bytes, epk: bytes, to: bytes) -> bytes:
    # Both public keys go into the salt so the derived key belongs to this exact exchange.
    return HKDF(hashes.SHA256(), 32, salt=epk + to, info=_DEVICE_LABEL).derive(shared)


def wrap_for_device(secret: bytes, recipient_box_public_b64: str) -> bytes:
    """Encrypt ``secret`` so only the device with this public box key can open it."""
    recipient = load_box_public(recipient_box_public_b64)
    ephemeral = X25519PrivateKey.generate()
    try:
        shared = ephemeral.exchange(recipient)
    except ValueError:
        raise InvalidInput("recipient box key is a degenerate X25519 point") from None
    epk = ephemeral.public_key().public_bytes_raw()
    to = recipient.public_bytes_raw()
    nonce = secrets.token_bytes(12)
    ct = AESGCM(_device_key(shared, epk, to)).encrypt(nonce, secret, _DEVICE_LABEL + epk + to)
    return dumps(
        {
            "tv_wrap": _VERSION,
            "alg": _DEVICE_ALG,
            "to": b64e(to),
            "epk": b64e(epk),
            "n": b64e(nonce),
            "ct": b64e(ct),
        }
    )


def unwrap_for_device(envelope: bytes, keys: DeviceKeys) -> bytes:
    """The secret in a ``wrap_for_device`` envelope addressed to ``keys``."""
    obj = _parse(envelope, _DEVICE_ALG)
    to, epk = b64d(obj.get("to"), size=32), b64d(obj.get("epk"), size=32)
    nonce, ct = b64d(obj.get("n"), size=12), b64d(obj.get("ct"))
    if to is None or epk is None or nonce is None or ct is None:
        raise DecryptionFailed("wrapped-key envelope is damaged", reason="malformed")
    if b64e(to) != keys.public_bundle()["box"]:
        raise DecryptionFailed(
            "this key envelope was wrapped for another device",
            hint="ask an enrolled device to wrap the tenant keys for this device's public key",
            reason="wrong_key",
        )
    try:
        shared = keys.exchange(X25519PublicKey.from_public_bytes(epk))
        return AESGCM(_device_key(shared, epk, to)).decrypt(nonce, ct, _DEVICE_LABEL + epk + to)
    except (InvalidTag, ValueError):
        raise DecryptionFailed(
            "wrapped-key envelope does not open with this device's key: it was damaged or tampered with",
            reason="tampered",
        ) from None


def _passphrase_key(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # NFC so the same passphrase typed on two keyboards (composed vs decomposed accents) matches.
    material = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(material)


def _check_params(n: object, r: object, p: object) -> tuple[int, int, int] | None:
    # type() rather than isinstance: JSON true would otherwise pass as the integer 1.
    if not (type(n) is int and type(r) is int and type(p) is int):
        return None
    if n & (n - 1) or not _MIN_N <= n <= _MAX_N or not 1 <= r <= _MAX_R or not 1 <= p <= _MAX_P:
        return None
    return n, r, p


def wrap_with_passphrase(secret: bytes, passphrase: str, *, n: int = 2**15, r: int = 8, p: int = 1) -> bytes:
    """Encrypt ``secret`` under a key derived from a recovery passphrase with scrypt(n, r, p)."""
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise InvalidInput(
            f"recovery passphrase is {len(passphrase)} characters; at least {MIN_PASSPHRASE_LENGTH} are needed",
            hint="use four or five random words: long, and easy to type on a new device",
        )
    if _check_params(n, r, p) is None:
        raise InvalidInput(
            f"scrypt parameters n={n} r={r} p={p} are out of range "
            f"(n a power of two in [{_MIN_N}, {_MAX_N}], r in [1, {_MAX_R}], p in [1, {_MAX_P}])"
        )
    salt = secrets.token_bytes(16)
    kdf = {"name": "scrypt", "n": n, "r": r, "p": p, "salt": b64e(salt)}
    nonce = secrets.token_bytes(12)
    ad = _PASSPHRASE_LABEL + dumps(kdf)
    ct = AESGCM(_passphrase_key(passphrase, salt, n, r, p)).encrypt(nonce, secret, ad)
    return dumps({"tv_wrap": _VERSION, "alg": _PASSPHRASE_ALG, "kdf": kdf, "n": b64e(nonce), "ct": b64e(ct)})


def unwrap_with_passphrase(envelope: bytes, passphrase: str) -> bytes:
    """The secret in a ``wrap_with_passphrase`` envelope."""
    obj = _parse(envelope, _PASSPHRASE_ALG)
    kdf = obj.get("kdf")
    nonce, ct = b64d(obj.get("n"), size=12), b64d(obj.get("ct"))
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt" or nonce is None or ct is None:
        raise DecryptionFailed("recovery envelope is damaged", reason="malformed")
    params = _check_params(kdf.get("n"), kdf.get("r"), kdf.get("p"))
    salt = b64d(kdf.get("salt"), size=16)
    if params is None or salt is None:
        raise DecryptionFailed(
            "recovery envelope has missing or out-of-range scrypt parameters", reason="malformed"
        )
    # The associated data is rebuilt from the parsed values in the writer's key order.
    ad = _PASSPHRASE_LABEL + dumps(
        {"name": "scrypt", "n": params[0], "r": params[1], "p": params[2], "salt": b64e(salt)}
    )
    try:
        return AESGCM(_passphrase_key(passphrase, salt, *params)).decrypt(nonce, ct, ad)
    except InvalidTag:
        raise DecryptionFailed(
            "wrong recovery passphrase or damaged envelope",
            hint="passphrases are case-sensitive; check for a missing or extra word",
            reason="wrong_passphrase",
        ) from None
