"""End-to-end payload encryption for local-first tenants: AES-256-GCM under the tenant's data keys.

AES-256-GCM rather than XChaCha20-Poly1305 because ``cryptography`` does not provide
XChaCha20 (only ChaCha20-Poly1305 with a 96-bit nonce, which has no advantage here). Nonces are
96 random bits, so one key must seal far fewer than 2**32 payloads; ``Keyring.rotate`` starts a
new key long before that matters for a person's vault.

A sealed payload is itself a JSON object, because the hub requires every payload to be one::

    {"tv_enc":3,"kid":"<key id>","n":"<nonce>","ct":"<ciphertext and tag>"}

with the nonce and ciphertext in standard base64. The associated data binds the format, key
id, tenant and a context the caller gives: for an entity version, every truth field (type,
id, version and base, clock, writer, level, origin and its chain, acceptance, deletion, contract
version). A ciphertext copied onto another entity, version, writer or tenant fails to open
instead of showing wrong data: whoever holds the hub's database cannot pass a suggestion's text
off as the user's. Formats 1 and 2 bound only the tenant, type, id and version, and are no
longer read.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import msgspec

from ..errors import DecryptionFailed, InvalidInput
from ._encoding import b64d, b64e, dumps, loads_object

if TYPE_CHECKING:
    # imported where a key is first used: opening the vault reads no keyring, and the
    # cipher machinery costs every command of the CLI a tenth of its start-up
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["Keyring", "is_sealed", "open_sealed", "opener", "seal", "sealer"]

#: the envelope format: standard base64 fields (which msgspec reads and writes in C) and
#: associated data that binds every truth field of the version
_ENC_VERSION = 3
#: formats 1 and 2 bound only the key, tenant, type, id and version: not read any more
_RETIRED = (1, 2)
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
        return cls({kid: _new_key()}, kid)

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
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            cipher = self._ciphers[kid] = AESGCM(self._keys[kid])
        return cipher

    def key(self, kid: str) -> bytes | None:
        """The key with this id, or None."""
        return self._keys.get(kid)

    def rotate(self) -> str:
        """Add a fresh key and make it current; old keys stay so old payloads still open."""
        kid = _new_kid(set(self._keys))
        self._keys[kid] = _new_key()
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


def _new_key() -> bytes:
    """A fresh random AES-256 key."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM.generate_key(bit_length=256)


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


def _associated_data(kid: str, tenant_id: str, context: bytes) -> bytes:
    """What the ciphertext is bound to: the format, the key, the tenant and ``context``.

    ``context`` is the caller's canonical JSON of everything else a reader must not be misled
    about (for an entity version: every truth field, see :func:`truthvault.model.seal_context`).
    Two payloads of one entity and version but of different writers, levels or origins are then
    not interchangeable: a hub that swapped them would only make both fail to open.
    """
    return _ad_prefix(kid, tenant_id) + context + b"]"


def _ad_prefix(kid: str, tenant_id: str) -> bytes:
    """``["tv_enc",3,"<kid>","<tenant>",``: the associated data up to the context, which is
    JSON too, so the whole is one JSON array."""
    return _encoder.encode(("tv_enc", _ENC_VERSION, kid, tenant_id))[:-1] + b","


def seal(keyring: Keyring, plaintext: bytes, *, tenant_id: str, context: bytes) -> bytes:
    """Encrypt ``plaintext`` under the current key as a JSON-object envelope bound to ``context``."""
    return sealer(keyring, tenant_id)(plaintext, context)


def sealer(keyring: Keyring, tenant_id: str) -> Callable[[Buffer, bytes], bytes]:
    """``seal`` for many payloads of one tenant in a row: ``(plaintext, context) -> envelope``."""
    kid = keyring.current
    cipher = keyring._cipher(kid)
    assert cipher is not None  # the current key is always in the keyring
    encode, urandom = _encoder.encode, os.urandom

    prefix = _ad_prefix(kid, tenant_id)

    def seal_one(plaintext: Buffer, context: bytes) -> bytes:
        nonce = urandom(12)
        ad = prefix + context + b"]"
        return encode(_Envelope(_ENC_VERSION, kid, nonce, cipher.encrypt(nonce, plaintext, ad)))

    return seal_one


def opener(keyring: Keyring, tenant_id: str) -> Callable[[Buffer, bytes], bytes]:
    """``open_sealed`` for many payloads of one tenant in a row: ``(envelope, context) ->
    plaintext``, raising DecryptionFailed like it. The usual case (the current format and a
    known key) is decided here; anything else goes to ``open_sealed`` to say why."""
    from cryptography.exceptions import InvalidTag

    decode, cipher_of = _envelope.decode, keyring._cipher
    prefixes: dict[str, bytes] = {}

    def open_one(envelope: Buffer, context: bytes) -> bytes:
        try:
            env = decode(envelope)
            cipher = cipher_of(env.kid)
            if cipher is not None and env.tv_enc == _ENC_VERSION and len(env.n) == 12:
                prefix = prefixes.get(env.kid) or prefixes.setdefault(env.kid, _ad_prefix(env.kid, tenant_id))
                return cipher.decrypt(env.n, env.ct, prefix + context + b"]")
        except (msgspec.DecodeError, InvalidTag, ValueError):
            pass
        return open_sealed(keyring, bytes(envelope), tenant_id=tenant_id, context=context)

    return open_one


def is_sealed(payload: bytes) -> bool:
    """Whether ``payload`` looks like a sealed envelope (a cheap prefix check; ``open_sealed`` verifies)."""
    return _SEALED_PREFIX.match(payload) is not None


def open_sealed(keyring: Keyring, envelope: bytes, *, tenant_id: str, context: bytes) -> bytes:
    """Decrypt a ``seal`` envelope bound to ``context``, or raise ``DecryptionFailed`` saying why."""
    from cryptography.exceptions import InvalidTag

    try:
        env = _envelope.decode(envelope)
    except msgspec.DecodeError:
        raise _refusal(envelope) from None
    if env.tv_enc != _ENC_VERSION:
        raise _refusal(envelope)
    if len(env.n) != 12 or len(env.ct) < 16:
        raise DecryptionFailed("the payload is a damaged encrypted envelope", reason="malformed")
    cipher = keyring._cipher(env.kid)
    if cipher is None:
        raise DecryptionFailed(
            f"the payload is encrypted with key {env.kid!r}, which this device does not have",
            hint="the tenant key was rotated on another device: sync keys",
            reason="unknown_key",
        )
    try:
        return cipher.decrypt(env.n, env.ct, _associated_data(env.kid, tenant_id, context))
    except InvalidTag:
        raise DecryptionFailed(
            "the payload failed authentication: the ciphertext was tampered with, or moved from "
            "another entity, version, writer or tenant",
            reason="tampered",
        ) from None


def _refusal(envelope: bytes) -> DecryptionFailed:
    """Why an envelope that did not decode is refused: not one, of another format, or damaged."""
    obj = loads_object(envelope)
    if obj is None or "tv_enc" not in obj:
        return DecryptionFailed("the payload is not an encrypted envelope", reason="malformed")
    fmt = obj["tv_enc"]
    if fmt in _RETIRED:
        return DecryptionFailed(
            f"the payload uses encryption format {fmt}, which did not bind the writer and the "
            "truth level, so a hub could swap such payloads; it is no longer read",
            hint="it was sealed by a development build before format 3: edit it on a device that still "
            "holds it, which seals the new version anew",
            reason="unsupported",
        )
    if fmt != _ENC_VERSION:
        return DecryptionFailed(
            f"the payload uses encryption format {fmt!r}, which this version does not know",
            hint="upgrade truthvault on this device",
            reason="unsupported",
        )
    return DecryptionFailed("the payload is a damaged encrypted envelope", reason="malformed")
