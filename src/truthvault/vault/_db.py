"""The vault's database: its connection, transactions, meta values, clock, change numbers,
entity and record rows, the history mark and the event log. Every other part works through it."""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from ..clock import HybridClock
from ..errors import InvalidInput, StorageError
from ..model import Record, SyncItem, digest_sum, item_digest
from ..truth import Outcome
from . import _schema, _search
from ._codec import ENTITY_INSERT, ENTITY_SELECT, Current, current_from_row, entity_params
from ._inbox import AutomationInbox

__all__ = ["DB_NAME", "EVENT_TYPES", "KEY_FILE", "Event", "VaultDB", "WriteResult", "bare"]

DB_NAME = "vault.db"
#: An enrolled device's private keys, beside the vault in its home (mode 0600).
KEY_FILE = "device.key"
_DEFAULT_META = {
    "tenant_id": "local",
    "tenant_name": "",
    "vault_mode": "local_first",
    "hub_url": "",
    "hub_token": "",
    "hub_auth": "",
    "key_path": "",
    "hub_cert": "",
    "cursor": "0",
    "tag": "",
    "tag_seq": "0",
    "acked_mutation": "",
    "checksum": "0",
    "clock": "",
    "next_mutation": "1",
    "resyncing": "0",
    # the first rowid of the entity rows a pull left out of the search index ("": none), see
    # VaultDB.put_rows
    "fts_from": "",
}


#: what a write transaction reads as it begins: the stored clock and SQLite's data_version
_BEGIN_READ = (
    "SELECT (SELECT value FROM meta WHERE key = 'clock'), (SELECT data_version FROM pragma_data_version)"
)


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode = WAL")
    # NORMAL is durable across application crashes in WAL mode and far faster than FULL.
    conn.execute("PRAGMA synchronous = NORMAL")
    # Without a limit, the WAL file keeps the size of the largest transaction (a bulk import).
    conn.execute("PRAGMA journal_size_limit = 67108864")
    conn.execute("PRAGMA temp_store = MEMORY")
    return conn


#: The event types the vault itself records; add_event may record others.
EVENT_TYPES: tuple[str, ...] = (
    "TRUTH_UPGRADE",
    "AI_SUGGESTION_GENERATED",
    "CONFLICT_DETECTED",
    "DECRYPTION_FAILED",
)

_encoder = msgspec.json.Encoder()
_U64 = 1 << 64


def bare(item: SyncItem) -> SyncItem:
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


class VaultDB:
    """One vault file's connection and the row-level operations the vault's parts share."""

    def __init__(self, home: Path, path: Path, conn: sqlite3.Connection) -> None:
        self.home = home
        self.path = path
        self.conn = conn
        # One connection serves every thread (a sync thread beside the CLI); the lock
        # keeps its transactions from interleaving.
        self.lock = threading.RLock()
        self._depth = 0
        #: the thread whose transaction is open (0: none), and data_version as it began
        self._owner = 0
        self._tx_version = 0
        # what this transaction's entity writes changed the state checksum by (see tx)
        self._checksum_delta = 0
        #: bumped by each write of this process to a table the kernel caches (the policy): with
        #: SQLite's data_version (other processes' commits) it tells a cache when to re-read
        self.local_epoch = 0
        #: bumped by this process when the vault's tenant, mode or keyring change (the input hash's key)
        self.keys_epoch = 0
        self._tenant: tuple[tuple[int, int, int], str] | None = None
        #: the writes automation rules have yet to look at (see _inbox)
        self.inbox = AutomationInbox(self)
        stored = self.meta("clock")
        #: the vault's hybrid clock (persisted when a transaction commits)
        self.clock = HybridClock(stored or None)

    @classmethod
    def open(cls, home: Path | str) -> VaultDB:
        """Open the vault file in ``home``, creating the folder (0700) and file (0600) if missing."""
        home = Path(home).expanduser()  # "~/notes" means what a shell would take it to
        if not home.exists():
            try:
                home.mkdir(parents=True, mode=0o700)
                home.chmod(0o700)  # mkdir's mode is masked by the umask
            except FileExistsError:
                pass  # another process made it a moment ago
        path = home / DB_NAME
        if not path.exists():
            # Create the file ourselves so it is never readable by others, not even briefly.
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            path.chmod(0o600)
        conn: sqlite3.Connection | None = None
        try:
            with _schema.opening(path):
                conn = _connect(path)
                _schema.migrated(path, conn)
                with conn:
                    conn.execute("BEGIN IMMEDIATE")
                    fresh = {"device_id": str(uuid.uuid4()), "input_key": secrets.token_urlsafe(32)}
                    for key, value in {**fresh, **_DEFAULT_META}.items():
                        conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, value))
        except (sqlite3.Error, OSError) as exc:
            if conn is not None:
                conn.close()
            raise StorageError(
                f"cannot open the vault at {path}: {exc}", hint="is it a truthvault vault file?"
            ) from exc
        return cls(home, path, conn)

    def close(self) -> None:
        """Close the database connection."""
        with self.lock:
            self.conn.close()

    # -- transactions ------------------------------------------------------------
    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (reentrant); the clock is persisted when it commits."""
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self.conn
                finally:
                    self._depth -= 1
                return
            self.conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            self._owner = threading.get_ident()
            self._checksum_delta = 0
            try:
                # Another process may have stamped writes since we last looked; what it
                # committed shows in data_version, which stays put while this transaction holds
                # the write lock (see epoch).
                stored, self._tx_version = self.conn.execute(_BEGIN_READ).fetchone()
                if stored:
                    self.clock.observe(stored)
                yield self.conn
                last = self.clock.last
                if last != stored:
                    self.set_meta("clock", last)
                if self._checksum_delta:
                    total = int(self.meta("checksum") or 0) + self._checksum_delta
                    self.set_meta("checksum", total % _U64)
                self.conn.execute("COMMIT")
                self.inbox.ended(True)
            except BaseException:
                self.conn.execute("ROLLBACK")
                self.inbox.ended(False)
                raise
            finally:
                self._depth = 0
                self._owner = 0

    def in_tx(self) -> bool:
        """Whether this thread is inside :meth:`tx` (a write transaction is open)."""
        return self._depth > 0 and self._owner == threading.get_ident()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent read (one snapshot) under the connection lock."""
        with self.lock:
            if self._depth:
                yield self.conn
                return
            self.conn.execute("BEGIN")
            try:
                yield self.conn
            finally:
                self.conn.execute("COMMIT")

    # -- meta --------------------------------------------------------------------
    def epoch(self) -> tuple[int, int]:
        """What changes when anyone commits a change a cache must see: another connection's
        commit (SQLite's data_version) or this one's write marked by :attr:`local_epoch`."""
        if self.in_tx():  # read as the transaction began: no one else can commit meanwhile
            return self._tx_version, self.local_epoch
        with self.lock:
            return int(self.conn.execute("PRAGMA data_version").fetchone()[0]), self.local_epoch

    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str | int) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )

    def meta_str(self, key: str) -> str:
        with self.lock:
            return self.meta(key) or ""

    def tenant(self) -> str:
        """The vault's tenant id ('' before it joins a hub), read again only when the vault may
        have changed since (free inside a transaction: see :meth:`epoch`)."""
        mark = (*self.epoch(), self.keys_epoch)
        kept = self._tenant
        if kept is None or kept[0] != mark:
            kept = self._tenant = (mark, self.meta_str("tenant_id"))
        return kept[1]

    def named(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """The rows of a query, read by column name (the hot paths unpack tuples instead)."""
        cur = self.conn.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute(sql, args).fetchall()

    def history_mark(self) -> tuple[int, str] | None:
        """The latest hub commit this vault knows of: (its last sequence number, its tag)."""
        tag = self.meta("tag")
        return (int(self.meta("tag_seq") or 0), tag) if tag else None

    def note_history(self, seq: int, tag: str | None) -> None:
        """Move the history mark to commit ``seq`` (tag ``tag``) when it is the latest known."""
        if tag and seq >= int(self.meta("tag_seq") or 0):
            self.set_meta("tag", tag)
            self.set_meta("tag_seq", seq)

    def forget_history(self) -> None:
        """Drop the history mark (the cursor moved without a tag)."""
        self.set_meta("tag", "")
        self.set_meta("tag_seq", 0)

    def take_mutations(self, count: int = 1) -> int:
        """Reserve ``count`` consecutive change numbers (inside a transaction); return the first."""
        first = int(self.meta("next_mutation") or 1)
        self.set_meta("next_mutation", first + count)
        return first

    def stamp(self) -> str:
        """A new clock stamp (persisted when the transaction commits)."""
        return self.clock.now()

    # -- entity rows -------------------------------------------------------------
    def current(self, entity_id: str) -> Current | None:
        row = self.conn.execute(f"{ENTITY_SELECT} WHERE entity_id = ?", (entity_id,)).fetchone()
        return None if row is None else current_from_row(row)

    def currents(self, entity_ids: Iterable[str]) -> dict[str, Current]:
        ids = list(dict.fromkeys(entity_ids))
        if not ids:
            return {}
        rows = self.conn.execute(
            f"{ENTITY_SELECT} WHERE entity_id IN (SELECT value FROM json_each(?))",
            (_encoder.encode(ids),),
        )
        return {cur.item.entity_id: cur for cur in map(current_from_row, rows)}

    def put_row(self, item: SyncItem, mutation: int | None, hub_known: bool, old: Current | None) -> int:
        """Write ``item`` as the current version of its entity (``old``: the row it replaces,
        None for a new entity) and keep the index and the checksum in step."""
        self.catch_up_index()  # a row indexed now must not be indexed again by a catch-up
        if old is not None:
            _search.unindex(self.conn, old.rowid)  # before the row changes: see _search.unindex
        cur = self.conn.execute(ENTITY_INSERT, entity_params(item, mutation, hub_known))
        rowid = old.rowid if old is not None else int(cur.lastrowid or 0)
        self.inbox.note((item,))
        _search.index(self.conn, rowid)
        self.count([item], [] if old is None else [old.item])
        return rowid

    def put_rows(
        self,
        items: list[SyncItem],
        hub_known: bool,
        old: Mapping[str, Current],
        *,
        defer_index: bool = False,
        checksum_delta: int | None = None,
    ) -> None:
        """:meth:`put_row` for many items of distinct entities (``old``: the rows of those that
        have one), a statement per step rather than per item; ``checksum_delta``: what they move
        the state checksum by, when the caller knows (a merge plan does).

        With ``defer_index`` (a pull), the new rows are left out of the search index until
        :meth:`catch_up_index` (before the next search or other write) indexes them all in one
        pass; the mark that says so commits with them, so a crash leaves none out for good.
        """
        behind = self.index_behind()
        if behind is not None and not defer_index:
            self.catch_up_index()
            behind = None
        replaced = [old[i.entity_id] for i in items if i.entity_id in old]
        # rows from the mark on are not in the index: nothing to take out or put back
        indexed = replaced if behind is None else [cur for cur in replaced if cur.rowid < behind]
        if defer_index and behind is None and len(replaced) < len(items):
            # new rows take rowids above every existing one: from here on, none is indexed
            top = self.conn.execute("SELECT coalesce(max(rowid), 0) FROM entities").fetchone()[0]
            self.set_meta("fts_from", int(top) + 1)
        _search.unindex_rows(self.conn, [cur.rowid for cur in indexed])
        self.conn.executemany(ENTITY_INSERT, [entity_params(i, None, hub_known) for i in items])
        self.inbox.note(items)
        again = [cur.item for cur in indexed] if defer_index else items
        _search.index_entities(self.conn, [i.entity_id for i in again])
        if checksum_delta is None:
            self.count(items, [cur.item for cur in replaced])
        else:
            self._checksum_delta += checksum_delta

    def index_behind(self) -> int | None:
        """The first rowid of the entity rows a pull left out of the search index (every row
        from it on is out), or None when the index holds every live entity."""
        value = self.meta("fts_from")
        return int(value) if value else None

    def catch_up_index(self) -> None:
        """Index the rows a pull left out (inside a transaction); nothing when there are none."""
        first = self.index_behind()
        if first is None:
            return
        last = int(self.conn.execute("SELECT coalesce(max(rowid), 0) FROM entities").fetchone()[0])
        if last >= first:
            _search.reindex_range(self.conn, first, last)
        self.set_meta("fts_from", "")

    def count(self, added: Iterable[SyncItem], removed: Iterable[SyncItem]) -> None:
        """Move the state checksum: ``added`` became current versions, ``removed`` stopped being."""
        self._checksum_delta += digest_sum(added) - digest_sum(removed)

    def recount(self) -> int:
        """Compute the state checksum from every entity and store it (inside a transaction)."""
        total = 0
        for eid, clock, device, level in self.conn.execute(
            "SELECT entity_id, last_modified_at, device_id, truth_level FROM entities WHERE deleted = 0"
        ):
            total += item_digest(eid, clock, device, level, False)
        self._checksum_delta = 0
        self.set_meta("checksum", total % _U64)
        return total % _U64

    # -- records -----------------------------------------------------------------
    def insert_record(
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
        item = bare(record.item)
        cur = self.conn.execute(
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
                None if base is None else _encoder.encode(bare(base)),
            ),
        )
        return cur.rowcount > 0

    # -- events ------------------------------------------------------------------
    def add_event(self, type: str, entity_id: str | None = None, **detail: Any) -> Event:
        """Append an event to the log."""
        if not type:
            raise InvalidInput("event type must not be empty")
        with self.tx() as conn:
            at = self.stamp()
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
        with self.read():
            rows = self.named(sql, args)
        return [
            Event(r["id"], r["type"], r["at"], r["entity_id"], msgspec.json.decode(r["detail"])) for r in rows
        ]

    def event_types(self) -> list[str]:
        """The types :meth:`events` knows: those the vault records, then any others it holds."""
        with self.read() as conn:
            held = [r[0] for r in conn.execute("SELECT DISTINCT type FROM events ORDER BY type")]
        return [*EVENT_TYPES, *(t for t in held if t not in EVENT_TYPES)]
