"""The vault's connection, transactions, meta values, clock, change numbers and events."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from ..clock import HybridClock
from ..errors import InvalidInput
from ..model import Record, SyncItem, digest_sum, item_digest
from ..truth import Outcome
from . import _search
from ._codec import ENTITY_INSERT, ENTITY_SELECT, Current, current_from_row, entity_params

__all__ = ["EVENT_TYPES", "Event", "VaultBase", "WriteResult"]

#: The event types the vault itself records; add_event may record others.
EVENT_TYPES: tuple[str, ...] = (
    "TRUTH_UPGRADE",
    "AI_SUGGESTION_GENERATED",
    "CONFLICT_DETECTED",
    "DECRYPTION_FAILED",
)

_encoder = msgspec.json.Encoder()
_U64 = 1 << 64


def _bare(item: SyncItem) -> SyncItem:
    """A version as it is kept: without the numbers it travelled with."""
    if item.seq is None and item.mutation is None and not item.kept:
        return item
    return msgspec.structs.replace(item, seq=None, mutation=None, kept=False)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a local write did: the version written, its outcome, and the record that keeps it."""

    item: SyncItem
    outcome: Outcome
    record_id: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One entry of the vault's event log."""

    id: int
    type: str
    at: str
    entity_id: str | None
    detail: dict[str, Any]


class VaultBase:
    """Shared plumbing of the vault's parts; not used on its own."""

    def __init__(self, home: Path, path: Path, conn: sqlite3.Connection) -> None:
        self.home = home
        self.path = path
        self._conn = conn
        # One connection serves every thread (a sync thread beside the CLI); the lock
        # keeps its transactions from interleaving.
        self._lock = threading.RLock()
        self._depth = 0
        # what this transaction's entity writes changed the state checksum by (see _tx)
        self._checksum_delta = 0
        stored = self._meta("clock")
        self._clock = HybridClock(stored or None)

    # -- transactions ------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (reentrant); the clock is persisted when it commits."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            self._checksum_delta = 0
            try:
                # Another process may have stamped writes since we last looked.
                stored = self._meta("clock")
                if stored:
                    self._clock.observe(stored)
                yield self._conn
                last = self._clock.last
                if last != stored:
                    self._set_meta("clock", last)
                if self._checksum_delta:
                    total = int(self._meta("checksum") or 0) + self._checksum_delta
                    self._set_meta("checksum", total % _U64)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            finally:
                self._depth = 0

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent read (one snapshot) under the connection lock."""
        with self._lock:
            if self._depth:
                yield self._conn
                return
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    # -- meta --------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str | int) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )

    def _meta_str(self, key: str) -> str:
        with self._lock:
            return self._meta(key) or ""

    def _take_mutations(self, count: int = 1) -> int:
        """Reserve ``count`` consecutive change numbers (inside a transaction); return the first."""
        first = int(self._meta("next_mutation") or 1)
        self._set_meta("next_mutation", first + count)
        return first

    def _stamp(self) -> str:
        """A new clock stamp (persisted when the transaction commits)."""
        return self._clock.now()

    @property
    def clock(self) -> HybridClock:
        """The vault's hybrid clock."""
        return self._clock

    # -- entity rows -------------------------------------------------------------
    def _current(self, entity_id: str) -> Current | None:
        row = self._conn.execute(f"{ENTITY_SELECT} WHERE entity_id = ?", (entity_id,)).fetchone()
        return None if row is None else current_from_row(row)

    def _currents(self, entity_ids: Iterable[str]) -> dict[str, Current]:
        ids = list(dict.fromkeys(entity_ids))
        if not ids:
            return {}
        rows = self._conn.execute(
            f"{ENTITY_SELECT} WHERE entity_id IN (SELECT value FROM json_each(?))",
            (_encoder.encode(ids),),
        )
        return {row[0]: current_from_row(row) for row in rows}

    def _put_row(self, item: SyncItem, mutation: int | None, hub_known: bool, old: Current | None) -> int:
        """Write ``item`` as the current version of its entity (``old``: the row it replaces,
        None for a new entity) and keep the index and the checksum in step."""
        if old is not None:
            _search.unindex(self._conn, old.rowid)  # before the row changes: see _search.unindex
        cur = self._conn.execute(ENTITY_INSERT, entity_params(item, mutation, hub_known))
        rowid = old.rowid if old is not None else int(cur.lastrowid or 0)
        _search.index(self._conn, rowid)
        self._count([item], [] if old is None else [old.item])
        return rowid

    def _put_rows(self, items: list[SyncItem], hub_known: bool, old: Mapping[str, Current]) -> None:
        """:meth:`_put_row` for many items of distinct entities (``old``: the rows of those that
        have one), a statement per step rather than per item."""
        replaced = [old[i.entity_id] for i in items if i.entity_id in old]
        _search.unindex_rows(self._conn, [cur.rowid for cur in replaced])
        self._conn.executemany(ENTITY_INSERT, [entity_params(i, None, hub_known) for i in items])
        _search.index_entities(self._conn, [i.entity_id for i in items])
        self._count(items, [cur.item for cur in replaced])

    def _count(self, added: Iterable[SyncItem], removed: Iterable[SyncItem]) -> None:
        """Move the state checksum: ``added`` became current versions, ``removed`` stopped being."""
        self._checksum_delta += digest_sum(added) - digest_sum(removed)

    def _recount(self) -> int:
        """Compute the state checksum from every entity and store it (inside a transaction)."""
        total = 0
        for eid, clock, device, level in self._conn.execute(
            "SELECT entity_id, last_modified_at, device_id, truth_level FROM entities WHERE deleted = 0"
        ):
            total += item_digest(eid, clock, device, level, False)
        self._checksum_delta = 0
        self._set_meta("checksum", total % _U64)
        return total % _U64

    # -- records -----------------------------------------------------------------
    def _insert_record(
        self,
        record: Record,
        *,
        mutation: int | None = None,
        push_item: bool = False,
        hub_known: bool = False,
        reason: str | None = None,
        base: SyncItem | None = None,
    ) -> bool:
        """Keep a record unless one with its id exists; True when it was new.

        ``base`` is the version a suggestion was proposed against, when known (see ``accept``).
        """
        item = _bare(record.item)
        cur = self._conn.execute(
            "INSERT OR IGNORE INTO records (id, kind, entity_id, entity_type, status, item, created_at, "
            "decided_at, resolution, reason, mutation, push_item, push_decision, hub_known, base, base_item) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
            (
                record.id,
                record.kind,
                record.entity_id,
                record.entity_type,
                record.status,
                _encoder.encode(item),
                record.created_at,
                record.decided_at,
                record.resolution,
                reason,
                mutation if push_item else None,
                int(push_item),
                int(hub_known),
                None if base is None else bytes(base.payload),
                None if base is None else _encoder.encode(_bare(base)),
            ),
        )
        return cur.rowcount > 0

    # -- events ------------------------------------------------------------------
    def add_event(self, type: str, entity_id: str | None = None, **detail: Any) -> Event:
        """Append an event to the log."""
        if not type:
            raise InvalidInput("event type must not be empty")
        with self._tx() as conn:
            at = self._stamp()
            cur = conn.execute(
                "INSERT INTO events (type, at, entity_id, detail) VALUES (?, ?, ?, ?)",
                (type, at, entity_id, _encoder.encode(detail)),
            )
            return Event(int(cur.lastrowid or 0), type, at, entity_id, detail)

    def events(self, limit: int = 50, type: str | None = None) -> list[Event]:
        """The newest events first, optionally of one type (any case; InvalidInput if unknown)."""
        sql = "SELECT id, type, at, entity_id, detail FROM events"
        args: list[Any] = []
        if type is not None:
            type = type.upper()
            if type not in EVENT_TYPES:
                known = self.event_types()
                if type not in known:
                    raise InvalidInput(f"unknown event type {type!r}; known: {', '.join(known)}")
            sql += " WHERE type = ?"
            args.append(type)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        with self._read() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [Event(r[0], r[1], r[2], r[3], msgspec.json.decode(r[4])) for r in rows]

    def event_types(self) -> list[str]:
        """The types :meth:`events` knows: those the vault records, then any others it holds."""
        with self._read() as conn:
            held = [r[0] for r in conn.execute("SELECT DISTINCT type FROM events ORDER BY type")]
        return [*EVENT_TYPES, *(t for t in held if t not in EVENT_TYPES)]
