"""The hub's tenants and devices, and what an admin or a device reads of a tenant's sync: its
head, its events and its records. A repository over the hub's :class:`~._sql.SqlDatabase`."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import msgspec

from ..crypto import fingerprint
from ..errors import ConflictState, InvalidInput, NotFound
from ..model import Record
from ._notes import INSERT_EVENTS, PullNotes
from ._port import now
from ._sql import SqlDatabase, hash_secret
from .store import SYNC_EVENT_TYPES, VAULT_MODES, Device, DeviceContext, Event, Tenant

__all__ = ["TENANT_TABLES", "Tenants", "check_name"]

#: every table that keeps rows of a tenant (by ``tenant_pk``); a test checks it against the schema
TENANT_TABLES = (
    "audit_batches", "audit_entries", "audit_heads", "audit_nodes", "audit_pending",
    "broker_pins", "broker_requests", "commits", "contract_use", "contracts", "device_reports", "devices",
    "enrol_codes", "entities", "head_marks", "key_blobs", "policy_versions", "records",
    "security_events", "sync_events", "webhook_deliveries", "webhooks",
)  # fmt: skip
_RECORD_KINDS = (None, "suggestion", "conflict")
_RECORD_STATUSES = (None, "open", "accepted", "rejected", "resolved")

_record_decoder = msgspec.json.Decoder(Record)
_detail_decoder = msgspec.json.Decoder(dict[str, Any])


def check_name(what: str, name: str) -> None:
    """InvalidInput unless ``name`` is 1-200 printable characters without surrounding spaces."""
    if not name or len(name) > 200 or name != name.strip() or not name.isprintable():
        raise InvalidInput(f"{what} {name!r} must be 1-200 printable characters, no surrounding spaces")


class Tenants:
    """Tenants, devices, and the reading of a tenant's head, events and records."""

    def __init__(self, database: SqlDatabase, notes: PullNotes) -> None:
        self._db = database
        self._notes = notes

    def add_tenant(self, name: str, vault_mode: str) -> Tenant:
        """Create a tenant; ConflictState if the name is taken, InvalidInput for a bad mode."""
        check_name("tenant name", name)
        if vault_mode not in VAULT_MODES:
            raise InvalidInput(f"vault_mode {vault_mode!r} is not one of {', '.join(VAULT_MODES)}")
        tenant = Tenant(str(uuid.uuid4()), name, vault_mode, now())
        try:
            with self._db.write() as db:
                db.execute(
                    "INSERT INTO tenants (id, name, vault_mode, created_at) VALUES (?, ?, ?, ?)",
                    (tenant.id, name, vault_mode, tenant.created_at),
                )
        except self._db.integrity_errors:
            raise ConflictState(f"tenant {name!r} already exists") from None
        return tenant

    def drop_new_tenant(self, tenant_id: str) -> None:
        """Remove a tenant that holds nothing yet (no device, nothing synced): what undoes a
        provisioning that failed half-way. Gone already is done; ConflictState if it holds
        anything."""
        with self._db.write() as db:
            row = db.execute("SELECT pk, head_seq FROM tenants WHERE id = ?", (tenant_id,)).fetchone()
            if row is None:
                return
            pk = int(row[0])
            devices = db.execute("SELECT count(*) FROM devices WHERE tenant_pk = ?", (pk,)).fetchone()[0]
            if int(row[1] or 0) or int(devices):
                raise ConflictState(f"tenant {tenant_id} holds devices or data: it is not removed")
            for table in TENANT_TABLES:
                db.execute(f"DELETE FROM {table} WHERE tenant_pk = ?", (pk,))
            db.execute("DELETE FROM tenants WHERE pk = ?", (pk,))
            self._db.forget_tenant(tenant_id)

    def add_event(
        self, tenant_id: str, type: str, detail: dict[str, object], device_id: str | None = None
    ) -> None:
        """Record a sync event in the tenant's feed (in the caller's write, if any)."""
        if type not in SYNC_EVENT_TYPES:
            raise InvalidInput(f"type: unknown event type {type!r}; known: {', '.join(SYNC_EVENT_TYPES)}")
        pk = self._db.tenant_pk(tenant_id)
        with self._db.write() as db:
            db.execute(
                INSERT_EVENTS, (pk, type, now(), device_id, None, msgspec.json.encode(detail).decode())
            )

    def get_tenant(self, name: str) -> Tenant:
        """A tenant by name; NotFound if there is none."""
        with self._db.read() as db:
            sql = "SELECT id, name, vault_mode, created_at FROM tenants WHERE name = ?"
            row = db.execute(sql, (name,)).fetchone()
        if row is None:
            raise NotFound(f"no tenant {name!r}", hint="list them with: truthvault hub tenant list")
        return Tenant(*row)

    def list_tenants(self) -> list[Tenant]:
        """All tenants, by name."""
        with self._db.read() as db:
            rows = db.execute("SELECT id, name, vault_mode, created_at FROM tenants ORDER BY name").fetchall()
        return [Tenant(*row) for row in rows]

    def add_device(self, tenant_name: str, device_name: str) -> tuple[Device, str]:
        """Register a device; return it with its bearer token (shown once, stored hashed)."""
        check_name("device name", device_name)
        tenant = self.get_tenant(tenant_name)
        token = secrets.token_urlsafe(32)
        device = Device(str(uuid.uuid4()), tenant.id, device_name, now(), None, 0)
        try:
            with self._db.write() as db:
                db.execute(
                    "INSERT INTO devices (id, tenant_pk, name, token_hash, created_at) "
                    "VALUES (?, (SELECT pk FROM tenants WHERE id = ?), ?, ?, ?)",
                    (device.id, tenant.id, device_name, hash_secret(token), device.created_at),
                )
        except self._db.integrity_errors:
            raise ConflictState(f"tenant {tenant_name!r} already has a device {device_name!r}") from None
        return device, token

    def list_devices(self, tenant_name: str) -> list[Device]:
        """A tenant's devices, by name."""
        tenant = self.get_tenant(tenant_name)
        with self._db.read() as db:
            rows = db.execute(
                "SELECT d.id, d.name, d.created_at, d.last_seen_at, d.last_mutation, d.revoked, d.sign_public "
                "FROM devices d "
                "JOIN tenants t ON t.pk = d.tenant_pk WHERE t.id = ? ORDER BY d.name",
                (tenant.id,),
            ).fetchall()
        return [
            Device(
                r[0], tenant.id, r[1], r[2], r[3], int(r[4]), bool(r[5]), fingerprint(r[6]) if r[6] else None
            )
            for r in rows
        ]

    def head(self, tenant_id: str) -> int:
        """The tenant's latest sequence number (0 when empty)."""
        pk = self._db.tenant_pk(tenant_id)
        with self._db.read() as db:
            return int(db.execute("SELECT head_seq FROM tenants WHERE pk = ?", (pk,)).fetchone()[0])

    def events(
        self,
        tenant_id: str,
        since: int = 0,
        limit: int = 100,
        type: str | None = None,
        newest_first: bool = False,
    ) -> list[Event]:
        """The tenant's events after id ``since``, oldest (or newest) first, with device names."""
        if type is not None:
            type = type.upper()
            if type not in SYNC_EVENT_TYPES:
                raise InvalidInput(f"type: unknown event type {type!r}; known: {', '.join(SYNC_EVENT_TYPES)}")
        self._notes.flush()
        sql = (
            "SELECT e.id, e.type, e.at, e.device_id, e.entity_id, e.detail, d.name FROM sync_events e "
            "LEFT JOIN devices d ON d.id = e.device_id AND d.tenant_pk = e.tenant_pk "
            "WHERE e.tenant_pk = ? AND e.id > ?"
        )
        params: list[object] = [self._db.tenant_pk(tenant_id), since]
        if type is not None:
            sql += " AND e.type = ?"
            params.append(type)
        order = " ORDER BY e.id DESC" if newest_first else " ORDER BY e.id"
        with self._db.read() as db:
            rows = db.execute(sql + order + " LIMIT ?", (*params, limit)).fetchall()
        return [Event(int(r[0]), r[1], r[2], r[3], r[4], _detail_decoder.decode(r[5]), r[6]) for r in rows]

    def list_records(
        self, ctx: DeviceContext, kind: str | None = None, status: str | None = "open", limit: int = 1000
    ) -> list[Record]:
        """The tenant's suggestions and conflict records, newest first."""
        if kind not in _RECORD_KINDS or status not in _RECORD_STATUSES:
            raise InvalidInput(f"no records of kind {kind!r} with status {status!r}")
        sql = "SELECT wire FROM records WHERE tenant_pk = ?"
        params: list[object] = [self._db.tenant_pk(ctx.tenant_id)]
        for column, value in (("kind", kind), ("status", status)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        with self._db.read() as db:
            rows = db.execute(sql + " ORDER BY seq DESC LIMIT ?", (*params, limit)).fetchall()
        return [_record_decoder.decode(row[0]) for row in rows]
