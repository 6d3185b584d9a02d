"""The hub store on PostgreSQL (psycopg 3 with a connection pool); several hubs may share one."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import msgspec
import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool

from ..errors import StorageError
from ..model import SyncItem
from . import migrations
from ._base import BaseHubStore, Cursor, Db

__all__ = ["PostgresHubStore"]

log = logging.getLogger("truthvault.hub")

_item_decoder = msgspec.json.Decoder(SyncItem)

# One statement for a whole batch: the arrays travel as parameters, the server unnests them.
_UPSERT_ENTITIES = """
INSERT INTO entities (tenant_pk, entity_id, entity_type, seq, truth_level, last_modified_at,
                      device_id, version, base_version, base_clock, deleted, wire)
SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::smallint[], %s::text[],
                         %s::text[], %s::bigint[], %s::bigint[], %s::text[], %s::bool[], %s::bytea[])
ON CONFLICT (tenant_pk, entity_id) DO UPDATE SET
    entity_type = excluded.entity_type, seq = excluded.seq, truth_level = excluded.truth_level,
    last_modified_at = excluded.last_modified_at, device_id = excluded.device_id,
    version = excluded.version, base_version = excluded.base_version,
    base_clock = excluded.base_clock, deleted = excluded.deleted, wire = excluded.wire
"""


@functools.lru_cache(maxsize=256)
def _pg_sql(sql: str) -> str:
    """The shared SQL's ``?`` placeholders in psycopg's ``%s`` style."""
    return sql.replace("?", "%s")


class _PgDb:
    """A psycopg connection behind the small :class:`~truthvault.hub._base.Db` interface."""

    __slots__ = ("conn",)

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        return self.conn.execute(_pg_sql(sql), parameters)  # type: ignore[arg-type]

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(_pg_sql(sql), parameters)  # type: ignore[arg-type]


class PostgresHubStore(BaseHubStore):
    """A hub store in PostgreSQL, migrated on open; pushes of one tenant serialise on its row lock."""

    backend = "postgresql"
    # NO KEY UPDATE rather than UPDATE: inserts into tables referencing the tenant (an
    # event written by a pull) take KEY SHARE on its row and must not wait for a push.
    _lock_clause = " FOR NO KEY UPDATE"
    _integrity_errors = (psycopg.errors.UniqueViolation,)

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 16) -> None:
        super().__init__()
        self.url = url
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                current = _revision(conn)
            if current != migrations.HEAD_REVISION:
                migrations.upgrade(url)
            self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
                url, min_size=min_size, max_size=max_size, kwargs={"autocommit": True}, open=False
            )
            self._pool.open(wait=True, timeout=30)
        except (psycopg.Error, TimeoutError) as exc:
            raise StorageError(
                f"cannot open the hub database: {exc}", hint="check that PostgreSQL runs and the URL"
            ) from exc

    def close(self) -> None:
        """Close the connection pool."""
        self._pool.close()

    @contextmanager
    def _write(self) -> Iterator[Db]:
        with _storage_errors(), self._pool.connection() as conn, conn.transaction():
            yield _PgDb(conn)

    @contextmanager
    def _read(self) -> Iterator[Db]:
        with _storage_errors(), self._pool.connection() as conn:
            yield _PgDb(conn)

    @contextmanager
    def _snapshot(self) -> Iterator[Db]:
        with _storage_errors(), self._pool.connection() as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield _PgDb(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _load_current(self, db: Db, tenant_pk: int, entity_ids: Sequence[str]) -> dict[str, SyncItem]:
        """The current versions of the given entities, in one query."""
        rows = db.execute(
            "SELECT wire FROM entities WHERE tenant_pk = ? AND entity_id = ANY(?::text[])",
            (tenant_pk, list(entity_ids)),
        ).fetchall()
        current = {}
        for (wire,) in rows:
            item = _item_decoder.decode(wire)
            current[item.entity_id] = item
        return current

    def _upsert_entities(self, db: Db, tenant_pk: int, rows: list[tuple[Any, ...]]) -> None:
        """Write new current versions with one INSERT ... SELECT FROM unnest(...)."""
        assert isinstance(db, _PgDb)
        db.conn.execute(_UPSERT_ENTITIES, (tenant_pk, *(list(column) for column in zip(*rows, strict=True))))


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
