"""The hub a vault syncs with: joining it (and enrolling again), the device's key and the hub's
certificate."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import msgspec

from ..errors import ConflictState, InvalidInput
from ..model import OriginStep, SyncItem
from ..truth import record_id
from ._codec import encode_chain
from ._db import VaultDB

__all__ = ["VAULT_MODES", "HubLink"]

VAULT_MODES = ("local_first", "cloud_first")
_item_decoder = msgspec.json.Decoder(SyncItem)
_chain_decoder = msgspec.json.Decoder(tuple[OriginStep, ...])
_encoder = msgspec.json.Encoder()


class HubLink:
    """How one vault reaches its hub: joining it, the device's key, the pinned certificate."""

    def __init__(self, db: VaultDB) -> None:
        self._db = db

    def join(
        self,
        hub_url: str,
        token: str | None,
        tenant_id: str,
        tenant_name: str,
        device_id: str,
        vault_mode: str,
        key_path: str | None = None,
        hub_cert: str | None = None,
    ) -> None:
        """Record the hub (see :meth:`Replica.join`)."""
        _check_join(hub_url, token or key_path, tenant_id, device_id, vault_mode)
        with self._db.tx() as conn:
            old_hub, old_tenant = self._db.meta_str("hub_url"), self._db.meta_str("tenant_id")
            old_device = self._db.meta_str("device_id")
            synced = (
                int(self._db.meta("cursor") or 0) > 0
                or conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM entities WHERE hub_known = 1) "
                    "OR EXISTS (SELECT 1 FROM records WHERE hub_known = 1)"
                ).fetchone()[0]
            )
            if synced and (hub_url != old_hub or tenant_id != old_tenant):
                raise ConflictState(
                    f"this vault already syncs with tenant {old_tenant!r} at {old_hub}; "
                    "it cannot join another hub or tenant",
                    hint="create a new vault (another TRUTHVAULT_HOME) to join a different tenant",
                )
            if tenant_id != old_tenant:
                self._move_unsynced(conn, tenant_id, old_device, device_id)
                # another tenant's keys never reach this one's devices (a refresh merges them in)
                self._db.set_meta("keyring", "")
            # Joining the same tenant again (a revoked device enrolled anew) changes who this
            # vault is from now on, not who wrote what it holds: the old device id is a device
            # of this tenant, and a queued version the hub may already hold (a push whose answer
            # was lost) must come back a duplicate, not look like another device's version.
            for key, value in (
                ("hub_url", hub_url),
                ("hub_token", "" if key_path else token or ""),
                ("hub_auth", "signed" if key_path else "token"),
                ("key_path", self._home_relative(key_path) if key_path else ""),
                ("hub_cert", hub_cert or ""),
                ("tenant_id", tenant_id),
                ("tenant_name", tenant_name),
                ("device_id", device_id),
                ("vault_mode", vault_mode),
            ):
                self._db.set_meta(key, value)
            self._db.keys_epoch += 1
            self._db.recount()  # versions the hub never saw now name this device

    def set_key_path(self, key_path: str) -> None:
        """Where this enrolled device's private key file is now (kept relative to the home when in it)."""
        if not self._db.meta_str("key_path"):
            raise ConflictState("this vault is not enrolled: it has no device key")
        with self._db.tx():
            self._db.set_meta("key_path", self._home_relative(key_path))

    def _move_unsynced(
        self, conn: sqlite3.Connection, tenant_id: str, old_device: str, device_id: str
    ) -> None:
        """Move what the hub never saw to the tenant joined and this vault's device id there."""
        conn.execute("UPDATE entities SET tenant_id = ? WHERE hub_known = 0", (tenant_id,))
        conn.execute(
            "UPDATE entities SET device_id = ? WHERE hub_known = 0 AND device_id = ?",
            (device_id, old_device),
        )
        renamed: dict[str, str] = {}
        for rid, blob in conn.execute("SELECT id, item FROM records WHERE hub_known = 0").fetchall():
            item = _item_decoder.decode(blob)
            item.tenant_id = tenant_id
            if item.device_id == old_device:
                item.device_id = device_id
            # The hub derives a record's id from its item, so the id follows the item.
            new_rid = record_id(item.entity_id, item.last_modified_at, item.device_id)
            conn.execute(
                "UPDATE records SET id = ?, item = ? WHERE id = ?", (new_rid, _encoder.encode(item), rid)
            )
            if new_rid != rid:
                renamed[rid] = new_rid
        if renamed:
            _follow_renamed_records(conn, renamed)

    def set_hub_cert(self, pem: str) -> None:
        """Pin another TLS certificate (PEM) for this vault's https hub: it alone is trusted from now on."""
        hub = self._db.meta_str("hub_url")
        if not hub.lower().startswith("https://"):
            raise ConflictState(
                f"this vault's hub is {hub or 'not set'}: only an https hub has a certificate to pin"
            )
        import ssl  # here: every command imports the vault, few pin a certificate

        try:
            ssl.PEM_cert_to_DER_cert(pem)
        except ValueError:
            raise InvalidInput("not a PEM certificate") from None
        with self._db.tx():
            self._db.set_meta("hub_cert", pem)

    def set_cursor(self, cursor: int) -> None:
        """Remember the last hub sequence number pulled."""
        if cursor < 0:
            raise InvalidInput(f"cursor must be >= 0, not {cursor}")
        with self._db.tx():
            self._db.set_meta("cursor", cursor)
            self._db.forget_history()  # a cursor set by hand comes with no tag

    def _home_relative(self, path: str) -> str:
        """``path`` relative to the vault's home when it lies inside it, so the folder can move."""
        target = Path(path)
        try:
            return str(target.resolve().relative_to(self._db.home.resolve()))
        except ValueError:
            return str(target.resolve())


def _check_join(
    hub_url: str, credential: str | None, tenant_id: str, device_id: str, vault_mode: str
) -> None:
    if vault_mode not in VAULT_MODES:
        raise InvalidInput(f"vault_mode must be one of {', '.join(VAULT_MODES)}, not {vault_mode!r}")
    for name, value in (
        ("hub_url", hub_url),
        ("token or key_path", credential),
        ("tenant_id", tenant_id),
        ("device_id", device_id),
    ):
        if not value:
            raise InvalidInput(f"{name} must not be empty")


def _renamed_chain(chain: tuple[OriginStep, ...], renamed: dict[str, str]) -> tuple[OriginStep, ...] | None:
    """The chain with its refs to renamed records following them, or None when none did."""
    if not any(step.ref in renamed for step in chain):
        return None
    return tuple(
        msgspec.structs.replace(step, ref=renamed[step.ref]) if step.ref in renamed else step
        for step in chain
    )


def _follow_renamed_records(conn: sqlite3.Connection, renamed: dict[str, str]) -> None:
    """Point origin-chain steps that name a renamed record (an accepted suggestion) at its new id."""
    rows = conn.execute("SELECT rowid, origin_chain FROM entities WHERE instr(origin_chain, '\"ref\"') > 0")
    for rowid, blob in rows.fetchall():
        chain = _renamed_chain(_chain_decoder.decode(blob), renamed)
        if chain is not None:
            conn.execute("UPDATE entities SET origin_chain = ? WHERE rowid = ?", (encode_chain(chain), rowid))
    for rid, blob in conn.execute("SELECT id, item FROM records").fetchall():
        item = _item_decoder.decode(blob)
        chain = _renamed_chain(item.origin_chain, renamed)
        if chain is not None:
            item.origin_chain = chain
            conn.execute("UPDATE records SET item = ? WHERE id = ?", (_encoder.encode(item), rid))
