"""The input hash a device's kernel keeps in the audit log and approval requests.

- A **cloud-first** tenant's devices keep the plain SHA-256: the hub reads those payloads anyway,
  and every device (and the hub) takes the same hash of the same input.
- A **local-first** tenant's devices key it (HMAC-SHA256, ``hmac:<key id>:<hex>``) under a key
  derived from the tenant's current data key: every device holding the keyring takes the same
  hash, the hub (which holds no data key) cannot confirm a guess of an input against it.
- Until the device holds the keyring (a vault joined to no hub is local-first too, and its
  entries reach the hub it joins later), it keys the hash under a random key of its own, kept
  in the vault (``hmac:device:<hex>``): no other device can take that hash, but nothing is
  plain.

The key is derived once per key id and process. A rotation makes the new data key's the
current one; a request asked under an earlier key is redeemed under that key (the keyring keeps
every key), see :meth:`VaultInputHash.under`.
"""

from __future__ import annotations

import secrets
from time import monotonic
from typing import TYPE_CHECKING

from ..crypto import Keyring, input_hash_key
from ..kernel import KeyedInputHash, hash_key_id, input_hash
from ._db import VaultDB

if TYPE_CHECKING:
    from collections.abc import Callable

    from pydantic import BaseModel

__all__ = ["DEVICE_KID", "VaultInputHash"]

#: the key id of a device's own input-hash key (a keyring's ids are eight characters long)
DEVICE_KID = "device"
#: how often (seconds) a process looks whether another one changed the vault's keyring
_RECHECK_S = 1.0


class VaultInputHash:
    """The :class:`~truthvault.kernel.InputHasher` of one vault's kernel (see the module)."""

    __slots__ = ("_check_at", "_current", "_db", "_epoch", "_keyed", "_keyring", "_state")

    def __init__(self, db: VaultDB) -> None:
        self._db = db
        self._epoch = -1
        self._check_at = 0.0
        self._state: tuple[str, str, str] | None = None
        self._keyring: Keyring | None = None
        self._keyed: dict[str, KeyedInputHash] = {}
        self._current: Callable[[BaseModel], str] = input_hash

    def __call__(self, params: BaseModel) -> str:
        if self._epoch != self._db.keys_epoch or monotonic() >= self._check_at:
            self._refresh()
        return self._current(params)

    def under(self, stored: str, params: BaseModel) -> str | None:
        """The input's hash under the key ``stored`` names (plain when it names none); None
        when this vault does not hold that key."""
        kid = hash_key_id(stored)
        if kid is None:
            return input_hash(params)
        self._refresh()  # the keyring as of now: this is a redemption, not the hot path
        hasher = self._hasher(kid)
        return None if hasher is None else hasher(params)

    def _refresh(self) -> None:
        db = self._db
        with db.lock:
            epoch = db.keys_epoch
            state = (db.meta_str("vault_mode"), db.meta_str("tenant_id"), db.meta_str("keyring"))
        if state != self._state:
            mode, _, ring = state
            self._keyring = Keyring.deserialize(ring.encode()) if ring else None
            self._keyed = {}
            self._state = state
            if mode == "cloud_first":
                self._current = input_hash
            else:
                kid = self._keyring.current if self._keyring is not None else DEVICE_KID
                hasher = self._hasher(kid)
                assert hasher is not None  # the current key and the device's own are always held
                self._current = hasher
        self._epoch = epoch
        self._check_at = monotonic() + _RECHECK_S

    def _hasher(self, kid: str) -> KeyedInputHash | None:
        hasher = self._keyed.get(kid)
        if hasher is None:
            if kid == DEVICE_KID:
                secret = self._db.meta_str("input_key")
                if not secret:  # opening the vault made one: made here if it is gone
                    with self._db.tx():
                        secret = self._db.meta_str("input_key") or secrets.token_urlsafe(32)
                        self._db.set_meta("input_key", secret)
                # the device's own: no tenant in it, so joining a hub leaves it as it was
                key = input_hash_key(secret.encode(), "")
            else:
                data_key = self._keyring.key(kid) if self._keyring is not None else None
                if data_key is None:
                    return None
                key = input_hash_key(data_key, self._state[1] if self._state else "")
            hasher = self._keyed[kid] = KeyedInputHash(key, kid)
        return hasher
