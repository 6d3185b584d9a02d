"""The sync engine's storage port: the few things push, pull, conflict resolution and purges ask
of a database, and the plain data that crosses it. No SQL here; :mod:`._sync_sql` implements
the port over SQLite and PostgreSQL alike.

Every method is scoped to one tenant, named by its id; nothing reads across tenants.
"""

from __future__ import annotations

import time
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from ..clock import format_stamp
from ..model import Record, SyncItem

__all__ = ["EntityWrites", "EventRow", "Page", "SyncStorage", "SyncTx", "TenantState", "iso_ms", "now"]


def iso_ms(ms: int) -> str:
    """Milliseconds since the epoch as ``2026-11-22T01:36:48.123Z``: how the port's times read."""
    return format_stamp(ms)[:-5]


def now() -> str:
    """The time now as :func:`iso_ms` gives it."""
    return iso_ms(time.time_ns() // 1_000_000)


#: An event to write: (type, entity id, detail).
EventRow = tuple[str, str | None, Mapping[str, object]]


@dataclass(slots=True)
class TenantState:
    """A tenant's sync counters, as read (and, in a write, locked) at the start of a transaction."""

    head_seq: int
    checksum: int  # unsigned, modulo 2**64
    purge_seq: int
    head_tag: str | None  # the tag of the commit that wrote head_seq (None while empty)
    records_checksum: int  # unsigned, modulo 2**64


@dataclass(slots=True)
class Page:
    """A tenant's counters and its first changes after a cursor, read from one snapshot.

    ``rows`` are (seq, wire, 1 for a record else 0), in sequence order; ``wire`` is the
    stored JSON of the item or record, as a pull sends it."""

    state: TenantState
    rows: list[tuple[int, bytes, int]]


@dataclass(slots=True)
class EntityWrites:
    """New current versions of entities, a column each (entity id, seq, clock, deleted, wire)."""

    ids: list[str]
    seqs: Sequence[int]
    clocks: list[str]
    deleted: list[bool]
    wires: list[bytes]

    def rows(self) -> Iterator[tuple[str, int, str, bool, bytes]]:
        return zip(self.ids, self.seqs, self.clocks, self.deleted, self.wires, strict=True)

    def split(self, existing: Container[str]) -> tuple[EntityWrites, EntityWrites]:
        """(those whose id is not in ``existing``, those whose id is)."""
        if not existing:
            return self, EntityWrites.of([])
        rows = list(self.rows())
        return (
            EntityWrites.of([row for row in rows if row[0] not in existing]),
            EntityWrites.of([row for row in rows if row[0] in existing]),
        )

    @classmethod
    def of(cls, rows: list[tuple[str, int, str, bool, bytes]]) -> EntityWrites:
        if not rows:
            return cls([], [], [], [], [])
        ids, seqs, clocks, deleted, wires = zip(*rows, strict=True)
        return cls(list(ids), list(seqs), list(clocks), list(deleted), list(wires))


class SyncTx(Protocol):
    """One write transaction of one tenant, under the tenant's lock: a second one of the same
    tenant waits until this one commits. Committed when the block that opened it ends, rolled
    back if it raises."""

    #: the tenant's counters as the lock found them
    state: TenantState

    def tag_at(self, seq: int) -> str | None:
        """The tag of the commit sequence number ``seq`` belongs to (None: no commit has it)."""

    def device_mutation(self, device_id: str) -> int | None:
        """The last mutation applied from this device; None for an unknown or revoked device."""

    def load_current(self, entity_ids: Sequence[str]) -> dict[str, SyncItem]:
        """The current versions of the given entities (those that exist)."""

    def known_records(self, record_ids: Sequence[str]) -> set[str]:
        """Which of these records the tenant holds."""

    def load_records(self, record_ids: Sequence[str]) -> dict[str, Record]:
        """The tenant's records with these ids (those that exist)."""

    def write_entities(self, writes: EntityWrites, existing: Container[str]) -> None:
        """Write new current versions. ``existing`` holds the ids that have a row; under the
        lock the others have none (an implementation may insert them rather than upsert)."""

    def insert_records(self, records: Iterable[Record]) -> None:
        """Add new records; one the tenant holds already is left as it is."""

    def update_records(self, records: Iterable[Record]) -> None:
        """Write the decisions (status, decided_at, resolution, seq) of records still open."""

    def write_events(self, events: Sequence[EventRow], device_id: str, at: str) -> None:
        """Append sync events, by ``device_id`` at ``at``."""

    def write_commit(self, head: int, checksum: int, records_checksum: int, tag: str) -> None:
        """Close a commit: its tag for its last sequence number ``head``, and the tenant's new
        head and checksums (unsigned, modulo 2**64)."""

    def set_device_mutation(self, device_id: str, mutation: int, at: str) -> None:
        """Note the device's last applied mutation and when it was last seen."""

    def announce(self) -> None:
        """Tell other hub processes, at commit, that the tenant changed (see :meth:`HubStore.watch`)."""

    def purge_tombstones(self, cutoff: str, now: str) -> int:
        """Leave a head mark at ``now``; delete the tombstones the latest mark at or before
        ``cutoff`` covers, move the purge horizon past them; how many were deleted."""


class SyncStorage(Protocol):
    """What the sync engine needs of a database. Safe to call from several threads at once."""

    def tenant_ids(self) -> list[str]:
        """Every tenant's id."""

    def locked(self, tenant_id: str) -> AbstractContextManager[SyncTx]:
        """A write transaction of the tenant, under its lock; NotFound for an unknown tenant."""

    def read_page(self, tenant_id: str, since: int, n: int) -> Page:
        """The tenant's counters and its first ``n`` changes after ``since``, from one snapshot;
        NotFound for an unknown tenant."""

    def tag_at(self, tenant_id: str, seq: int) -> str | None:
        """The tag of the commit ``seq`` belongs to, outside a transaction (commits below the
        head never change, so this need not share a page's snapshot)."""

    def note_pull(self, tenant_id: str, device_id: str, detail: Mapping[str, object] | None) -> None:
        """Note a pull: a SYNC_PULL event with ``detail`` (none for an empty pull) and the
        device's last-seen time. May be written later, in the background; a crash may lose the
        last moments of them, never sync data."""
