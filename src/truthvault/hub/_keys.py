"""The hub store's key blobs: tenant keyrings wrapped to devices, and the recovery envelope.

The hub only keeps and hands back these envelopes; it has no key that opens them. Portable
SQL over the same primitives as :mod:`truthvault.hub._base` (which mixes this in).
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from ..errors import ConflictState, InvalidEnrolCode, InvalidInput, NotFound
from ._auth import hash_secret, insert_security_event, iso_s, normalise_code
from ._sql import Db, SqlDatabase
from .store import DeviceContext, KeyHolder, Tenant, WrappedKey

__all__ = ["KeyBlobs"]

_MAX_BLOB = 64 << 10


def _check_blob(what: str, blob: str) -> None:
    if not blob or len(blob) > _MAX_BLOB:
        raise InvalidInput(f"{what}: a key envelope must be 1-{_MAX_BLOB} characters")


def _upsert(db: Db, pk: int, kind: str, device_id: str, blob: str, kid: str, at: str, by: str) -> None:
    db.execute(
        "INSERT INTO key_blobs (tenant_pk, kind, device_id, blob, kid, updated_at, updated_by) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_pk, kind, device_id) DO UPDATE SET "
        "blob = excluded.blob, kid = excluded.kid, updated_at = excluded.updated_at, "
        "updated_by = excluded.updated_by",
        (pk, kind, device_id, blob, kid, at, by),
    )


class KeyBlobs:
    """Tenant keyrings wrapped to devices, and the tenant's recovery envelope."""

    def __init__(self, database: SqlDatabase) -> None:
        self._db = database

    def key_holders(self, ctx: DeviceContext) -> list[KeyHolder]:
        """The tenant's devices with their box keys (none for a revoked one) and their copy's key id."""
        pk = self._db.tenant_pk(ctx.tenant_id)
        with self._db.read() as db:
            rows = db.execute(
                "SELECT d.id, d.name, d.box_public, k.kid, d.revoked FROM devices d LEFT JOIN key_blobs k "
                "ON k.tenant_pk = d.tenant_pk AND k.kind = 'device' AND k.device_id = d.id "
                "WHERE d.tenant_pk = ? ORDER BY d.name",
                (pk,),
            ).fetchall()
        # A revoked device is listed for what its copy holds (a key it may still have), never
        # with its box key: nothing is wrapped to it again, by this client or an older one.
        return [KeyHolder(r[0], r[1], None if r[4] else r[2], r[3], bool(r[4])) for r in rows]

    def put_wrapped_keys(
        self, ctx: DeviceContext, blobs: Mapping[str, str], kid: str, genesis: bool = False
    ) -> int:
        """Store keyrings wrapped to devices of the caller's tenant (see :class:`HubStore`)."""
        pk, at = self._db.tenant_pk(ctx.tenant_id), iso_s(time.time())
        for device_id, blob in blobs.items():
            _check_blob(f"blobs.{device_id}", blob)
        with self._db.write() as db:
            # The tenant row lock serialises two first devices racing to create the keyring.
            db.execute("SELECT pk FROM tenants WHERE pk = ?" + self._db.lock_clause, (pk,))
            if genesis:
                taken = db.execute(
                    "SELECT updated_by FROM key_blobs WHERE tenant_pk = ? AND kind IN ('genesis', 'device') "
                    "LIMIT 1",
                    (pk,),
                ).fetchone()
                if taken is not None:
                    raise ConflictState(
                        "this tenant already has a data key", hint="fetch this device's wrapped copy"
                    )
                _upsert(db, pk, "genesis", "", "-", kid, at, ctx.device_id)
            for device_id, blob in blobs.items():
                row = db.execute(
                    "SELECT box_public FROM devices WHERE id = ? AND tenant_pk = ? AND revoked = ?",
                    (device_id, pk, False),
                ).fetchone()
                if row is None or not row[0]:
                    raise NotFound(f"blobs.{device_id}: no active device with a box key in this tenant")
                _upsert(db, pk, "device", device_id, blob, kid, at, ctx.device_id)
            detail = {"kid": kid, "to": sorted(blobs), "genesis": genesis}
            insert_security_event(db, "KEYS_SHARED", pk, ctx.device_id, detail, at)
        return len(blobs)

    def get_wrapped_key(self, ctx: DeviceContext) -> WrappedKey:
        """The caller's own wrapped keyring, and whether the tenant has a data key at all."""
        pk = self._db.tenant_pk(ctx.tenant_id)
        with self._db.read() as db:
            rows = db.execute(
                "SELECT kind, device_id, blob, kid FROM key_blobs WHERE tenant_pk = ?", (pk,)
            ).fetchall()
        mine = next((r for r in rows if r[0] == "device" and r[1] == ctx.device_id), None)
        return WrappedKey(mine[2] if mine else None, mine[3] if mine else None, bool(rows))

    def put_recovery_blob(self, ctx: DeviceContext, blob: str, kid: str) -> None:
        """Store the tenant's passphrase-wrapped keyring, replacing any before it."""
        _check_blob("blob", blob)
        pk, at = self._db.tenant_pk(ctx.tenant_id), iso_s(time.time())
        with self._db.write() as db:
            _upsert(db, pk, "recovery", "", blob, kid, at, ctx.device_id)
            insert_security_event(db, "KEY_RECOVERY_SET", pk, ctx.device_id, {"kid": kid}, at)

    def recovery_kid(self, ctx: DeviceContext) -> str | None:
        """The key id of the tenant's recovery copy, or None when there is none; records nothing."""
        pk = self._db.tenant_pk(ctx.tenant_id)
        with self._db.read() as db:
            row = db.execute(
                "SELECT kid FROM key_blobs WHERE tenant_pk = ? AND kind = 'recovery' AND device_id = ''",
                (pk,),
            ).fetchone()
        return None if row is None else str(row[0])

    def get_recovery_blob(self, ctx: DeviceContext) -> str | None:
        """The tenant's passphrase-wrapped keyring, or None; records KEY_RECOVERY_FETCHED."""
        pk, at = self._db.tenant_pk(ctx.tenant_id), iso_s(time.time())
        with self._db.write() as db:
            row = db.execute(
                "SELECT blob FROM key_blobs WHERE tenant_pk = ? AND kind = 'recovery' AND device_id = ''",
                (pk,),
            ).fetchone()
            # Every fetch is on record: the envelope is what a passphrase guesser would need.
            insert_security_event(
                db, "KEY_RECOVERY_FETCHED", pk, ctx.device_id, {"found": row is not None}, at
            )
        return None if row is None else str(row[0])

    def recovery_blob_for_code(self, code: str) -> tuple[Tenant, str | None]:
        """The passphrase-wrapped keyring of an unspent enrolment code's tenant; the code stays unspent."""
        at = iso_s(time.time())
        with self._db.write() as db:
            row = db.execute(
                "SELECT c.used_at, c.expires_at, t.id, t.name, t.vault_mode, t.created_at, t.pk, k.blob "
                "FROM enrol_codes c JOIN tenants t ON t.pk = c.tenant_pk LEFT JOIN key_blobs k "
                "ON k.tenant_pk = t.pk AND k.kind = 'recovery' AND k.device_id = '' WHERE c.code_hash = ?",
                (hash_secret(normalise_code(code)),),
            ).fetchone()
            if row is None:
                raise InvalidEnrolCode("unknown enrolment code", hint="check it, or ask for a new one")
            if row[0] is not None or row[1] <= at:
                used = "was already used" if row[0] is not None else "has expired"
                raise InvalidEnrolCode(
                    f"this enrolment code {used}",
                    hint="issue another with: truthvault hub tenant code TENANT",
                )
            tenant = Tenant(*row[2:6])
            if tenant.vault_mode != "local_first":
                raise ConflictState(
                    f"tenant {tenant.name!r} is {tenant.vault_mode}: its payloads are not end-to-end "
                    "encrypted, there is no data key to recover"
                )
            # A code's holder could enrol and fetch the envelope as a device; this fetch is on
            # record the same way, so a passphrase guesser's copy shows up either way.
            detail = {"found": row[7] is not None, "by": "enrolment code"}
            insert_security_event(db, "KEY_RECOVERY_FETCHED", int(row[6]), None, detail, at)
        return tenant, None if row[7] is None else str(row[7])
