"""The hub store's storage: the portable SQL, the database primitives a backend supplies, and
the background writer of pull events.

The SQL here is portable (SQLite and PostgreSQL) and written with ``?`` placeholders; the
PostgreSQL adapter rewrites them. A backend supplies connections, transactions and the bulk
write of a push (``_upsert_entities``), and may override its bulk read (``_load_current``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Protocol

import msgspec

from ..clock import format_stamp
from ..errors import NotFound
from ..model import PullResponse, Record, SyncItem, encode
from .store import DeviceContext

__all__ = [
    "ENTITY_COLUMNS",
    "ENTITY_UPSERT_SET",
    "TENANT_COUNTERS",
    "Cursor",
    "Db",
    "EntityWrites",
    "HubStorage",
    "TenantState",
]

_U64 = 1 << 64
#: Bound parameters per IN (...) chunk: well under every SQLite build's variable limit.
_CHUNK = 500
#: How long a device's last_seen_at may lag before a pull writes it again (pulls are frequent).
_SEEN_EVERY_S = 30.0
_RECORD_KINDS = (None, "suggestion", "conflict")
_RECORD_STATUSES = (None, "open", "accepted", "rejected", "resolved")

_item_decoder = msgspec.json.Decoder(SyncItem)
_encoder = msgspec.json.Encoder()
_record_decoder = msgspec.json.Decoder(Record)
_pull_decoder = msgspec.json.Decoder(PullResponse)
_detail_decoder = msgspec.json.Decoder(dict[str, Any])

# Row columns (before ``wire``) and the getters that read them off a stored item or record.
# An entity row keeps beside its wire form only what queries need: the key, the feed order,
# and the clock and flag of a tombstone purge.
ENTITY_COLUMNS = "entity_id, seq, last_modified_at, deleted"
#: the SET list of an entity upsert: every column but the key, from the incoming row
ENTITY_UPSERT_SET = ", ".join(f"{c} = excluded.{c}" for c in [*ENTITY_COLUMNS.split(", ")[1:], "wire"])
_RECORD_COLUMNS = "id, kind, entity_id, entity_type, status, created_at, decided_at, resolution, seq"
_record_fields = attrgetter(*_RECORD_COLUMNS.split(", "))
_decision_fields = attrgetter("status", "decided_at", "resolution", "seq")

log = logging.getLogger("truthvault.hub")
#: how often noted pull events are written
_NOTES_EVERY_S = 0.5

_INSERT_EVENTS = (
    "INSERT INTO sync_events (tenant_pk, type, at, device_id, entity_id, detail) VALUES (?, ?, ?, ?, ?, ?)"
)
#: the tombstones up to a sequence number (ix_entities_tombstone_seq)
_TOMBSTONES = "deleted AND seq <= ?"

#: A tenant's counters (a push locks the row with the backend's lock clause appended).
TENANT_COUNTERS = "SELECT head_seq, checksum, purge_seq, head_tag, records_checksum FROM tenants WHERE pk = ?"
#: The tag of the commit a cursor points into: the first commit that reached it.
_TAG_AT = "SELECT tag FROM commits WHERE tenant_pk = ? AND last_seq >= ? ORDER BY last_seq LIMIT 1"

#: An event to write: (type, entity id, detail).
_EventRow = tuple[str, str | None, dict[str, object]]


class Cursor(Protocol):
    """The part of a DB-API cursor the stores use."""

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Db(Protocol):
    """A connection inside a transaction (or in autocommit for single reads)."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...


@dataclass(slots=True)
class TenantState:
    """A tenant's sync counters, as read (and, in a write, locked) at the start of a transaction."""

    head_seq: int
    checksum: int  # unsigned, modulo 2**64
    purge_seq: int
    head_tag: str | None  # the tag of the commit that wrote head_seq (None while empty)
    records_checksum: int  # unsigned, modulo 2**64


@dataclass(slots=True)
class EntityWrites:
    """New current versions of entities, a column each (``ENTITY_COLUMNS``, then ``wire``)."""

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


def _iso_ms(ms: int) -> str:
    """Milliseconds since the epoch as ``2026-11-22T01:36:48.123Z``."""
    return format_stamp(ms)[:-5]


def _now() -> str:
    return _iso_ms(time.time_ns() // 1_000_000)


def _signed(checksum: int) -> int:
    """A checksum modulo 2**64 as the signed 64-bit integer the database stores."""
    checksum %= _U64
    return checksum - _U64 if checksum >= 1 << 63 else checksum


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _select_in(db: Db, select: str, pk: int, column: str, values: Sequence[str]) -> list[Any]:
    """Rows of ``select ... WHERE tenant_pk = pk AND column IN values``, in chunks."""
    rows: list[Any] = []
    for start in range(0, len(values), _CHUNK):
        chunk = values[start : start + _CHUNK]
        sql = f"{select} WHERE tenant_pk = ? AND {column} IN ({','.join('?' * len(chunk))})"
        rows += db.execute(sql, (pk, *chunk)).fetchall()
    return rows


class HubStorage(ABC):
    """A hub store's database primitives; the sync engine and the admin methods build on them."""

    backend: str
    #: appended to the tenant-row SELECT of a write: the lock that serialises a tenant's writes
    _lock_clause: str = ""
    #: what the driver raises for a violated unique constraint
    _integrity_errors: tuple[type[Exception], ...] = ()

    def __init__(self) -> None:
        self._tenant_pks: dict[str, int] = {}
        self._seen: dict[str, float] = {}
        self._seen_lock = threading.Lock()
        # Pull events and last-seen times are noted in memory and written in the background,
        # so a pull is a pure read (one-change pulls stay well under 2 ms). A crash loses at
        # most the last half second of SYNC_PULL events, never sync data.
        self._notes: list[tuple[int, str, str, str, str | None, str]] = []
        self._notes_seen: dict[str, str] = {}
        self._notes_lock = threading.Lock()
        self._notes_wake = threading.Event()
        self._notes_stop = False
        self._notes_thread: threading.Thread | None = None

    def _start_notes(self) -> None:
        if self._notes_thread is None:
            self._notes_thread = threading.Thread(
                target=self._notes_loop, name="truthvault-notes", daemon=True
            )
            self._notes_thread.start()

    def _notes_loop(self) -> None:
        while not self._notes_stop:
            self._notes_wake.wait(_NOTES_EVERY_S)
            self._notes_wake.clear()
            try:
                self.flush_notes()
            except Exception:  # the next round retries; a hub must not die for a note
                log.warning("could not write pull events", exc_info=True)

    def flush_notes(self) -> None:
        """Write the pull events and last-seen times noted so far."""
        with self._notes_lock:
            notes, self._notes = self._notes, []
            seen, self._notes_seen = self._notes_seen, {}
        if not notes and not seen:
            return
        with self._write_note() as db:
            if notes:
                db.executemany(_INSERT_EVENTS, notes)
            if seen:
                db.executemany(
                    "UPDATE devices SET last_seen_at = ? WHERE id = ?", [(at, d) for d, at in seen.items()]
                )

    def _stop_notes(self) -> None:
        """Write what is noted and stop the background writer (from close())."""
        self._notes_stop = True
        self._notes_wake.set()
        if self._notes_thread is not None:
            self._notes_thread.join(5)
        self.flush_notes()

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    @abstractmethod
    def _write(self) -> AbstractContextManager[Db]:
        """A write transaction, committed when the block ends (rolled back on an error)."""

    def _write_note(self) -> AbstractContextManager[Db]:
        """A small write whose statements need no answer and whose loss in a crash would not
        matter (a pull's event, a last_seen_at); a backend may batch it and skip the flush."""
        return self._write()

    @abstractmethod
    def _read(self) -> AbstractContextManager[Db]:
        """A connection for single-statement reads."""

    @abstractmethod
    def _pull_page(
        self, pk: int, since: int, n: int
    ) -> tuple[tuple[int, int, int, str | None, int], list[tuple[int, bytes, int]]]:
        """From one snapshot: the tenant's (head_seq, checksum, purge_seq, head_tag,
        records_checksum) and its first ``n`` changes after ``since`` as (seq, wire, 1 for a
        record else 0), in sequence order."""

    def _load_current(self, db: Db, pk: int, entity_ids: Sequence[str]) -> dict[str, SyncItem]:
        """The current versions of the given entities (those that exist)."""
        items = [
            _item_decoder.decode(r[0])
            for r in _select_in(db, "SELECT wire FROM entities", pk, "entity_id", entity_ids)
        ]
        return {item.entity_id: item for item in items}

    @abstractmethod
    def _upsert_entities(self, db: Db, pk: int, writes: EntityWrites, existing: Container[str]) -> None:
        """Write new current versions. ``existing`` holds the ids that have a row: under the
        tenant's lock, the others have none, so they can be plain inserts (cheaper than an
        upsert that finds no row)."""

    def _tenant_pk(self, tenant_id: str) -> int:
        pk = self._tenant_pks.get(tenant_id)
        if pk is None:
            with self._read() as db:
                row = db.execute("SELECT pk FROM tenants WHERE id = ?", (tenant_id,)).fetchone()
            if row is None:
                raise NotFound(f"no tenant with id {tenant_id!r}")
            # A tenant's key never changes, so the mapping is kept for the store's life.
            pk = self._tenant_pks[tenant_id] = int(row[0])
        return pk

    def _note_pull(self, ctx: DeviceContext, pk: int, detail: Mapping[str, object]) -> None:
        now = _now()
        with self._notes_lock:
            self._notes.append((pk, "SYNC_PULL", now, ctx.device_id, None, encode(detail).decode()))
            if self._seen_due(ctx.device_id):
                self._notes_seen[ctx.device_id] = now
        self._start_notes()

    def _seen_due(self, device_id: str) -> bool:
        """True (and noted) when a device's last_seen_at is due to be written again."""
        now = time.monotonic()
        with self._seen_lock:
            if now - self._seen.get(device_id, -_SEEN_EVERY_S) < _SEEN_EVERY_S:
                return False
            self._seen[device_id] = now
            return True

    def _announce(self, db: Db, tenant_id: str) -> None:
        """Tell other hub processes, at commit, that a tenant changed (see :meth:`watch`); one
        process owns a SQLite hub, so by default there is no one to tell."""
        del db, tenant_id

    def watch(self, on_change: Callable[[str], None]) -> Callable[[], None]:
        """Call ``on_change(tenant_id)`` when another hub process commits a change to a
        tenant; return a function that stops watching. One process owns a SQLite hub, so
        by default there is nothing to watch."""
        del on_change
        return lambda: None

    def _lock_tenant(self, db: Db, pk: int) -> TenantState:
        head, checksum, purge_seq, tag, records = db.execute(
            TENANT_COUNTERS + self._lock_clause, (pk,)
        ).fetchone()
        return TenantState(int(head), int(checksum) % _U64, int(purge_seq), tag, int(records) % _U64)
