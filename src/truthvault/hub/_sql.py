"""The hub's one database object: connections and transactions, the tenant keys, and the
portable SQL the repositories and the sync storage share.

The SQL here is portable (SQLite and PostgreSQL) and written with ``?`` placeholders; the
PostgreSQL adapter rewrites them. A backend (:mod:`.sqlite`, :mod:`.postgres`) supplies
connections, transactions, the snapshot read of a pull page and the bulk write of a push, and
may override its bulk read (:meth:`SqlDatabase.load_current`).
"""

from __future__ import annotations

import hashlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from ..errors import NotFound
from ..model import SyncItem
from ._port import EntityWrites, Page, TenantState

if TYPE_CHECKING:
    from ._audit_commit import AuditRows

__all__ = [
    "ENTITY_COLUMNS",
    "ENTITY_UPSERT_SET",
    "TENANT_COUNTERS",
    "Cursor",
    "Db",
    "SqlDatabase",
    "hash_secret",
    "select_in",
    "tenant_state",
]

_U64 = 1 << 64
#: Bound parameters per IN (...) chunk: well under every SQLite build's variable limit.
_CHUNK = 500

_item_decoder = msgspec.json.Decoder(SyncItem)

# Row columns (before ``wire``): an entity row keeps beside its wire form only what queries
# need: the key, the feed order, and the clock and flag of a tombstone purge.
ENTITY_COLUMNS = "entity_id, seq, last_modified_at, deleted"
#: the SET list of an entity upsert: every column but the key, from the incoming row
ENTITY_UPSERT_SET = ", ".join(f"{c} = excluded.{c}" for c in [*ENTITY_COLUMNS.split(", ")[1:], "wire"])
#: A tenant's counters (a push locks the row with the backend's lock clause appended).
TENANT_COUNTERS = "SELECT head_seq, checksum, purge_seq, head_tag, records_checksum FROM tenants WHERE pk = ?"


class Cursor(Protocol):
    """The part of a DB-API cursor the stores use."""

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Db(Protocol):
    """A connection inside a transaction (or in autocommit for single reads)."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...


def signed(checksum: int) -> int:
    """A checksum modulo 2**64 as the signed 64-bit integer the database stores."""
    checksum %= _U64
    return checksum - _U64 if checksum >= 1 << 63 else checksum


def tenant_state(row: Sequence[Any]) -> TenantState:
    """The counters of a ``TENANT_COUNTERS`` row (checksums back to unsigned)."""
    head, checksum, purge_seq, tag, records = row
    return TenantState(int(head), int(checksum) % _U64, int(purge_seq), tag, int(records) % _U64)


def hash_secret(secret: str) -> str:
    """A secret (a code, a token) as stored: its SHA-256, in hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def select_in(db: Db, select: str, pk: int, column: str, values: Sequence[str]) -> list[Any]:
    """Rows of ``select ... WHERE tenant_pk = pk AND column IN values``, in chunks."""
    rows: list[Any] = []
    for start in range(0, len(values), _CHUNK):
        chunk = values[start : start + _CHUNK]
        sql = f"{select} WHERE tenant_pk = ? AND {column} IN ({','.join('?' * len(chunk))})"
        rows += db.execute(sql, (pk, *chunk)).fetchall()
    return rows


class SqlDatabase(ABC):
    """One hub database: what the repositories and the sync storage are composed over."""

    backend: str
    #: appended to the tenant-row SELECT of a write: the lock that serialises a tenant's writes
    lock_clause: str = ""
    #: what the driver raises for a violated unique constraint
    integrity_errors: tuple[type[Exception], ...] = ()

    def __init__(self) -> None:
        self._tenant_pks: dict[str, int] = {}
        self._joined = threading.local()

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    @contextmanager
    def write(self) -> Iterator[Db]:
        """A write transaction, committed when the block ends (rolled back on an error).

        Nested in another write of the same thread, it joins that one: a kernel action and
        its audit entry commit together with every store call the handler makes."""
        joined: Db | None = getattr(self._joined, "db", None)
        if joined is not None:
            yield joined
            return
        with self.begin_write() as db:
            self._joined.db = db
            try:
                yield db
            finally:
                self._joined.db = None

    def in_write(self) -> bool:
        """Whether this thread is inside a write transaction."""
        return getattr(self._joined, "db", None) is not None

    @abstractmethod
    def begin_write(self) -> AbstractContextManager[Db]:
        """A new write transaction (the backend's): see :meth:`write`."""

    def write_note(self) -> AbstractContextManager[Db]:
        """A small write whose statements need no answer and whose loss in a crash would not
        matter (a pull's event, a last_seen_at); a backend may batch it and skip the flush."""
        return self.write()

    def ping(self, timeout_s: float = 3.0) -> str | None:
        """The schema revision, read over a new connection (what a readiness probe asks: can
        this database be reached now?); StorageError, with the driver's detail, when not."""
        del timeout_s
        with self.read() as db:
            row = db.execute("SELECT version_num FROM alembic_version").fetchone()
        return None if row is None else str(row[0])

    @abstractmethod
    def read(self) -> AbstractContextManager[Db]:
        """A connection for single-statement reads."""

    @abstractmethod
    def read_page(self, pk: int, since: int, n: int) -> Page:
        """From one snapshot: the tenant's counters and its first ``n`` changes after ``since``
        as (seq, wire, 1 for a record else 0), in sequence order."""

    def load_current(self, db: Db, pk: int, entity_ids: Sequence[str]) -> dict[str, SyncItem]:
        """The current versions of the given entities (those that exist)."""
        items = [
            _item_decoder.decode(r[0])
            for r in select_in(db, "SELECT wire FROM entities", pk, "entity_id", entity_ids)
        ]
        return {item.entity_id: item for item in items}

    @abstractmethod
    def upsert_entities(self, db: Db, pk: int, writes: EntityWrites, existing: Container[str]) -> None:
        """Write new current versions. ``existing`` holds the ids that have a row: under the
        tenant's lock, the others have none, so they can be plain inserts (cheaper than an
        upsert that finds no row)."""

    def append_audit(self, pk: int, expected: tuple[int, bytes], rows: AuditRows) -> bool:
        """Write an audit group (see :mod:`._audit_commit`) in one statement if the tenant's
        head still has the ``expected`` size and root; False, with nothing written, if not (the
        caller then writes it in a transaction that locks the head). A backend without such a
        statement writes nothing here: SQLite's one writer gains nothing from it."""
        del pk, expected, rows
        return False

    def announce(self, db: Db, tenant_id: str) -> None:
        """Tell other hub processes, at commit, that a tenant changed (see :meth:`watch`); one
        process owns a SQLite hub, so by default there is no one to tell."""
        del db, tenant_id

    def watch(self, on_change: Callable[[str], None]) -> Callable[[], None]:
        """Call ``on_change(tenant_id)`` when another hub process commits a change to a
        tenant; return a function that stops watching. One process owns a SQLite hub, so
        by default there is nothing to watch."""
        del on_change
        return lambda: None

    def tenant_pk(self, tenant_id: str) -> int:
        """A tenant's key by its id; NotFound for an unknown tenant."""
        pk = self._tenant_pks.get(tenant_id)
        if pk is None:
            # inside a write, through it: a tenant made in this transaction is seen
            with self.write() if self.in_write() else self.read() as db:
                row = db.execute("SELECT pk FROM tenants WHERE id = ?", (tenant_id,)).fetchone()
            if row is None:
                raise NotFound(f"no tenant with id {tenant_id!r}")
            # A tenant's key never changes, so the mapping is kept for the database's life.
            pk = self._tenant_pks[tenant_id] = int(row[0])
        return pk

    def forget_tenant(self, tenant_id: str) -> None:
        """Drop a removed tenant's key: a later write for it is NotFound, not a row for no one."""
        self._tenant_pks.pop(tenant_id, None)

    def remember_tenant(self, tenant_id: str, pk: int) -> None:
        """Keep a tenant's key found by another query (authentication reads it anyway)."""
        self._tenant_pks[tenant_id] = pk
