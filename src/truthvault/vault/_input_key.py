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

The keys a vault derives (this hash's, and the approval seals' of :mod:`._approval_seal`) come
from :class:`VaultKeys`: the vault's mode, tenant and keyring as of now, or its own key. The
key is derived once per key id and process. A rotation makes the new data key's the
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

__all__ = ["DEVICE_KID", "VaultInputHash", "VaultKeys"]

#: the key id of a device's own input-hash key (a keyring's ids are eight characters long)
DEVICE_KID = "device"
#: how often (seconds) a process looks whether another one changed the vault's keyring
_RECHECK_S = 1.0


class VaultKeys:
    """What a vault derives its keys from: its mode, tenant and keyring (re-read when this
    process changed them, and at most a second after another process did), or its own random
    key (``input_key`` in meta) before it holds a keyring. ``version`` changes with them."""

    __slots__ = ("_check_at", "_db", "_epoch", "_keyring", "_state", "version")

    def __init__(self, db: VaultDB) -> None:
        self._db = db
        self._epoch = -1
        self._check_at = 0.0
        self._state: tuple[str, str, str, str] | None = None
        self._keyring: Keyring | None = None
        self.version = 0

    def fresh(self) -> None:
        """Re-read the keys if they may have changed (cheap when they may not)."""
        if self._epoch != self._db.keys_epoch or monotonic() >= self._check_at:
            self.refresh()

    def refresh(self) -> None:
        """Re-read the keys as of now."""
        db = self._db
        with db.lock:
            epoch = db.keys_epoch
            state = (
                db.meta_str("vault_mode"),
                db.meta_str("tenant_id"),
                db.meta_str("keyring"),
                db.meta_str("device_id"),
            )
        if state != self._state:
            ring = state[2]
            self._keyring = Keyring.deserialize(ring.encode()) if ring else None
            self._state = state
            self.version += 1
        self._epoch = epoch
        self._check_at = monotonic() + _RECHECK_S

    @property
    def cloud_first(self) -> bool:
        """Does the hub read this tenant's data (no key is kept from it)?"""
        return self._state is not None and self._state[0] == "cloud_first"

    @property
    def tenant_id(self) -> str:
        return self._state[1] if self._state else ""

    @property
    def device_id(self) -> str:
        return self._state[3] if self._state else ""

    @property
    def current(self) -> str:
        """The id of the key to use now: the keyring's current one, or the device's own."""
        return self._keyring.current if self._keyring is not None else DEVICE_KID

    def secret(self, kid: str) -> tuple[bytes, str] | None:
        """The secret key ``kid`` names and the tenant to derive under (none for the device's
        own, so that joining a hub leaves it as it was); None when this vault lacks it."""
        if kid == DEVICE_KID:
            secret = self._db.meta_str("input_key")
            if not secret:  # opening the vault made one: made here if it is gone
                with self._db.tx():
                    secret = self._db.meta_str("input_key") or secrets.token_urlsafe(32)
                    self._db.set_meta("input_key", secret)
            return secret.encode(), ""
        data_key = self._keyring.key(kid) if self._keyring is not None else None
        return None if data_key is None else (data_key, self.tenant_id)


class VaultInputHash:
    """The :class:`~truthvault.kernel.InputHasher` of one vault's kernel (see the module)."""

    __slots__ = ("_current", "_keyed", "_keys", "_version")

    def __init__(self, db: VaultDB) -> None:
        self._keys = VaultKeys(db)
        self._version = -1
        self._keyed: dict[str, KeyedInputHash] = {}
        self._current: Callable[[BaseModel], str] = input_hash

    def __call__(self, params: BaseModel) -> str:
        keys = self._keys
        keys.fresh()
        if keys.version != self._version:
            self._rebuild()
        return self._current(params)

    def under(self, stored: str, params: BaseModel) -> str | None:
        """The input's hash under the key ``stored`` names (plain when it names none); None
        when this vault does not hold that key."""
        kid = hash_key_id(stored)
        if kid is None:
            return input_hash(params)
        self._keys.refresh()  # the keyring as of now: this is a redemption, not the hot path
        if self._keys.version != self._version:
            self._rebuild()
        hasher = self._hasher(kid)
        return None if hasher is None else hasher(params)

    def _rebuild(self) -> None:
        keys = self._keys
        self._keyed = {}
        self._version = keys.version
        if keys.cloud_first:
            self._current = input_hash
        else:
            hasher = self._hasher(keys.current)
            assert hasher is not None  # the current key and the device's own are always held
            self._current = hasher

    def _hasher(self, kid: str) -> KeyedInputHash | None:
        hasher = self._keyed.get(kid)
        if hasher is None:
            secret = self._keys.secret(kid)
            if secret is None:
                return None
            hasher = self._keyed[kid] = KeyedInputHash(input_hash_key(*secret), kid)
        return hasher
