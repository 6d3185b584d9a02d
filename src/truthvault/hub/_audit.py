"""The hub's audit log: one RFC 6962 Merkle tree per tenant, stored in the hub's database.

Appends are sequenced, so no writer can fork the log: each append transaction holds the
tenant's head row locked (``FOR NO KEY UPDATE`` or the update of the head on PostgreSQL,
``BEGIN IMMEDIATE`` on SQLite), numbers its entries from the head's size, and the key
(tenant, idx) is unique. The head keeps the tree's right edge, so an append reads one row and
writes its entries, the complete nodes they finish, and the head. Concurrent appenders share
one commit (group commit, :mod:`._audit_commit`), which is what makes ten thousand durable
appends a second possible.

Every complete subtree is kept (``audit_nodes``), so an inclusion or consistency proof at any
size reads O(log n) rows; a verification streams the entries and the nodes in order and names
the first index that does not match.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import msgspec

from ..errors import InvalidInput
from ..kernel import (
    EMPTY_ROOT,
    ENTRY_FORMAT,
    AuditBatchTaken,
    AuditEntry,
    AuditRecord,
    AuditTampered,
    DeviceBatch,
    Frontier,
    NodeSource,
    consistency_proof,
    encode_record,
    inclusion_proof,
    leaf_hash,
    verify_batch,
)
from ..kernel import merkle_root as tree_root
from ..model import PushRequest, PushResponse
from ..truth import level_of_source
from ._audit_commit import BatchInfo, GroupCommit, Request, locked_frontier, number, write_rows
from ._port import iso_ms, now
from ._sql import Db, SqlDatabase

__all__ = ["AuditLog", "BatchInfo", "HubAuditSink", "StoredEntry"]

#: who a sync push's entry names as its actor: the device's sync, on behalf of its user
_SYNC_SOURCE = "automation:sync"
_SYNC_LEVEL = int(level_of_source(_SYNC_SOURCE))
_encoder = msgspec.json.Encoder()
#: a stand-in hash while the nodes a computation needs are being found
_ZERO = bytes(32)
T = TypeVar("T")
#: positions one IN (...) query asks for at most
_IN_CHUNK = 200
#: entries a verification reads at once (a power of two: chunks align with subtrees)
_CHUNK = 4096


@dataclass(frozen=True, slots=True)
class StoredEntry:
    index: int
    entry: bytes
    device_id: str
    batch_seq: int | None


class AuditLog:
    """The audit logs of every tenant of one hub database."""

    def __init__(self, database: SqlDatabase) -> None:
        self.database = database
        self.group_commit = GroupCommit(database)

    # -- appends ---------------------------------------------------------------------------
    def append(self, tenant_id: str, entries: Sequence[bytes], batch: BatchInfo | None = None) -> int:
        """Append canonical entries to a tenant's log, durably; return the first one's index.

        Concurrent appends share one commit (see :mod:`._audit_commit`); inside a transaction
        of this thread the entries are written in it, and commit with it."""
        if not entries:
            raise InvalidInput("nothing to append")
        pk = self.database.tenant_pk(tenant_id)
        return self.group_commit.append(pk, Request(entries, batch))

    def integrate(self, tenant_pk: int, limit: int = 10_000) -> int:
        """Move up to ``limit`` queued entries of a tenant (``audit_pending``, see
        :class:`~._audit_queue.AuditQueue`) into its tree, in the order they were queued, in one
        transaction under the head's lock; return how many moved."""
        at = now()
        heads = self.group_commit.heads
        with self.database.write() as db:
            frontier = locked_frontier(self.database, db, tenant_pk, at, tenant_pk not in heads)
            # read after the lock: another sequencer's moves have committed and are not seen again
            rows = db.execute(
                "SELECT id, entry FROM audit_pending WHERE tenant_pk = ? ORDER BY id LIMIT ?",
                (tenant_pk, limit),
            ).fetchall()
            if rows:
                write_rows(db, number(tenant_pk, frontier, [Request([bytes(r[1]) for r in rows], None)], at))
                db.executemany("DELETE FROM audit_pending WHERE id = ?", [(r[0],) for r in rows])
        heads.add(tenant_pk)
        return len(rows)

    def push_entry(
        self, tenant_id: str, device_id: str, request: PushRequest, response: PushResponse, now_ms: int
    ) -> bytes | None:
        """The entry of a sync push (action ``sync.push``): the ids and versions it wrote, never
        their payloads; None for a push that changed nothing (a replay)."""
        # built straight as an entry: a Target a pushed item would cost more than the rest
        items = request.items
        if any(r.outcome == "duplicate" for r in response.results):
            fresh = {r.entity_id for r in response.results if r.outcome != "duplicate"}
            items = [i for i in items if i.entity_id in fresh]
        if not items and not request.decisions:
            return None
        targets = [(i.entity_id, i.version) for i in items]
        targets += [(f"record:{d.id}", 0) for d in request.decisions]
        digest = hashlib.sha256("\n".join(f"{e} {v}" for e, v in targets).encode()).hexdigest()
        entry = AuditEntry(
            ENTRY_FORMAT, tenant_id, "sync.push", "1.0.0", _SYNC_SOURCE, device_id, _SYNC_LEVEL,
            "allowed", iso_ms(now_ms), digest, targets,
        )  # fmt: skip
        return _encoder.encode(entry)

    def append_batch(self, batch: DeviceBatch, sign_public: str) -> tuple[int, bool]:
        """Append a device's signed batch once: (its first index, whether it was new). The
        signature must be the device's (``sign_public``); a batch sent again is not appended
        again. One that reuses a sequence number for other entries, or repeats an entry the log
        holds from a batch, is refused whole (:class:`~truthvault.kernel.AuditBatchTaken`, with
        the device's next free number and the positions of the entries held): what the log
        holds is never changed, and no entry of a device is in it twice."""
        verify_batch(batch, sign_public)
        pk = self.database.tenant_pk(batch.tenant)
        known = self._known_batch(pk, batch)
        if known is not None:
            return known, False
        info = BatchInfo(batch.device, batch.seq, sign_public, batch.signature)
        refused: tuple[type[Exception], ...] = (AuditBatchTaken, *self.database.integrity_errors)
        try:
            return self.append(batch.tenant, [e.encode() for e in batch.entries], info), True
        except refused:
            # the same batch, sent again while the first copy was being appended
            known = self._known_batch(pk, batch)
            if known is None:
                raise
            return known, False

    def _known_batch(self, pk: int, batch: DeviceBatch) -> int | None:
        """The first index of ``batch`` if the log holds it as it is (the same signature)."""
        with self.database.read() as db:
            row = db.execute(
                "SELECT first_idx, signature FROM audit_batches WHERE tenant_pk = ? AND device_id = ? AND seq = ?",
                (pk, batch.device, batch.seq),
            ).fetchone()
        return int(row[0]) if row is not None and row[1] == batch.signature else None

    # -- reads -----------------------------------------------------------------------------
    def head(self, tenant_id: str) -> tuple[int, bytes]:
        """(size, root) of a tenant's log."""
        pk = self.database.tenant_pk(tenant_id)
        with self.database.read() as db:
            row = db.execute("SELECT size, root FROM audit_heads WHERE tenant_pk = ?", (pk,)).fetchone()
        return (0, EMPTY_ROOT) if row is None else (int(row[0]), bytes(row[1]))

    def entries(self, tenant_id: str, start: int = 0, limit: int = 1000) -> list[StoredEntry]:
        """Entries ``start``.. of a tenant's log, at most ``limit``."""
        if start < 0 or limit < 1:
            raise InvalidInput(f"start ({start}) must be >= 0 and limit ({limit}) >= 1")
        pk = self.database.tenant_pk(tenant_id)
        with self.database.read() as db:
            rows = db.execute(
                "SELECT idx, entry, device_id, batch_seq FROM audit_entries WHERE tenant_pk = ? AND idx >= ? "
                "ORDER BY idx LIMIT ?",
                (pk, start, limit),
            ).fetchall()
        return [StoredEntry(int(r[0]), bytes(r[1]), r[2], None if r[3] is None else int(r[3])) for r in rows]

    def batch(self, tenant_id: str, device_id: str, seq: int) -> BatchInfo | None:
        pk = self.database.tenant_pk(tenant_id)
        with self.database.read() as db:
            row = db.execute(
                "SELECT sign_public, signature FROM audit_batches WHERE tenant_pk = ? AND device_id = ? AND seq = ?",
                (pk, device_id, seq),
            ).fetchone()
        return None if row is None else BatchInfo(device_id, seq, row[0], row[1])

    def inclusion(self, tenant_id: str, index: int, size: int) -> list[bytes]:
        """The inclusion proof of entry ``index`` in the tree of ``size``."""
        pk = self.database.tenant_pk(tenant_id)
        current, _ = self.head(tenant_id)
        if not 0 <= index < size <= current:
            raise InvalidInput(f"index {index} and size {size} must satisfy 0 <= index < size <= {current}")
        with self.database.read() as db:
            return _stored(db, pk, lambda nodes: inclusion_proof(nodes, index, size), self.database.backend)

    def consistency(self, tenant_id: str, first: int, second: int) -> list[bytes]:
        """The consistency proof from the tree of ``first`` to the tree of ``second``."""
        pk = self.database.tenant_pk(tenant_id)
        current, _ = self.head(tenant_id)
        if not 0 <= first <= second <= current:
            raise InvalidInput(
                f"first {first} and second {second} must satisfy 0 <= first <= second <= {current}"
            )
        with self.database.read() as db:
            return _stored(
                db, pk, lambda nodes: consistency_proof(nodes, first, second), self.database.backend
            )

    def root_at(self, tenant_id: str, size: int) -> bytes:
        """The root of the first ``size`` entries, from the stored nodes."""
        pk = self.database.tenant_pk(tenant_id)
        with self.database.read() as db:
            return _stored(db, pk, lambda nodes: tree_root(nodes, size), self.database.backend)

    def tenant_ids(self) -> list[str]:
        """The tenants that have a log."""
        with self.database.read() as db:
            rows = db.execute(
                "SELECT t.id FROM audit_heads h JOIN tenants t ON t.pk = h.tenant_pk ORDER BY t.pk"
            ).fetchall()
        return [r[0] for r in rows]

    # -- verification ------------------------------------------------------------------------
    def verify(self, tenant_id: str, *, start_size: int = 0, start_root: bytes | None = None) -> int:
        """Check a tenant's stored log: every entry present once and in order, each hashing to
        its leaf, every stored node recomputed, the head's root; from ``start_size`` (whose
        root, if given, must be ``start_root``). Returns the size checked; raises
        :class:`~truthvault.kernel.AuditTampered` naming the first bad index."""
        pk = self.database.tenant_pk(tenant_id)
        size, head_root = self.head(tenant_id)
        if start_size > size:
            raise AuditTampered(
                f"the log has {size} entries, fewer than the {start_size} checked before", index=size
            )
        with self.database.read() as db:
            frontier = _stored(db, pk, lambda nodes: Frontier.load(nodes, start_size), self.database.backend)
        if start_root is not None and frontier.root() != start_root:
            raise AuditTampered(f"the first {start_size} entries no longer have the root checked before")
        for first in range(start_size, size, _CHUNK):
            last = min(first + _CHUNK, size)
            with self.database.read() as db:
                _verify_chunk(db, pk, frontier, first, last)
        with self.database.read() as db:
            extra = db.execute(
                "SELECT min(idx) FROM audit_entries WHERE tenant_pk = ? AND idx >= ?", (pk, size)
            ).fetchone()
        if extra is not None and extra[0] is not None:
            raise AuditTampered(
                f"entry {extra[0]} lies beyond the head ({size} entries)", index=int(extra[0])
            )
        if frontier.root() != head_root:
            raise AuditTampered(f"the head's root is not the root of its {size} entries")
        return size


def _stored(db: Db, pk: int, compute: Callable[[NodeSource], T], backend: str) -> T:
    """``compute`` over the stored tree. On PostgreSQL in two queries (a round trip costs more
    than the reads): which nodes it reads depends only on the sizes and indexes it is given,
    never on their hashes, so a first pass over zeros names them, one query per table fetches
    them, and a second pass computes. SQLite reads each node by its key (faster there)."""
    if backend == "sqlite":
        return compute(lambda level, index: _one_node(db, pk, level, index))
    wanted: list[tuple[int, int]] = []

    def note(level: int, index: int) -> bytes:
        wanted.append((level, index))
        return _ZERO

    compute(note)
    known: dict[tuple[int, int], bytes] = {}
    leaves = [i for level, i in wanted if level == 0]
    inner = [(level, i) for level, i in wanted if level > 0]
    for start in range(0, len(leaves), _IN_CHUNK):
        part = leaves[start : start + _IN_CHUNK]
        sql = f"SELECT idx, leaf FROM audit_entries WHERE tenant_pk = ? AND idx IN ({','.join('?' * len(part))})"
        known.update(((0, int(i)), bytes(h)) for i, h in db.execute(sql, (pk, *part)).fetchall())
    for start in range(0, len(inner), _IN_CHUNK):
        pairs = inner[start : start + _IN_CHUNK]
        values = ", ".join(["(?, ?)"] * len(pairs))
        sql = f"SELECT level, idx, hash FROM audit_nodes WHERE tenant_pk = ? AND (level, idx) IN (VALUES {values})"
        args = [pk, *(v for pair in pairs for v in pair)]
        known.update(((int(lv), int(i)), bytes(h)) for lv, i, h in db.execute(sql, args).fetchall())

    def source(level: int, index: int) -> bytes:
        found = known.get((level, index))
        if found is None:
            raise _missing(level, index)
        return found

    return compute(source)


def _one_node(db: Db, pk: int, level: int, index: int) -> bytes:
    if level == 0:
        row = db.execute(
            "SELECT leaf FROM audit_entries WHERE tenant_pk = ? AND idx = ?", (pk, index)
        ).fetchone()
    else:
        sql = "SELECT hash FROM audit_nodes WHERE tenant_pk = ? AND level = ? AND idx = ?"
        row = db.execute(sql, (pk, level, index)).fetchone()
    if row is None:
        raise _missing(level, index)
    return bytes(row[0])


def _missing(level: int, index: int) -> AuditTampered:
    first = index << level
    return AuditTampered(
        f"the tree node over entries {first}..{first + (1 << level) - 1} is missing", index=first
    )


def _verify_chunk(db: Db, pk: int, frontier: Frontier, first: int, last: int) -> None:
    entries = db.execute(
        "SELECT idx, entry, leaf FROM audit_entries WHERE tenant_pk = ? AND idx >= ? AND idx < ? ORDER BY idx",
        (pk, first, last),
    ).fetchall()
    stored = db.execute(
        "SELECT span_end, level, idx, hash FROM audit_nodes WHERE tenant_pk = ? AND span_end > ? "
        "AND span_end <= ? ORDER BY span_end, level",
        (pk, first, last),
    ).fetchall()
    nodes = {(int(r[1]), int(r[2])): bytes(r[3]) for r in stored}
    expected = first
    for idx, entry, leaf in entries:
        if idx != expected:
            raise AuditTampered(f"entry {expected} is missing", index=expected)
        if leaf_hash(bytes(entry)) != bytes(leaf):
            raise AuditTampered(f"entry {idx} was changed: it does not hash to its leaf", index=idx)
        for level, index, h in frontier.append(bytes(leaf)):
            if nodes.get((level, index)) != h:
                lo = index << level
                raise AuditTampered(
                    f"entries {lo}..{lo + (1 << level) - 1} do not match the stored tree (entry changed or moved)",
                    index=lo,
                )
        expected += 1
    if expected != last:
        raise AuditTampered(f"entry {expected} is missing", index=expected)


class HubAuditSink:
    """The kernel's :class:`~truthvault.kernel.AuditSink` for actions run at the hub: the entry
    is queued (``audit_pending``) in the write transaction of this thread, so where the database
    joins nested writes it commits with the action, taking no lock; the hub's sequencer moves it
    into the tree (see :class:`~._audit_queue.AuditQueue`)."""

    def __init__(self, queue: _Enqueue) -> None:
        self.queue = queue

    def append(self, record: AuditRecord) -> None:
        self.queue.enqueue(record.tenant_id, [encode_record(record)])


class _Enqueue(Protocol):
    def enqueue(self, tenant_id: str, entries: Sequence[bytes]) -> None: ...
