"""The hub database on PostgreSQL (psycopg 3 with a connection pool); several hubs may share one."""

from __future__ import annotations

import functools
import itertools
import logging
import threading
import time
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import msgspec
import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool

from ..errors import NotFound, StorageError
from ..model import SyncItem
from . import migrations
from ._base import SqlHubStore
from ._port import EntityWrites, Page
from ._sql import ENTITY_COLUMNS, ENTITY_UPSERT_SET, Cursor, Db, SqlDatabase, tenant_state

if TYPE_CHECKING:
    from ._audit_commit import AuditRows

__all__ = ["PostgresDatabase", "PostgresHubStore"]

log = logging.getLogger("truthvault.hub")
#: the LISTEN/NOTIFY channel that tells hub processes a tenant changed
_CHANNEL = "truthvault_changes"
#: new rows after which the first background ANALYZE runs
_ANALYZE_AFTER_ROWS = 20_000

_item_decoder = msgspec.json.Decoder(SyncItem)

# Entity rows go in by binary COPY, the fastest way into PostgreSQL: new ones straight into
# the table, changed ones into a staging table and from there by one upsert. The staging
# table is created, if missing, in the transaction that uses it and emptied at commit, so
# it also works behind a pooler that gives each transaction a different server connection.
# Its name carries the schema revision: a pooled server session may still hold an older one.
_STAGE_COLUMNS = "entity_id text, seq bigint, last_modified_at text, deleted bool, wire bytea"
_ENTITY_TYPES = ["int4", *(column.split()[1] for column in _STAGE_COLUMNS.split(", "))]
_COPY_ENTITIES = f"COPY entities (tenant_pk, {ENTITY_COLUMNS}, wire) FROM STDIN (FORMAT BINARY)"
_CREATE_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS hub_entity_stage_v4 ({_STAGE_COLUMNS}) ON COMMIT DELETE ROWS"
)
_UPSERT_FROM_STAGE = (
    f"INSERT INTO entities (tenant_pk, {ENTITY_COLUMNS}, wire) SELECT %s, * FROM hub_entity_stage_v4 "
    f"ON CONFLICT (tenant_pk, entity_id) DO UPDATE SET {ENTITY_UPSERT_SET}"
)


# The tenant's counters beside every page row (one row of NULLs when the page is empty).
_PULL = (
    "SELECT t.head_seq, t.checksum, t.purge_seq, t.head_tag, t.records_checksum, p.seq, p.wire, p.kind "
    "FROM tenants t LEFT JOIN ("
    "(SELECT seq, wire, 0 AS kind FROM entities WHERE tenant_pk = ? AND seq > ? ORDER BY seq LIMIT ?) "
    "UNION ALL (SELECT seq, wire, 1 FROM records WHERE tenant_pk = ? AND seq > ? ORDER BY seq LIMIT ?) "
    "ORDER BY seq LIMIT ?) AS p ON true WHERE t.pk = ? ORDER BY p.seq"
)


@functools.lru_cache(maxsize=256)
def _pg_sql(sql: str) -> str:
    """The shared SQL's ``?`` placeholders in psycopg's ``%s`` style."""
    return sql.replace("?", "%s")


# An audit group in one statement (one implicit transaction): the head moves only from the size
# and root expected, and the entries, nodes and batches are inserted only through that update.
# Entries are numbered from the expected size in order; a node's span end is computed. Hashes,
# entries and their positions travel as one bytea or one text each, in binary (%b): psycopg
# would dump an array of bytea item by item, escaping each as text, at several times the cost.
_AUDIT_HEAD = """
WITH head AS (
    UPDATE audit_heads SET size = %b, root = %b, edge = %b, updated_at = %b
    WHERE tenant_pk = %b AND size = %b AND root = %b RETURNING tenant_pk
), n AS (
    INSERT INTO audit_nodes (tenant_pk, level, idx, hash, span_end)
    SELECT head.tenant_pk, u.level, u.idx, substr(%b::bytea, 32 * u.n::int - 31, 32), (u.idx + 1) << u.level
    FROM head, unnest(string_to_array(%b, ',')::int[], string_to_array(%b, ',')::bigint[])
        WITH ORDINALITY AS u (level, idx, n)
), e AS (
    INSERT INTO audit_entries (tenant_pk, idx, entry, leaf{device})
    SELECT head.tenant_pk, %b::bigint + u.n - 1, substr(%b::bytea, u.start, u.len),
        substr(%b::bytea, 32 * u.n::int - 31, 32){device_values}
    FROM head, unnest(string_to_array(%b, ',')::int[], string_to_array(%b, ',')::int[]{device_arrays})
        WITH ORDINALITY AS u (start, len{device}, n)
){batches}
SELECT count(*) FROM head
"""
#: entries of no device batch (device_id and batch_seq keep their defaults)
_AUDIT_GROUP = _AUDIT_HEAD.format(device="", device_values="", device_arrays="", batches="")
#: and with device batches
_AUDIT_GROUP_BATCHES = _AUDIT_HEAD.format(
    device=", device_id, batch_seq",
    device_values=", u.device_id, u.batch_seq",
    device_arrays=", %b::text[], %b::bigint[]",
    batches=""", b AS (
    INSERT INTO audit_batches (tenant_pk, device_id, seq, first_idx, count, sign_public, signature, received_at)
    SELECT head.tenant_pk, u.* FROM head,
        unnest(%b::text[], %b::bigint[], %b::bigint[], %b::int[], %b::text[], %b::text[], %b::text[]) AS u
)""",
)


def _listed(numbers: Iterable[int]) -> str:
    """Numbers as one text, comma-separated (``string_to_array`` reads it back)."""
    return ",".join(map(str, numbers))


def _columns(rows: Sequence[Sequence[Any]], columns: range) -> list[list[Any]]:
    """Some columns of rows, as one list a column."""
    return [[r[i] for r in rows] for i in columns]


class _PgDb:
    """A psycopg connection behind the small :class:`~truthvault.hub._sql.Db` interface."""

    __slots__ = ("conn",)

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        # Binary results: wire blobs arrive as they are stored, without hex decoding.
        return self.conn.execute(_pg_sql(sql), parameters, binary=True)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> None:
        rows = parameters if isinstance(parameters, list) else list(parameters)
        if len(rows) == 1:
            # psycopg runs executemany in pipeline mode: for one row (an action's or a push's
            # audit entry, say) that costs about 50 µs more than the plain statement
            self.conn.execute(_pg_sql(sql), rows[0])
            return
        with self.conn.cursor() as cur:
            cur.executemany(_pg_sql(sql), rows)


class PostgresHubStore(SqlHubStore):
    """A hub store in PostgreSQL, migrated on open; pushes of one tenant serialise on its row lock."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 16, create: bool = True) -> None:
        """Open the hub in the database at ``url``; one without the hub's tables only with
        ``create``, else NotFound."""
        super().__init__(PostgresDatabase(url, min_size=min_size, max_size=max_size, create=create))
        self.url = url


class PostgresDatabase(SqlDatabase):
    """A hub database in PostgreSQL, migrated on open."""

    backend = "postgresql"
    # NO KEY UPDATE rather than UPDATE: registering a device (a foreign key to the tenant)
    # takes KEY SHARE on the tenant's row and need not wait for a push to commit.
    lock_clause = " FOR NO KEY UPDATE"
    integrity_errors = (psycopg.errors.UniqueViolation,)

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 16, create: bool = True) -> None:
        """Open the hub in the database at ``url``; one without the hub's tables only with
        ``create``, else NotFound."""
        super().__init__()
        self.url = url
        self._growth_lock = threading.Lock()
        self._grown = self._analyzed_size = 0
        self._analyzing = False
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                current = _revision(conn)
            if current is None and not create:
                from sqlalchemy.engine import make_url

                shown = make_url(url).render_as_string(hide_password=True)
                raise NotFound(f"no hub database at {shown} (the database holds no truthvault hub)")
            if current != migrations.HEAD_REVISION:
                migrations.upgrade(url)
            self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
                url, min_size=min_size, max_size=max_size, kwargs={"autocommit": True}, open=False
            )
            self._pool.open(wait=True, timeout=30)
        except (psycopg.Error, TimeoutError) as exc:
            raise StorageError(
                # psycopg's messages run over several lines: an error here is one
                f"cannot open the hub database: {' '.join(str(exc).split())}",
                hint="check that PostgreSQL runs and the URL",
            ) from exc

    def close(self) -> None:
        """Close the connection pool."""
        self._pool.close()

    @contextmanager
    def begin_write(self) -> Iterator[Db]:
        with _storage_errors(), self._pool.connection() as conn, conn.transaction():
            yield _PgDb(conn)

    @contextmanager
    def write_note(self) -> Iterator[Db]:
        # Its commit need not wait for the WAL to reach the disk (unless it joins a write that must).
        joined = self.in_write()
        with self.write() as db:
            if not joined:
                db.execute("SET LOCAL synchronous_commit TO off")
            yield db

    @contextmanager
    def read(self) -> Iterator[Db]:
        with _storage_errors(), self._pool.connection() as conn:
            yield _PgDb(conn)

    def ping(self, timeout_s: float = 3.0) -> str | None:
        # a new connection: the pool would wait its own timeout for one it cannot make
        try:
            with psycopg.connect(self.url, autocommit=True, connect_timeout=max(1, round(timeout_s))) as conn:
                return _revision(conn)
        except psycopg.Error as exc:
            raise StorageError(f"cannot reach the hub database: {' '.join(str(exc).split())}") from None

    def append_audit(self, pk: int, expected: tuple[int, bytes], rows: AuditRows) -> bool:
        """An audit group in one statement, committed when it returns (one round trip, one
        WAL flush); False, with nothing written, if the head is no longer ``expected``."""
        nodes, entries = rows.nodes, [r[2] for r in rows.entries]
        params = [rows.size, rows.root, rows.edge, rows.at, pk, *expected]
        params += [b"".join(r[3] for r in nodes), _listed(r[1] for r in nodes), _listed(r[2] for r in nodes)]
        starts = list(itertools.accumulate(map(len, entries), initial=1))[:-1]
        params += [expected[0], b"".join(entries), b"".join(r[3] for r in rows.entries)]
        params += [_listed(starts), _listed(map(len, entries))]
        if rows.batches:
            sql = _AUDIT_GROUP_BATCHES
            params += _columns(rows.entries, range(4, 6)) + _columns(rows.batches, range(1, 8))
        else:
            sql = _AUDIT_GROUP
        with _storage_errors(), self._pool.connection() as conn:
            row = conn.execute(sql, params).fetchone()
        return row is not None and int(row[0]) == 1

    def read_page(self, pk: int, since: int, n: int) -> Page:
        """Counters and page in one statement, so one snapshot and one round trip."""
        with self.read() as db:
            rows = db.execute(_PULL, (pk, since, n, pk, since, n, n, pk)).fetchall()
        page = [row[5:] for row in rows] if rows[0][5] is not None else []
        return Page(tenant_state(rows[0][:5]), page)

    def load_current(self, db: Db, pk: int, entity_ids: Sequence[str]) -> dict[str, SyncItem]:
        """The current versions of the given entities, in one query."""
        # One comma-joined string rather than an array parameter: psycopg dumps a list item
        # by item, and an entity id never holds a comma (model.EntityId).
        sql = "SELECT wire FROM entities WHERE tenant_pk = ? AND entity_id = ANY(string_to_array(?, ','))"
        rows = db.execute(sql, (pk, ",".join(entity_ids))).fetchall()
        items = [_item_decoder.decode(row[0]) for row in rows]
        return {item.entity_id: item for item in items}

    def upsert_entities(self, db: Db, pk: int, writes: EntityWrites, existing: Container[str]) -> None:
        """Write new current versions with binary COPY: new entities straight into the table,
        changed ones through the staging table and one upsert."""
        assert isinstance(db, _PgDb)
        new, changed = writes.split(existing)
        with db.conn.cursor() as cur:
            if new.ids:
                with cur.copy(_COPY_ENTITIES) as copy:
                    copy.set_types(_ENTITY_TYPES)
                    for row in new.rows():
                        copy.write_row((pk, *row))
            if changed.ids:
                cur.execute(_CREATE_STAGE)
                with cur.copy("COPY hub_entity_stage_v4 FROM STDIN (FORMAT BINARY)") as copy:
                    copy.set_types(_ENTITY_TYPES[1:])
                    for row in changed.rows():
                        copy.write_row(row)
                cur.execute(_UPSERT_FROM_STAGE, (pk,))
        self._note_growth(len(new.ids))

    def announce(self, db: Db, tenant_id: str) -> None:
        # Delivered to every listening hub process when (and only if) the push commits.
        db.execute("SELECT pg_notify(?, ?)", (_CHANNEL, tenant_id))

    def watch(self, on_change: Callable[[str], None]) -> Callable[[], None]:
        """LISTEN on a connection of its own in a thread; the hubs on one PostgreSQL
        coordinate through it, never through their own memory."""
        stop = threading.Event()

        def listen() -> None:
            while not stop.is_set():
                try:
                    with psycopg.connect(self.url, autocommit=True) as conn:
                        conn.execute(f"LISTEN {_CHANNEL}")
                        while not stop.is_set():
                            for note in conn.notifies(timeout=0.5):
                                on_change(note.payload)
                except psycopg.Error:
                    log.warning("lost the LISTEN connection; reconnecting", exc_info=True)
                    stop.wait(1.0)

        thread = threading.Thread(target=listen, name="truthvault-listen", daemon=True)
        thread.start()

        def unwatch() -> None:
            stop.set()
            thread.join(5)

        return unwatch

    def _note_growth(self, rows: int) -> None:
        """Re-analyze the big tables in the background once they have grown by a fifth.

        Until PostgreSQL's statistics know a freshly loaded table is large, the planner may
        read a pull page by scanning and sorting the whole tenant instead of walking the
        (tenant, seq) index: pulls then run at a third of their speed. Autovacuum gets there
        in the end; this gets there before the devices start pulling.
        """
        with self._growth_lock:
            self._grown += rows
            if self._grown < max(_ANALYZE_AFTER_ROWS, self._analyzed_size // 5) or self._analyzing:
                return
            self._analyzed_size += self._grown
            self._grown, self._analyzing = 0, True
        threading.Thread(target=self._analyze, name="truthvault-analyze", daemon=True).start()

    def _analyze(self) -> None:
        try:
            time.sleep(0.2)  # let the push that crossed the line commit first
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute("ANALYZE entities")
                conn.execute("ANALYZE records")
        except psycopg.Error:
            log.warning("background ANALYZE failed", exc_info=True)
        finally:
            with self._growth_lock:
                self._analyzing = False


@contextmanager
def _storage_errors() -> Iterator[None]:
    """Turn a failing database into StorageError; constraint errors pass for the caller to map."""
    try:
        yield
    except psycopg.errors.UniqueViolation:
        raise
    except psycopg.Error as exc:
        log.error("postgresql hub store failed: %s", exc)
        raise StorageError("the hub database failed", hint="see the hub's log") from exc


def _revision(conn: psycopg.Connection[Any]) -> str | None:
    """The schema revision Alembic recorded, or None for a new database."""
    row = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return None
    found = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return None if found is None else str(found[0])
