"""The hub store both backends share: the sync engine with the tenants, devices, events and
records a hub's admin and devices read, and the authentication and key-blob methods."""

from __future__ import annotations

import secrets
import time
import uuid

from ..crypto import fingerprint
from ..errors import ConflictState, InvalidInput, NotFound
from ..model import Record
from ._auth import AuthMixin, check_bearer, check_name
from ._keys import KeysMixin
from ._storage import (
    _RECORD_KINDS,
    _RECORD_STATUSES,
    ENTITY_COLUMNS,
    ENTITY_UPSERT_SET,
    TENANT_COUNTERS,
    Cursor,
    Db,
    EntityWrites,
    _detail_decoder,
    _now,
    _record_decoder,
    _token_hash,
)
from ._sync import SyncStore
from .store import SYNC_EVENT_TYPES, VAULT_MODES, Device, DeviceContext, Event, Tenant

__all__ = [
    "ENTITY_COLUMNS",
    "ENTITY_UPSERT_SET",
    "TENANT_COUNTERS",
    "BaseHubStore",
    "Cursor",
    "Db",
    "EntityWrites",
]


class BaseHubStore(AuthMixin, KeysMixin, SyncStore):
    """A hub store over a SQL database; subclasses supply connections and transactions."""

    def add_tenant(self, name: str, vault_mode: str) -> Tenant:
        """Create a tenant; ConflictState if the name is taken, InvalidInput for a bad mode."""
        check_name("tenant name", name)
        if vault_mode not in VAULT_MODES:
            raise InvalidInput(f"vault_mode {vault_mode!r} is not one of {', '.join(VAULT_MODES)}")
        tenant = Tenant(str(uuid.uuid4()), name, vault_mode, _now())
        try:
            with self._write() as db:
                db.execute(
                    "INSERT INTO tenants (id, name, vault_mode, created_at) VALUES (?, ?, ?, ?)",
                    (tenant.id, name, vault_mode, tenant.created_at),
                )
        except self._integrity_errors:
            raise ConflictState(f"tenant {name!r} already exists") from None
        return tenant

    def get_tenant(self, name: str) -> Tenant:
        """A tenant by name; NotFound if there is none."""
        with self._read() as db:
            sql = "SELECT id, name, vault_mode, created_at FROM tenants WHERE name = ?"
            row = db.execute(sql, (name,)).fetchone()
        if row is None:
            raise NotFound(f"no tenant {name!r}", hint="list them with: truthvault hub tenant list")
        return Tenant(*row)

    def list_tenants(self) -> list[Tenant]:
        """All tenants, by name."""
        with self._read() as db:
            rows = db.execute("SELECT id, name, vault_mode, created_at FROM tenants ORDER BY name").fetchall()
        return [Tenant(*row) for row in rows]

    def add_device(self, tenant_name: str, device_name: str) -> tuple[Device, str]:
        """Register a device; return it with its bearer token (shown once, stored hashed)."""
        check_name("device name", device_name)
        tenant = self.get_tenant(tenant_name)
        token = secrets.token_urlsafe(32)
        device = Device(str(uuid.uuid4()), tenant.id, device_name, _now(), None, 0)
        try:
            with self._write() as db:
                db.execute(
                    "INSERT INTO devices (id, tenant_pk, name, token_hash, created_at) "
                    "VALUES (?, (SELECT pk FROM tenants WHERE id = ?), ?, ?, ?)",
                    (device.id, tenant.id, device_name, _token_hash(token), device.created_at),
                )
        except self._integrity_errors:
            raise ConflictState(f"tenant {tenant_name!r} already has a device {device_name!r}") from None
        return device, token

    def list_devices(self, tenant_name: str) -> list[Device]:
        """A tenant's devices, by name."""
        tenant = self.get_tenant(tenant_name)
        with self._read() as db:
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

    def authenticate(self, token: str) -> DeviceContext:
        """The device a bearer token belongs to (see :meth:`HubStore.authenticate`)."""
        return check_bearer(self.token_holder(token), time.time())

    def head(self, tenant_id: str) -> int:
        """The tenant's latest sequence number (0 when empty)."""
        with self._read() as db:
            row = db.execute("SELECT head_seq FROM tenants WHERE pk = ?", (self._tenant_pk(tenant_id),))
            return int(row.fetchone()[0])

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
        self.flush_notes()
        sql = (
            "SELECT e.id, e.type, e.at, e.device_id, e.entity_id, e.detail, d.name FROM sync_events e "
            "LEFT JOIN devices d ON d.id = e.device_id AND d.tenant_pk = e.tenant_pk "
            "WHERE e.tenant_pk = ? AND e.id > ?"
        )
        params: list[object] = [self._tenant_pk(tenant_id), since]
        if type is not None:
            sql += " AND e.type = ?"
            params.append(type)
        order = " ORDER BY e.id DESC" if newest_first else " ORDER BY e.id"
        with self._read() as db:
            rows = db.execute(sql + order + " LIMIT ?", (*params, limit)).fetchall()
        return [Event(int(r[0]), r[1], r[2], r[3], r[4], _detail_decoder.decode(r[5]), r[6]) for r in rows]

    def list_records(
        self, ctx: DeviceContext, kind: str | None = None, status: str | None = "open", limit: int = 1000
    ) -> list[Record]:
        """The tenant's suggestions and conflict records, newest first."""
        if kind not in _RECORD_KINDS or status not in _RECORD_STATUSES:
            raise InvalidInput(f"no records of kind {kind!r} with status {status!r}")
        sql = "SELECT wire FROM records WHERE tenant_pk = ?"
        params: list[object] = [self._tenant_pk(ctx.tenant_id)]
        for column, value in (("kind", kind), ("status", status)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        with self._read() as db:
            rows = db.execute(sql + " ORDER BY seq DESC LIMIT ?", (*params, limit)).fetchall()
        return [_record_decoder.decode(row[0]) for row in rows]
