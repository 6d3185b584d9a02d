"""Export and import of entities as JSON Lines (one SyncItem per line, every truth field)."""

from __future__ import annotations

import gc
import hashlib
import io
import tempfile
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import msgspec

from ..clock import future_limit
from ..errors import Forbidden, InvalidInput, TruthvaultError
from ..intake import prepare_items
from ..merge import Place, plan_merge
from ..model import SyncItem, decode_item
from ..truth import TruthLevel, level_of_source
from . import _search
from ._apply import Applier
from ._codec import (
    ENTITY_COLUMNS,
    ENTITY_SELECT,
    MAX_PAYLOAD_BYTES,
    Current,
    check_item,
    entity_params,
    item_from_row,
)
from ._db import VaultDB

__all__ = ["IMPORT_CHUNK", "Transfer", "hashed", "stream_digest"]

#: Lines decoded, checked and written per step of an import.
IMPORT_CHUNK = 50_000
_BULK_CACHE_KIB = 256 * 1024
_FRESH_INSERT = (
    f"INSERT INTO entities (rowid, {', '.join(ENTITY_COLUMNS)}, mutation, hub_known) "
    f"VALUES ({', '.join('?' * 19)})"
)
_encoder = msgspec.json.Encoder()


def _parse(line: bytes | str, n: int, tenant: str, max_clock: str) -> SyncItem:
    # Decoded and checked as a push is: a line the hub would refuse is refused here, naming it.
    try:
        item = decode_item(line, f"line {n}")
        # A vault holds one tenant: an imported item joins this vault's tenant.
        item.tenant_id = tenant
        return check_item(item, f"line {n}", tenant, max_clock)
    except TruthvaultError as exc:
        raise _at_line(exc, n) from None


def _at_line(exc: TruthvaultError, n: int) -> TruthvaultError:
    # "line 3.payload: ..." -> "line 3: payload: ...", like the schema errors.
    return type(exc)(exc.message.replace(f"line {n}.", f"line {n}: ", 1), hint=exc.hint)


def _parse_chunk(chunk: list[tuple[int, bytes | str]], tenant: str, max_clock: str) -> list[SyncItem]:
    """A chunk of lines as items, decoded in one go and checked as a hub checks a push, a
    thousand at a time (:func:`truthvault.intake.prepare_items`); a chunk with a bad line is taken
    line by line, so that the error names the first one."""
    lines = [line.encode() if isinstance(line, str) else line for _, line in chunk]
    try:
        array = b"[" + b",".join(lines) + b"]"
        if b"\\u0000" in array:
            raise InvalidInput("a NUL character: let each line say where")
        items = _chunk_decoder.decode(array)
        for item in items:
            item.tenant_id = tenant
            item.seq = item.mutation = None
            item.kept = False
        # a thousand at a time, as a push: the payloads are decoded to be checked, and a slice
        # of that size stays in the processor's caches
        for start in range(0, len(items), 1000):
            prepare_items(
                items[start : start + 1000],
                tenant_id=tenant,
                max_payload_bytes=MAX_PAYLOAD_BYTES,
                max_clock=max_clock,
            )
    except (TruthvaultError, msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return [_parse(line, n, tenant, max_clock) for n, line in chunk]
    return items


_chunk_decoder = msgspec.json.Decoder(list[SyncItem])


def _check_claims(chunk: list[tuple[int, bytes | str]], items: list[SyncItem], by: str, level: int) -> None:
    """No line claims more authority than who imports it (after the upgrade rule, an accepted
    line is level 1): an automation or an AI cannot make user truth by importing it, as it
    cannot by writing it. What it may import lands by the truth rule: against your (level-1)
    entities, as suggestions."""
    for (n, _), item in zip(chunk, items, strict=True):
        if item.truth_level < level:
            raise Forbidden(
                f"line {n}: {by} (level {level}) may not import level-{item.truth_level} content "
                f"({item.origin_source}): nothing may claim more authority than who imports it",
                hint="import it as the user (level 1), e.g. 'truthvault import FILE'",
            )


def stream_digest(fp: Iterable[bytes | str]) -> tuple[Iterable[bytes | str], str]:
    """``fp`` to read again, and the SHA-256 of its lines, each ending with a newline (as
    :func:`hashed` takes it with ``whole_lines``)."""
    digest = hashlib.sha256()
    seekable = getattr(fp, "seekable", None)
    if seekable is not None and seekable():
        start = fp.tell()  # type: ignore[attr-defined]
        for line in fp:
            digest.update(_whole(line))
        fp.seek(start)  # type: ignore[attr-defined]
        return fp, digest.hexdigest()
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (read by the import, closed when collected)
    for line in fp:
        data = _whole(line)  # an iterable's lines need not end with a newline: they stay lines
        digest.update(data)
        spool.write(data)
    spool.seek(0)
    return spool, digest.hexdigest()


def hashed(lines: Iterable[bytes | str], digest: Any, whole_lines: bool = False) -> Iterator[bytes | str]:
    """``lines`` as they are, each added to ``digest`` (a ``hashlib`` object) as it is read (with
    ``whole_lines``, ending with a newline)."""
    for line in lines:
        digest.update(_whole(line) if whole_lines else line if isinstance(line, bytes) else line.encode())
        yield line


def _whole(line: bytes | str) -> bytes:
    data = line if isinstance(line, bytes) else line.encode()
    return data if data.endswith(b"\n") else data + b"\n"


def _chunks(fp: Iterable[bytes | str], size: int) -> Iterator[list[tuple[int, bytes | str]]]:
    chunk: list[tuple[int, bytes | str]] = []
    for n, line in enumerate(fp, 1):
        if line.strip():
            chunk.append((n, line))
            if len(chunk) >= size:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


class Transfer:
    """Export and import of one vault's entities as JSON Lines."""

    def __init__(self, db: VaultDB, applier: Applier) -> None:
        self._db = db
        self._applier = applier

    def export(self, fp: IO[Any], include_deleted: bool = True) -> int:
        """Stream every entity (tombstones too, by default) to ``fp``; return how many."""
        text = isinstance(fp, io.TextIOBase)
        sql = ENTITY_SELECT + ("" if include_deleted else " WHERE deleted = 0") + " ORDER BY rowid"
        count = 0
        with self._db.read() as conn:
            rows = conn.execute(sql)
            while batch := rows.fetchmany(5000):
                buf = bytearray()
                for row in batch:
                    buf += _encoder.encode(item_from_row(row))
                    buf += b"\n"
                fp.write(buf.decode() if text else bytes(buf))
                count += len(batch)
        return count

    def load(
        self,
        fp: Iterable[bytes | str],
        *,
        queue_for_push: bool = True,
        progress: Callable[[int], None] | None = None,
        by: str = "user:import",
        noted: Callable[[list[SyncItem]], None] | None = None,
    ) -> int:
        """Restore entities from JSON Lines (see :meth:`Vault.import_jsonl`); how many lines.

        ``by`` is who imports: no line may claim more authority than its level (Forbidden naming
        the line). ``noted`` is given each chunk's items once they are checked."""
        level = level_of_source(by)
        count = 0
        conn = self._db.conn
        old_cache = conn.execute("PRAGMA cache_size").fetchone()[0]
        conn.execute(f"PRAGMA cache_size = -{_BULK_CACHE_KIB}")
        # Chunks are acyclic and freed by reference counting; the cyclic collector would
        # only rescan the growing heap, which costs a fifth of a million-line import.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            with self._db.tx():
                tenant = self._db.meta_str("tenant_id")
                now = self._db.stamp()
                rows_before = int(conn.execute("SELECT coalesce(max(rowid), 0) FROM entities").fetchone()[0])
                deferred: list[str] = []
                for chunk in _chunks(fp, IMPORT_CHUNK):
                    if count and not deferred and count >= rows_before:
                        # A big import into a smaller vault: building the secondary indexes
                        # once at the end is faster than updating them row by row.
                        deferred = self._drop_secondary_indexes()
                    max_clock = future_limit()
                    items = _parse_chunk(chunk, tenant, max_clock)
                    if level is not TruthLevel.USER:
                        _check_claims(chunk, items, by, level)
                    if noted is not None:
                        noted(items)
                    # Later edits here must come after every imported version, as after a pull.
                    self._db.clock.observe(max(item.last_modified_at for item in items))
                    self._import_chunk(items, queue_for_push, now)
                    count += len(chunk)
                    if progress is not None:
                        progress(count)
                for sql in deferred:
                    conn.execute(sql)
        finally:
            if gc_was_enabled:
                gc.enable()
            conn.execute(f"PRAGMA cache_size = {old_cache}")
        return count

    def compact(self, count: int) -> None:
        """After a large import has committed, give the disk back: its WAL is as big as
        everything it wrote (a checkpoint cannot truncate it inside the import's transaction)."""
        if count > IMPORT_CHUNK:
            self._db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _drop_secondary_indexes(self) -> list[str]:
        """Drop the entities table's own indexes; return the SQL that recreates them."""
        rows = self._db.conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'entities' AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in rows:
            self._db.conn.execute(f'DROP INDEX "{name}"')
        return [sql for _, sql in rows]

    def _import_chunk(self, items: list[SyncItem], queue: bool, now: str) -> None:
        conn = self._db.conn
        self._db.catch_up_index()  # the new rows are indexed here: a catch-up must not again
        first_mutation = self._db.take_mutations(len(items)) if queue else 0
        seen: dict[str, int] = {}
        for item in items:
            seen[item.entity_id] = seen.get(item.entity_id, 0) + 1
        existing = self._db.currents(seen)
        start = int(conn.execute("SELECT coalesce(max(rowid), 0) FROM entities").fetchone()[0]) + 1
        fresh: list[tuple[Any, ...]] = []
        fresh_items: list[SyncItem] = []
        contested: list[SyncItem] = []
        mutation_of: dict[int, int | None] = {}
        for n, item in enumerate(items):
            mutation = first_mutation + n if queue else None
            if seen[item.entity_id] == 1 and item.entity_id not in existing:
                fresh.append((start + len(fresh), *entity_params(item, mutation, False)))
                fresh_items.append(item)
            else:
                mutation_of[id(item)] = mutation
                contested.append(item)
        if fresh:
            conn.executemany(_FRESH_INSERT, fresh)
            self._db.count(fresh_items, [])
            # One set-based pass indexes the whole run of new rows.
            _search.reindex_range(conn, start, start + len(fresh) - 1)
        if contested:
            self._import_contested(contested, existing, mutation_of, queue, now)

    def _import_contested(
        self,
        items: list[SyncItem],
        existing: dict[str, Current],
        mutation_of: dict[int, int | None],
        queue: bool,
        now: str,
    ) -> None:
        """Resolve imported versions of ids already present (or repeated) like a pull."""
        plan = plan_merge({eid: cur.item for eid, cur in existing.items()}, items, now)
        mutations = {key: m for key, m in mutation_of.items() if m is not None}
        self._applier.apply(plan, existing, Place.QUEUED if queue else Place.LOCAL, mutations)
