"""The hub database on one SQLite file: one guarded writer connection, one reader per thread."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Container, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import NotFound, StorageError
from ..model import encode
from . import migrations
from ._base import SqlHubStore
from ._port import EntityWrites, Page
from ._sql import ENTITY_COLUMNS, ENTITY_UPSERT_SET, TENANT_COUNTERS, Db, SqlDatabase, tenant_state

__all__ = ["SqliteDatabase", "SqliteHubStore"]

_PAGE_ENTITIES = "SELECT seq, wire, 0 FROM entities WHERE tenant_pk = ? AND seq > ? ORDER BY seq LIMIT ?"
_PAGE_RECORDS = "SELECT seq, wire, 1 FROM records WHERE tenant_pk = ? AND seq > ? ORDER BY seq LIMIT ?"

# Entity rows go in by one statement a batch rather than one a row: their small columns as
# one JSON array, their wire forms as one blob of which each row takes its slice (exact bytes).
# Binding five values a row from Python cost a tenth of a push.
_INSERT_ENTITIES = (
    f"INSERT INTO entities (tenant_pk, {ENTITY_COLUMNS}, wire) SELECT ?1, "
    + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(4))
    + ", substr(?3, json_extract(value, '$[4]'), json_extract(value, '$[5]')) FROM json_each(?2) WHERE true"
)
_UPSERT_ENTITIES = f"{_INSERT_ENTITIES} ON CONFLICT (tenant_pk, entity_id) DO UPDATE SET {ENTITY_UPSERT_SET}"

log = logging.getLogger("truthvault.hub")

#: how often (at most) the background thread copies committed WAL pages into the database
_CHECKPOINT_EVERY_S = 0.2
#: WAL pages at which the writer checkpoints itself: a backstop should the background fall behind
_WRITER_CHECKPOINT_PAGES = 16384


class SqliteHubStore(SqlHubStore):
    """A hub store in a SQLite file (WAL), created with mode 0600 and migrated on open."""

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        """Open the hub in the file at ``path``; a new (or empty) file only with ``create``,
        else NotFound."""
        super().__init__(SqliteDatabase(path, create=create))
        self.path = Path(path)


class SqliteDatabase(SqlDatabase):
    """A hub database in a SQLite file (WAL), created with mode 0600 and migrated on open."""

    backend = "sqlite"
    integrity_errors = (sqlite3.IntegrityError,)

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        """Open the hub in the file at ``path``; a new (or empty) file only with ``create``,
        else NotFound."""
        super().__init__()
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise NotFound(f"no hub database at {self.path}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Create the file ourselves so that it (and the -wal/-shm files SQLite derives
            # from it) is readable by its owner only: it holds every tenant's data.
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        except OSError as exc:
            raise StorageError(f"cannot create the hub database {str(self.path)!r}: {exc}") from exc
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._local = threading.local()
        self._write_lock = threading.Lock()
        try:
            # Every use of the writer holds _write_lock, so it may move between threads.
            self._writer = self._connect(check_same_thread=False)
            revision = _revision(self._writer)
            if revision is None and not create:
                self._writer.close()
                raise NotFound(f"no hub database at {self.path} (the file holds no truthvault hub)")
            self._writer.execute("PRAGMA journal_mode=WAL")
            self._writer.execute(f"PRAGMA wal_autocheckpoint={_WRITER_CHECKPOINT_PAGES}")
            if revision != migrations.HEAD_REVISION:
                migrations.upgrade(str(self.path))
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the hub database {str(self.path)!r}: {exc}") from exc
        # Checkpoints (copying the WAL back into the database, with its fsyncs) run in a
        # thread of their own, so a push's commit only appends to the WAL.
        self._committed = threading.Event()
        self._closing = False
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="truthvault-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        conn = self._connect(check_same_thread=True)
        try:
            while not self._closing:
                self._committed.wait()
                self._committed.clear()
                if self._closing:
                    break
                try:
                    # PASSIVE never waits for the writer or readers: it copies what it can.
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:
                    log.warning("background checkpoint failed (the writer's backstop remains): %s", exc)
                time.sleep(_CHECKPOINT_EVERY_S)
        finally:
            conn.close()

    def _connect(self, *, check_same_thread: bool) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=check_same_thread)
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        # A larger page cache keeps the hot index pages of a big history in memory, and
        # rarer checkpoints copy the WAL back in larger, cheaper runs.
        conn.execute("PRAGMA cache_size=-65536")
        conn.execute("PRAGMA wal_autocheckpoint=8192")
        conn.execute("PRAGMA mmap_size=268435456")
        return conn

    def close(self) -> None:
        """Close the writer and every thread's reader."""
        self._closing = True
        self._committed.set()
        self._checkpointer.join(10)
        with self._write_lock:
            with contextlib.suppress(sqlite3.Error):  # the last one to close would do it anyway
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._writer.close()
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # Used only by the thread that made it; close() reaches it from another
            # thread after use, hence check_same_thread=False.
            conn = self._connect(check_same_thread=False)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @contextmanager
    def begin_write(self) -> Iterator[Db]:
        with self._write_lock, _storage_errors():
            db = self._writer
            # IMMEDIATE takes the write lock up front: a transaction never has to upgrade
            # from read to write (and fail with SQLITE_BUSY) halfway through.
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            self._committed.set()

    @contextmanager
    def read(self) -> Iterator[Db]:
        with _storage_errors():
            yield self._reader()

    def ping(self, timeout_s: float = 3.0) -> str | None:
        # a new connection, read-only: one this process holds open would still read a file
        # that was moved away or whose disk went read-only under it
        uri = f"{self.path.resolve().as_uri()}?mode=ro"
        try:
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=timeout_s)) as conn:
                row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read the hub database {str(self.path)!r}: {exc}") from None
        return None if row is None else str(row[0])

    def upsert_entities(self, db: Db, pk: int, writes: EntityWrites, existing: Container[str]) -> None:
        """Write new current versions: one INSERT for the new entities, one upsert for the others."""
        for part, sql in zip(writes.split(existing), (_INSERT_ENTITIES, _UPSERT_ENTITIES), strict=True):
            if part.ids:
                sizes = [len(wire) for wire in part.wires]
                starts = itertools.accumulate(sizes[:-1], initial=1)  # substr() counts from 1
                rows = list(zip(part.ids, part.seqs, part.clocks, part.deleted, starts, sizes, strict=True))
                db.execute(sql, (pk, encode(rows), b"".join(part.wires)))

    def read_page(self, pk: int, since: int, n: int) -> Page:
        """Counters and page from one read transaction (a snapshot of the WAL)."""
        with _storage_errors():
            db = self._reader()
            db.execute("BEGIN")
            try:
                counters = db.execute(TENANT_COUNTERS, (pk,)).fetchone()
                # Two plain index range scans merged here: SQLite sorts a UNION of them in a temp b-tree.
                entities = db.execute(_PAGE_ENTITIES, (pk, since, n)).fetchall()
                records = db.execute(_PAGE_RECORDS, (pk, since, n)).fetchall()
            finally:
                db.execute("COMMIT")
        page = list(itertools.islice(heapq.merge(entities, records), n)) if records else entities
        return Page(tenant_state(counters), page)


@contextmanager
def _storage_errors() -> Iterator[None]:
    """Turn a failing database into StorageError; constraint errors pass for the caller to map."""
    try:
        yield
    except sqlite3.IntegrityError:
        raise
    except sqlite3.Error as exc:
        log.error("sqlite hub store failed: %s", exc)
        raise StorageError("the hub database failed", hint="see the hub's log") from exc


def _revision(conn: sqlite3.Connection) -> str | None:
    """The schema revision Alembic recorded, or None for a new file."""
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:
        return None
    return None if row is None else str(row[0])
