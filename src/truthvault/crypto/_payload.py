"""End-to-end payload encryption for local-first tenants: AES-256-GCM under the tenant's data keys.

AES-256-GCM rather than XChaCha20-Poly1305 because ``cryptography`` does not provide
XChaCha20 (only ChaCha20-Poly1305 with a 96-bit nonce, which has no advantage here). Nonces are
96 random bits, so one key must seal far fewer than 2**32 payloads; ``Keyring.rotate`` starts a
new key long before that matters for a person's vault.

A sealed payload is itself a JSON object, because the hub requires every payload to be one::

    {"tv_enc":2,"kid":"<key id>","n":"<nonce>","ct":"<ciphertext and tag>"}

with the nonce and ciphertext in standard base64 (format 1, still read, had unpadded
base64url). The associated data binds the format, key id, tenant, entity type, entity id and
version, so a ciphertext
copied onto another entity, tenant or version fails to open instead of showing wrong data.
"""

from __future__ import annotations

import binascii
import os
import re
import secrets
from collections.abc import Callable, Mapping

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import DecryptionFailed, InvalidInput
from ._encoding import b64d, b64e, dumps, loads_object

__all__ = ["Keyring", "is_sealed", "open_sealed", "opener", "seal", "sealer"]

#: the envelope format sealed now: 2 has standard base64 fields, which msgspec reads and
#: writes in C; 1 (base64url, read through the json module) still opens
_ENC_VERSION = 2
_READABLE = (1, 2)
_KEYRING_VERSION = 1
_KID = re.compile(r"[A-Za-z0-9_-]{4,32}")
_SEALED_PREFIX = re.compile(rb'\s*\{\s*"tv_enc"\s*:')


class Keyring:
    """A tenant's data keys by key id, and which one seals new payloads (``current``)."""

    __slots__ = ("_ciphers", "_current", "_keys")

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        for kid, key in keys.items():
            if not _KID.fullmatch(kid) or len(key) != 32:
                raise InvalidInput(f"keyring entry {kid!r} is not a valid key id with a 32-byte key")
        if current not in keys:
            raise InvalidInput(f"keyring's current key {current!r} is not in the keyring")
        self._keys = dict(keys)
        self._current = current
        # one AESGCM per key, made on first use: setting up the key schedule costs more
        # than sealing a short payload
        self._ciphers: dict[str, AESGCM] = {}

    def __repr__(self) -> str:
        # Never the keys themselves: they would leak through logs and tracebacks.
        return f"Keyring(current={self._current!r}, kids={list(self._keys)!r})"

    @classmethod
    def new(cls) -> Keyring:
        """A keyring with one fresh random key."""
        kid = _new_kid(set())
        return cls({kid: AESGCM.generate_key(bit_length=256)}, kid)

    @property
    def current(self) -> str:
        """The key id that seals new payloads."""
        return self._current

    @property
    def kids(self) -> tuple[str, ...]:
        """Every key id, oldest first."""
        return tuple(self._keys)

    def _current_entry(self) -> tuple[str, bytes]:
        return self._current, self._keys[self._current]

    def _cipher(self, kid: str) -> AESGCM | None:
        cipher = self._ciphers.get(kid)
        if cipher is None and kid in self._keys:
            cipher = self._ciphers[kid] = AESGCM(self._keys[kid])
        return cipher

    def key(self, kid: str) -> bytes | None:
        """The key with this id, or None."""
        return self._keys.get(kid)

    def rotate(self) -> str:
        """Add a fresh key and make it current; old keys stay so old payloads still open."""
        kid = _new_kid(set(self._keys))
        self._keys[kid] = AESGCM.generate_key(bit_length=256)
        self._current = kid
        return kid

    def serialize(self) -> bytes:
        """The keyring as JSON bytes (secret: keep them in the device vault or wrapped)."""
        keys = {kid: b64e(key) for kid, key in self._keys.items()}
        return dumps({"tv_keyring": _KEYRING_VERSION, "current": self._current, "keys": keys})

    @classmethod
    def deserialize(cls, data: bytes) -> Keyring:
        """The keyring in ``serialize()`` output; InvalidInput when it is not that."""
        obj = loads_object(data)
        if obj is None or obj.get("tv_keyring") != _KEYRING_VERSION:
            raise InvalidInput("not a truthvault keyring (or one of an unsupported version)")
        raw = obj.get("keys")
        current = obj.get("current")
        if not isinstance(raw, dict) or not isinstance(current, str):
            raise InvalidInput("keyring is damaged: keys or current key missing")
        keys: dict[str, bytes] = {}
        for kid, text in raw.items():
            key = b64d(text, size=32)
            if key is None:
                raise InvalidInput(f"keyring is damaged: key {kid!r} is not 32 bytes of base64url")
            keys[kid] = key
        return cls(keys, current)


def _new_kid(taken: set[str]) -> str:
    while True:
        kid = secrets.token_urlsafe(6)
        if kid not in taken:
            return kid


class _Envelope(msgspec.Struct):
    """A sealed payload: msgspec reads and writes the bytes fields as base64 in C."""

    tv_enc: int
    kid: str
    n: bytes
    ct: bytes


_envelope = msgspec.json.Decoder(_Envelope)
#: what payloads arrive as: bytes, or the Raw slices of a decoded message (no copy)
Buffer = bytes | msgspec.Raw
_encoder = msgspec.json.Encoder()
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _unb64url(text: object) -> bytes | None:
    """The bytes of unpadded base64url text (format 1), or None when it is not that."""
    if not isinstance(text, str):
        return None
    try:
        return binascii.a2b_base64(
            text.encode("ascii").translate(_FROM_URLSAFE) + b"=" * (-len(text) % 4), strict_mode=True
        )
    except (binascii.Error, UnicodeEncodeError):
        return None


def _associated_data(
    kid: str, tenant_id: str, entity_type: str, entity_id: str, version: int, fmt: int = _ENC_VERSION
) -> bytes:
    # JSON of a list is unambiguous (each string is quoted and escaped), unlike joining with a separator.
    fields = ("tv_enc", fmt, kid, tenant_id, entity_type, entity_id, version)
    if tenant_id.isascii() and entity_type.isascii() and entity_id.isascii():
        return _encoder.encode(fields)  # the same bytes as dumps() for ASCII text, faster
    return dumps(list(fields))


def seal(
    keyring: Keyring, plaintext: bytes, *, tenant_id: str, entity_type: str, entity_id: str, version: int
) -> bytes:
    """Encrypt ``plaintext`` under the current key as a JSON-object envelope bound to this entity version."""
    return sealer(keyring, tenant_id)(plaintext, entity_type, entity_id, version)


def sealer(keyring: Keyring, tenant_id: str) -> Callable[[Buffer, str, str, int], bytes]:
    """``seal`` for many payloads of one tenant in a row: ``(plaintext, type, id, version) -> envelope``."""
    kid = keyring.current
    cipher = keyring._cipher(kid)
    assert cipher is not None  # the current key is always in the keyring
    encode, urandom = _encoder.encode, os.urandom

    def seal_one(plaintext: Buffer, entity_type: str, entity_id: str, version: int) -> bytes:
        nonce = urandom(12)
        ad = _associated_data(kid, tenant_id, entity_type, entity_id, version)
        return encode(_Envelope(_ENC_VERSION, kid, nonce, cipher.encrypt(nonce, plaintext, ad)))

    return seal_one


def opener(keyring: Keyring, tenant_id: str) -> Callable[[Buffer, str, str, int], bytes]:
    """``open_sealed`` for many payloads of one tenant in a row: ``(envelope, type, id, version) ->
    plaintext``, raising DecryptionFailed like it. The usual case (the current format, a known
    key, ASCII names) is decided here; anything else goes to ``open_sealed`` to open or say why."""
    decode, encode, cipher_of = _envelope.decode, _encoder.encode, keyring._cipher
    ascii_tenant = tenant_id.isascii()

    def open_one(envelope: Buffer, entity_type: str, entity_id: str, version: int) -> bytes:
        try:
            env = decode(envelope)
            cipher = cipher_of(env.kid)
            if (
                cipher is not None
                and env.tv_enc == _ENC_VERSION
                and len(env.n) == 12
                and ascii_tenant
                and entity_type.isascii()
                and entity_id.isascii()
            ):
                ad = encode(("tv_enc", _ENC_VERSION, env.kid, tenant_id, entity_type, entity_id, version))
                return cipher.decrypt(env.n, env.ct, ad)
        except (msgspec.DecodeError, InvalidTag, ValueError):
            pass
        return open_sealed(
            keyring,
            bytes(envelope),
            tenant_id=tenant_id,
            entity_type=entity_type,
            entity_id=entity_id,
            version=version,
        )

    return open_one


def is_sealed(payload: bytes) -> bool:
    """Whether ``payload`` looks like a sealed envelope (a cheap prefix check; ``open_sealed`` verifies)."""
    return _SEALED_PREFIX.match(payload) is not None


def open_sealed(
    keyring: Keyring, envelope: bytes, *, tenant_id: str, entity_type: str, entity_id: str, version: int
) -> bytes:
    """Decrypt a ``seal`` envelope for this entity version, or raise ``DecryptionFailed`` saying why."""
    try:
        env = _envelope.decode(envelope)
    except msgspec.DecodeError:
        env = _older(envelope, tenant_id, entity_type, entity_id, version)
    if env.tv_enc not in _READABLE:
        raise _refusal(envelope, tenant_id, entity_type, entity_id, version)
    if len(env.n) != 12 or len(env.ct) < 16:
        what = _what(tenant_id, entity_type, entity_id, version)
        raise DecryptionFailed(f"{what} is a damaged encrypted envelope", reason="malformed")
    cipher = keyring._cipher(env.kid)
    if cipher is None:
        raise DecryptionFailed(
            f"{_what(tenant_id, entity_type, entity_id, version)} is encrypted with key {env.kid!r}, "
            "which this device does not have",
            hint="the tenant key was rotated on another device: sync keys",
            reason="unknown_key",
        )
    ad = _associated_data(env.kid, tenant_id, entity_type, entity_id, version, env.tv_enc)
    try:
        return cipher.decrypt(env.n, env.ct, ad)
    except InvalidTag:
        raise DecryptionFailed(
            f"{_what(tenant_id, entity_type, entity_id, version)} failed authentication: the ciphertext "
            "was tampered with, or moved from another entity, version or tenant",
            reason="tampered",
        ) from None


def _older(envelope: bytes, tenant_id: str, entity_type: str, entity_id: str, version: int) -> _Envelope:
    """A format-1 envelope (base64url fields) as an _Envelope; DecryptionFailed if it is not one."""
    obj = loads_object(envelope)
    if obj is not None and obj.get("tv_enc") == 1:
        kid, nonce, ct = obj.get("kid"), _unb64url(obj.get("n")), _unb64url(obj.get("ct"))
        if isinstance(kid, str) and nonce is not None and ct is not None:
            return _Envelope(1, kid, nonce, ct)
    raise _refusal(envelope, tenant_id, entity_type, entity_id, version)


def _what(tenant_id: str, entity_type: str, entity_id: str, version: int) -> str:
    return f"payload of {entity_type} {entity_id!r} (version {version}, tenant {tenant_id!r})"


def _refusal(
    envelope: bytes, tenant_id: str, entity_type: str, entity_id: str, version: int
) -> DecryptionFailed:
    """Why an envelope that did not decode is refused: not one, of another format, or damaged."""
    what = _what(tenant_id, entity_type, entity_id, version)
    obj = loads_object(envelope)
    if obj is None or "tv_enc" not in obj:
        return DecryptionFailed(f"{what} is not an encrypted envelope", reason="malformed")
    if obj["tv_enc"] not in _READABLE:
        return DecryptionFailed(
            f"{what} uses encryption format {obj['tv_enc']!r}, which this version does not know",
            hint="upgrade truthvault on this device",
            reason="unsupported",
        )
    return DecryptionFailed(f"{what} is a damaged encrypted envelope", reason="malformed")
