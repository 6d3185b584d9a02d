"""Key exchange for local-first tenants: how the tenant's keyring reaches each of its devices.

The hub only relays envelopes: a keyring wrapped to one device's X25519 box key, or wrapped
with the recovery passphrase (scrypt). Whoever holds the keyring wraps it for devices whose
copy is missing or older, at the start of each sync.
"""

from __future__ import annotations

from typing import Any

from ..crypto import (
    DeviceKeys,
    Keyring,
    unwrap_for_device,
    unwrap_with_passphrase,
    wrap_for_device,
    wrap_with_passphrase,
)
from ..errors import ConflictState, DecryptionFailed, InvalidInput
from ..vault import Vault
from ._transport import HubClient

__all__ = ["KeyExchange", "merge_keyrings", "open_recovery"]

WAITING_HINT = "sync a device that has the key (it shares it with this one), or run 'truthvault keys recover'"


def merge_keyrings(mine: Keyring | None, theirs: Keyring) -> Keyring:
    """Every key of both; ``theirs`` says which is current (it is the newer copy)."""
    keys = {kid: key for ring in (mine, theirs) if ring for kid in ring.kids if (key := ring.key(kid))}
    return Keyring(keys, theirs.current)


def open_recovery(blob: str | None, passphrase: str) -> Keyring:
    """The keyring in a tenant's recovery envelope; DecryptionFailed for a wrong passphrase."""
    if not blob:
        raise ConflictState(
            "this tenant has no recovery passphrase set",
            hint="set one on a device that has the key: truthvault keys recovery set",
        )
    try:
        return Keyring.deserialize(unwrap_with_passphrase(blob.encode(), passphrase))
    except InvalidInput:
        raise DecryptionFailed("the recovery envelope holds no keyring", reason="malformed") from None


class KeyExchange:
    """Gets, shares, rotates and recovers a tenant's keyring through the hub, for one vault."""

    def __init__(self, vault: Vault, client: HubClient, device_keys: DeviceKeys | None) -> None:
        self.vault = vault
        self.client = client
        self.device_keys = device_keys

    # The key endpoints go through the client's one request path (errors, signing) directly,
    # so this feature adds no surface to the transport module.
    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self.client._request(method, path, json=body).json()

    def _unwrap(self, blob: str) -> Keyring:
        if self.device_keys is None:
            raise ConflictState("this device has no box key to open a wrapped key with")
        return Keyring.deserialize(unwrap_for_device(blob.encode(), self.device_keys))

    def _own_box(self) -> str | None:
        return self.device_keys.public_bundle()["box"] if self.device_keys else None

    def refresh(self, force: bool = False) -> Keyring | None:
        """Take in this device's wrapped copy at the hub when its current key differs from the
        local keyring's (or, ``force``, always: a payload named a key this device lacks).

        Two devices rotating at once each share a keyring without the other's new key, and the
        later share overwrites the earlier. So when the copy taken in lacks a key this device
        holds, the union goes back to every device: the rotations converge, nothing sealed under
        either key becomes unreadable.

        A copy is wrapped with this device's public box key alone, which the hub serves: the hub
        could wrap a keyring of its own making. No key ever leaves a keyring, so every copy a
        device of the tenant wraps holds the tenant's first key: one that shares no key with
        this device's is refused (DecryptionFailed), never taken in.
        """
        local = self.vault.replica.keyring()
        found = self._call("GET", "/v1/keys/wrapped")
        if found["blob"] and (force or local is None or found["kid"] != local.current):
            theirs = self._unwrap(found["blob"])
            if local is not None and not set(theirs.kids) & set(local.kids):
                raise DecryptionFailed(
                    "the tenant key the hub holds for this device shares no key with this device's "
                    "keyring: no device of the tenant wrapped it, and it was not taken in",
                    reason="tampered",
                    hint="the hub (or someone between) made it up: nothing was pushed or pulled; "
                    "tell the hub's operator, or check the hub's certificate pin",
                )
            merged = merge_keyrings(local, theirs)
            if set(merged.kids) != set(theirs.kids):
                self.share(merged, everyone=True)
            self.vault.replica.set_keyring(merged)
            return merged
        if local is None and not found["tenant_keyed"]:
            return self._genesis()
        return local

    def _genesis(self) -> Keyring | None:
        """Create the tenant's first keyring (this is its first device) and keep a wrapped copy."""
        keyring = Keyring.new()
        blobs = {}
        if (box := self._own_box()) is not None:
            blobs[self.vault.device_id] = wrap_for_device(keyring.serialize(), box).decode()
        try:
            # At the hub first: of two first devices racing, only one keyring may win.
            self._call("PUT", "/v1/keys/wrapped", {"blobs": blobs, "kid": keyring.current, "genesis": True})
        except ConflictState:
            return self.refresh_after_race()
        self.vault.replica.set_keyring(keyring)
        return keyring

    def refresh_after_race(self) -> Keyring | None:
        found = self._call("GET", "/v1/keys/wrapped")
        if not found["blob"]:
            return None
        keyring = self._unwrap(found["blob"])
        self.vault.replica.set_keyring(keyring)
        return keyring

    def ensure(self) -> Keyring:
        """The keyring, fetched or created as needed, shared with devices lacking it; else ConflictState."""
        keyring = self.refresh()
        if keyring is None:
            if self._own_box() is None:
                # Added with a bearer token: no box key, so no device can ever wrap the key to it.
                raise ConflictState(
                    "this device has no key to receive the tenant's data key with (it was added "
                    "with a token), and the tenant is local-first: nothing was pushed or pulled",
                    hint="run 'truthvault keys recover' (the recovery passphrase), or enrol the "
                    "device instead: 'truthvault hub tenant code' on the hub, 'truthvault enroll' here",
                )
            raise ConflictState(
                "waiting for the tenant's data key: nothing was pushed or pulled", hint=WAITING_HINT
            )
        self.share(keyring)
        return keyring

    def share(self, keyring: Keyring, *, everyone: bool = False, replacing: str | None = None) -> int:
        """Wrap the keyring for each device whose copy is missing or older (or, ``everyone``, all;
        or, ``replacing``, those whose copy has that key current: a rotation undone)."""
        holders = self._call("GET", "/v1/keys/devices")
        blobs = {
            h["id"]: wrap_for_device(keyring.serialize(), h["box_public"]).decode()
            for h in holders
            # A key id this device does not know is newer than its own: never overwrite it.
            if h["box_public"]
            and (
                h["kid"] is None
                or (h["kid"] == replacing if replacing else everyone)
                or (not replacing and h["kid"] in keyring.kids and h["kid"] != keyring.current)
            )
        }
        if blobs:
            self._call("PUT", "/v1/keys/wrapped", {"blobs": blobs, "kid": keyring.current})
        return len(blobs)

    def rotate(self, passphrase: str | None = None) -> Keyring:
        """A new current data key: shared with every device (and the recovery copy), then kept here."""
        keyring = self.refresh()
        if keyring is None:
            raise ConflictState("this device has no tenant key to rotate", hint=WAITING_HINT)
        rotated = Keyring({kid: k for kid in keyring.kids if (k := keyring.key(kid))}, keyring.current)
        rotated.rotate()
        # Shared before it is kept here: a device that seals with a key no other device has
        # would write entries nobody else can read.
        self.share(rotated, everyone=True)
        if passphrase is not None:
            self.set_recovery(passphrase, rotated)
        self.vault.replica.set_keyring(rotated)
        return rotated

    def set_recovery(self, passphrase: str, keyring: Keyring | None = None) -> None:
        """Store the keyring at the hub wrapped with the recovery passphrase."""
        keyring = keyring or self.ensure()
        blob = wrap_with_passphrase(keyring.serialize(), passphrase).decode()
        self._call("PUT", "/v1/keys/recovery", {"blob": blob, "kid": keyring.current})

    def has_recovery(self) -> bool:
        """Whether the tenant has a recovery copy; asks without fetching it, so nothing is on record."""
        return bool(self._call("GET", "/v1/keys/recovery/status")["set"])

    def recover(self, passphrase: str) -> Keyring:
        """Open the recovery copy with the passphrase, keep it here, and wrap it to this device."""
        return self.adopt(open_recovery(self._call("GET", "/v1/keys/recovery")["blob"], passphrase))

    def adopt(self, recovered: Keyring) -> Keyring:
        """Keep a keyring opened from the recovery copy here, and wrap it to this device."""
        local = self.vault.replica.keyring()
        # A key already here stays current: the recovery copy may predate a rotation.
        keyring = merge_keyrings(recovered, local) if local else recovered
        self.vault.replica.set_keyring(keyring)
        if (box := self._own_box()) is not None:
            blob = wrap_for_device(keyring.serialize(), box).decode()
            self._call(
                "PUT", "/v1/keys/wrapped", {"blobs": {self.vault.device_id: blob}, "kid": keyring.current}
            )
        return keyring

    def holders(self) -> list[dict[str, Any]]:
        """The tenant's devices as key sharing sees them (revoked ones flagged, with no box key)."""
        result: list[dict[str, Any]] = self._call("GET", "/v1/keys/devices")
        return result

    def exposed_to(self, holders: list[dict[str, Any]] | None = None) -> list[str]:
        """The revoked devices whose copy holds the current data key (or one newer than this
        device's): a rotation gives new writes a key they never had."""
        keyring = self.vault.replica.keyring()
        if keyring is None:
            return []
        return [
            h["name"]
            for h in (self.holders() if holders is None else holders)
            if h.get("revoked")
            and h["kid"] is not None
            and (h["kid"] == keyring.current or h["kid"] not in keyring.kids)
        ]
