"""Keyed input hashes: what the audit log and approvals keep of an input when the hub must not
be able to confirm a guess of it.

A plain SHA-256 of a short input (a note's text) can be confirmed by anyone who guesses the
input, the hub's operator included. A local-first tenant's hub reads no payload, so its devices
key the hash: HMAC-SHA256 under a key only they hold, written ``hmac:<key id>:<64 hex>`` so that
whoever holds that key (an approval redeemed after a rotation, a device checking an entry
against an input) knows which one to take it under. The plain hash stays 64 hex digits alone.

The HMAC's inner and outer states are made once per key and copied for each input (RFC 2104,
the same bytes as ``hmac.digest``): a keyed hash then costs what a plain one does, where
``hmac.digest`` sets the key up again every time and costs three times as much.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from ._kernel import input_json

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = ["KEYED_PREFIX", "KeyedInputHash", "hash_key_id"]

#: how a keyed input hash begins: ``hmac:<key id>:<64 hex>``
KEYED_PREFIX = "hmac:"


def hash_key_id(stored: str) -> str | None:
    """The id of the key an input hash was taken under; None for a plain one."""
    if not stored.startswith(KEYED_PREFIX):
        return None
    kid, sep, _ = stored[len(KEYED_PREFIX) :].partition(":")
    return kid if sep else None


class KeyedInputHash:
    """HMAC-SHA256 of an input's JSON under ``key`` (32 bytes), named ``kid``."""

    __slots__ = ("_inner", "_outer", "_prefix", "kid")

    def __init__(self, key: bytes, kid: str) -> None:
        if len(key) != 32 or not kid or ":" in kid:
            raise ValueError("an input-hash key is 32 bytes with an id without ':'")
        block = key.ljust(64, b"\0")  # SHA-256's block; a 32-byte key is never hashed first
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
        self._prefix = f"{KEYED_PREFIX}{kid}:"
        self.kid = kid

    def __repr__(self) -> str:
        return f"KeyedInputHash(kid={self.kid!r})"  # never the key

    def __call__(self, params: BaseModel) -> str:
        inner = self._inner.copy()
        inner.update(input_json(params))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return self._prefix + outer.hexdigest()
