"""The hub's storage port: one interface, one adapter per database (SQLite, PostgreSQL).

Every method is scoped to one tenant through the :class:`DeviceContext` it is given
(or a tenant name for the admin methods); no query ever reads across tenants.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from ..model import PullResponse, PushRequest, PushResponse, Record, SyncItem

__all__ = [
    "Device",
    "DeviceContext",
    "Event",
    "HubStore",
    "Limits",
    "Tenant",
    "VaultMode",
    "open_store",
]

VaultMode = Literal["local_first", "cloud_first"]
VAULT_MODES: tuple[str, ...] = ("local_first", "cloud_first")


@dataclass(frozen=True, slots=True)
class Tenant:
    id: str  # a UUID, as it appears in SyncItem.tenant_id
    name: str
    vault_mode: str
    created_at: str


@dataclass(frozen=True, slots=True)
class Device:
    id: str  # a UUID, as it appears in SyncItem.device_id
    tenant_id: str
    name: str
    created_at: str
    last_seen_at: str | None
    last_mutation: int
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class DeviceContext:
    """Who is asking: one device of one tenant, as authentication established."""

    tenant_id: str
    tenant_name: str
    vault_mode: str
    device_id: str
    device_name: str


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    type: str  # SYNC_PUSH, SYNC_PULL, TRUTH_UPGRADE, CONFLICT_DETECTED, AI_SUGGESTION_GENERATED, ...
    at: str
    device_id: str | None
    entity_id: str | None
    detail: dict[str, object]


@dataclass(frozen=True, slots=True)
class Limits:
    """Input limits the hub enforces on pushes."""

    max_payload_bytes: int = 1 << 20
    max_batch_items: int = 5000
    max_future_skew_ms: int = 15 * 60 * 1000


class HubStore(Protocol):
    """What the hub needs of its database. Implementations must be safe to call from
    several threads at once and, for PostgreSQL, from several hub processes at once."""

    backend: str  # "sqlite" or "postgresql"

    def close(self) -> None:
        """Release connections."""

    # -- admin ---------------------------------------------------------------
    def add_tenant(self, name: str, vault_mode: str) -> Tenant:
        """Create a tenant; ConflictState if the name is taken, InvalidInput for a bad mode."""

    def get_tenant(self, name: str) -> Tenant:
        """A tenant by name; NotFound if there is none."""

    def list_tenants(self) -> list[Tenant]:
        """All tenants, by name."""

    def add_device(self, tenant_name: str, device_name: str) -> tuple[Device, str]:
        """Register a device and return it with its bearer token (shown once, stored hashed).

        NotFound for an unknown tenant; ConflictState if the tenant has a device of that name.
        """

    def list_devices(self, tenant_name: str) -> list[Device]:
        """A tenant's devices, by name."""

    def authenticate(self, token: str) -> DeviceContext:
        """The device a bearer token belongs to; Unauthorized if none (or revoked)."""

    # -- sync ----------------------------------------------------------------
    def push(self, ctx: DeviceContext, request: PushRequest, limits: Limits, now_ms: int) -> PushResponse:
        """Apply a batch atomically and idempotently.

        Every item is checked first (:func:`truthvault.model.prepare_item`, mutations
        strictly increasing and present); one bad item refuses the whole batch with an
        error naming it and nothing is written. Items whose mutation is not above the
        device's last applied mutation are answered ``duplicate`` and write nothing.
        The rest go through :func:`truthvault.merge.plan_merge`; entity changes, kept
        losers (records), decisions, events (SYNC_PUSH once, CONFLICT_DETECTED,
        AI_SUGGESTION_GENERATED, TRUTH_UPGRADE), the tenant's checksum and head and the
        device's last mutation are written in one transaction. Each entity change and
        each new or changed record takes the next number of the tenant's sequence, and
        numbers become visible to pulls in order (no pull may see n+1 before n).
        ResyncRequired if ``request.cursor`` is behind the tenant's purge horizon.
        """

    def pull(self, ctx: DeviceContext, since: int, limit: int) -> PullResponse:
        """Changes after ``since``, in sequence order, at most ``limit`` (items and records
        together), read from one consistent snapshot. ``cursor`` is the last sequence
        number returned, or the head when the page reaches it; ``checksum`` is given only
        then. ResyncRequired when ``0 < since < purge horizon``. Records a SYNC_PULL event
        when it returns anything.
        """

    def pull_raw(self, ctx: DeviceContext, since: int, limit: int) -> bytes:
        """What :meth:`pull` answers, as the exact JSON bytes of a PullResponse."""

    def head(self, tenant_id: str) -> int:
        """The tenant's latest sequence number (0 when empty)."""

    def list_records(
        self, ctx: DeviceContext, kind: str | None = None, status: str | None = "open", limit: int = 1000
    ) -> list[Record]:
        """The tenant's suggestions and conflict records, newest first."""

    def resolve_conflict(
        self, ctx: DeviceContext, record_id: str, resolution: str, clock: str
    ) -> tuple[Record, SyncItem | None]:
        """Close a conflict record. ``keep`` leaves the current version; ``restore``
        writes the kept loser's content back as a new level-1 version by this device,
        stamped ``clock``. NotFound / ConflictState (already closed) otherwise."""

    def events(
        self, tenant_id: str, since: int = 0, limit: int = 100, type: str | None = None
    ) -> list[Event]:
        """The tenant's events after id ``since``, oldest first."""

    def purge_tombstones(self, older_than_ms: int) -> int:
        """Delete tombstones whose clock is older than the given time, in every tenant;
        move each tenant's purge horizon past the purged sequence numbers. Returns how
        many were purged."""


def open_store(url: str) -> HubStore:
    """Open (creating and migrating as needed) the hub store a URL or path names.

    ``postgresql://...`` opens PostgreSQL; anything else is a SQLite file path
    (``sqlite:///path`` or a plain path).
    """
    if url.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresHubStore

        return PostgresHubStore(url)
    from .sqlite import SqliteHubStore

    path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
    return SqliteHubStore(path)
