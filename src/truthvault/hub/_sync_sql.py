"""The sync engine's storage port (:mod:`._port`) over a hub's SQL database, either backend."""

from __future__ import annotations

from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from operator import attrgetter

import msgspec

from ..model import Record, SyncItem, encode
from ._notes import INSERT_EVENTS, PullNotes
from ._port import EntityWrites, EventRow, Page, SyncTx, TenantState
from ._sql import TENANT_COUNTERS, Db, SqlDatabase, select_in, signed, tenant_state

__all__ = ["SqlSyncStorage"]

_record_decoder = msgspec.json.Decoder(Record)

_RECORD_COLUMNS = "id, kind, entity_id, entity_type, status, created_at, decided_at, resolution, seq"
_record_fields = attrgetter(*_RECORD_COLUMNS.split(", "))
_decision_fields = attrgetter("status", "decided_at", "resolution", "seq")
#: The tag of the commit a cursor points into: the first commit that reached it.
_TAG_AT = "SELECT tag FROM commits WHERE tenant_pk = ? AND last_seq >= ? ORDER BY last_seq LIMIT 1"
#: the tombstones up to a sequence number (ix_entities_tombstone_seq)
_TOMBSTONES = "deleted AND seq <= ?"


class SqlSyncStorage:
    """:class:`~._port.SyncStorage` over a :class:`~._sql.SqlDatabase`."""

    def __init__(self, database: SqlDatabase, notes: PullNotes) -> None:
        self._database = database
        self._notes = notes

    def tenant_ids(self) -> list[str]:
        with self._database.read() as db:
            return [str(row[0]) for row in db.execute("SELECT id FROM tenants").fetchall()]

    @contextmanager
    def locked(self, tenant_id: str) -> Iterator[SyncTx]:
        database = self._database
        pk = database.tenant_pk(tenant_id)
        with database.write() as db:
            row = db.execute(TENANT_COUNTERS + database.lock_clause, (pk,)).fetchone()
            yield _SqlSyncTx(database, db, pk, tenant_id, tenant_state(row))

    def read_page(self, tenant_id: str, since: int, n: int) -> Page:
        return self._database.read_page(self._database.tenant_pk(tenant_id), since, n)

    def tag_at(self, tenant_id: str, seq: int) -> str | None:
        pk = self._database.tenant_pk(tenant_id)
        with self._database.read() as db:
            return _tag_at(db, pk, seq)

    def note_pull(self, tenant_id: str, device_id: str, detail: Mapping[str, object] | None) -> None:
        self._notes.note(self._database.tenant_pk(tenant_id), device_id, detail)


def _tag_at(db: Db, pk: int, seq: int) -> str | None:
    row = db.execute(_TAG_AT, (pk, seq)).fetchone()
    return None if row is None else str(row[0])


class _SqlSyncTx:
    """:class:`~._port.SyncTx` on one connection inside a transaction."""

    __slots__ = ("_database", "_db", "_pk", "_tenant_id", "state")

    def __init__(self, database: SqlDatabase, db: Db, pk: int, tenant_id: str, state: TenantState) -> None:
        self._database, self._db, self._pk, self._tenant_id = database, db, pk, tenant_id
        self.state = state

    def tag_at(self, seq: int) -> str | None:
        if seq == self.state.head_seq:
            return self.state.head_tag
        return _tag_at(self._db, self._pk, seq)

    def device_mutation(self, device_id: str) -> int | None:
        sql = "SELECT last_mutation, revoked FROM devices WHERE id = ? AND tenant_pk = ?"
        row = self._db.execute(sql, (device_id, self._pk)).fetchone()
        return None if row is None or row[1] else int(row[0])

    def load_current(self, entity_ids: Sequence[str]) -> dict[str, SyncItem]:
        return self._database.load_current(self._db, self._pk, entity_ids)

    def known_records(self, record_ids: Sequence[str]) -> set[str]:
        return {row[0] for row in select_in(self._db, "SELECT id FROM records", self._pk, "id", record_ids)}

    def load_records(self, record_ids: Sequence[str]) -> dict[str, Record]:
        rows = select_in(self._db, "SELECT wire FROM records", self._pk, "id", record_ids)
        return {r.id: r for r in map(_record_decoder.decode, (row[0] for row in rows))}

    def write_entities(self, writes: EntityWrites, existing: Container[str]) -> None:
        self._database.upsert_entities(self._db, self._pk, writes, existing)

    def insert_records(self, records: Iterable[Record]) -> None:
        self._db.executemany(
            f"INSERT INTO records (tenant_pk, {_RECORD_COLUMNS}, wire) VALUES (?, ?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (tenant_pk, id) DO NOTHING",
            [(self._pk, *_record_fields(record), encode(record)) for record in records],
        )

    def update_records(self, records: Iterable[Record]) -> None:
        self._db.executemany(
            "UPDATE records SET status = ?, decided_at = ?, resolution = ?, seq = ?, wire = ? "
            "WHERE tenant_pk = ? AND id = ? AND status = 'open'",
            [(*_decision_fields(record), encode(record), self._pk, record.id) for record in records],
        )

    def write_events(self, events: Sequence[EventRow], device_id: str, at: str) -> None:
        rows = [(self._pk, kind, at, device_id, eid, encode(detail).decode()) for kind, eid, detail in events]
        self._db.executemany(INSERT_EVENTS, rows)

    def write_commit(self, head: int, checksum: int, records_checksum: int, tag: str) -> None:
        db, pk = self._db, self._pk
        db.execute("INSERT INTO commits (tenant_pk, last_seq, tag) VALUES (?, ?, ?)", (pk, head, tag))
        db.execute(
            "UPDATE tenants SET head_seq = ?, checksum = ?, records_checksum = ?, head_tag = ? WHERE pk = ?",
            (head, signed(checksum), signed(records_checksum), tag, pk),
        )

    def set_device_mutation(self, device_id: str, mutation: int, at: str) -> None:
        sql = "UPDATE devices SET last_mutation = ?, last_seen_at = ? WHERE id = ?"
        self._db.execute(sql, (mutation, at, device_id))

    def announce(self) -> None:
        self._database.announce(self._db, self._tenant_id)

    def purge_tombstones(self, cutoff: str, now: str) -> int:
        db, pk = self._db, self._pk
        db.execute(
            "INSERT INTO head_marks (tenant_pk, at, head) VALUES (?, ?, ?)", (pk, now, self.state.head_seq)
        )
        # Everything up to the head at the latest mark before the cutoff came before it.
        sql = "SELECT at, head FROM head_marks WHERE tenant_pk = ? AND at <= ? ORDER BY at DESC LIMIT 1"
        mark = db.execute(sql, (pk, cutoff)).fetchone()
        if mark is None:
            return 0
        # Older marks say nothing the latest of them does not.
        db.execute("DELETE FROM head_marks WHERE tenant_pk = ? AND at < ?", (pk, mark[0]))
        sql = f"SELECT max(seq), count(*) FROM entities WHERE tenant_pk = ? AND {_TOMBSTONES}"
        top, count = db.execute(sql, (pk, int(mark[1]))).fetchone()
        if not count:
            return 0
        db.execute(f"DELETE FROM entities WHERE tenant_pk = ? AND {_TOMBSTONES}", (pk, int(mark[1])))
        horizon = max(self.state.purge_seq, int(top))
        db.execute("UPDATE tenants SET purge_seq = ? WHERE pk = ?", (horizon, pk))
        # A cursor behind the horizon re-syncs from 0, so no one asks for these tags.
        db.execute("DELETE FROM commits WHERE tenant_pk = ? AND last_seq < ?", (pk, horizon))
        return int(count)
