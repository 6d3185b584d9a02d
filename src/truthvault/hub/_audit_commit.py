"""Group commit of the audit log's appends: many callers' entries in one durable transaction.

A standalone append (one not inside a transaction the caller has open) hands its entries to the
tenant's queue. The first caller to find the tenant idle becomes the leader: it takes every
request waiting, numbers their entries from the tree's head, writes them in ONE transaction and
wakes every caller of the group, each with its own first index, or with the error if the commit
failed, so no caller is told success falsely. While it writes, the next callers queue up for
the next leader: a commit carries as many appends as arrived during the one before it.

On PostgreSQL the leader writes a group in one statement, so one round trip and one WAL flush:
it updates the head row only if the head still has the size and root this process wrote last
(``WHERE size = ? AND root = ?``), and inserts the entries, their nodes and device batches only
through that update. The update takes the row lock (another process's append waits for it, and
the other way round); if another writer moved the head meanwhile, it matches no row, nothing is
written, and the leader falls back to reading the locked head in a transaction. A root names
its whole tree, so entries are only ever numbered from the head as it is in the database: the
log cannot fork, and ``(tenant, idx)`` being the primary key stops a second entry at an index.

An append inside an open transaction (an action's, a push's) joins that transaction, alone: its
entry commits or rolls back with the caller's work.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..kernel import EMPTY_ROOT, Frontier, leaf_hash
from ._port import now
from ._sql import Db, SqlDatabase

__all__ = ["AuditRows", "BatchInfo", "GroupCommit", "Request", "locked_frontier", "number", "write_rows"]


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """A device batch as the log stores it beside its entries."""

    device_id: str
    seq: int
    sign_public: str
    signature: str


def _held() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass(slots=True)
class Request:
    entries: Sequence[bytes]
    batch: BatchInfo | None
    first: int = -1
    error: BaseException | None = None
    #: written (``error`` tells whether it failed), or to lead the next group
    done: bool = False
    lead: bool = False
    #: released once ``done`` or ``lead`` is set: its caller waits on it alone
    wake: threading.Lock = field(default_factory=_held)


@dataclass(slots=True)
class _Queue:
    """A tenant's appends: those waiting, whether a leader is numbering a group, how many
    groups are being committed."""

    waiting: list[Request] = field(default_factory=list)
    numbering: Request | None = None
    committing: int = 0


@dataclass(slots=True)
class AuditRows:
    """What a group writes: entry rows, node rows, batch rows (tenant first in each) and the
    head after them."""

    pk: int
    entries: list[tuple[int, int, bytes, bytes, str, int | None]]
    nodes: list[tuple[int, int, int, bytes, int]]
    batches: list[tuple[int, str, int, int, int, str, str, str]]
    size: int
    root: bytes
    edge: bytes
    at: str


#: groups of one tenant committing at once in one process: one waits for the other's row lock,
#: and is sent while the other commits
_DEPTH = 2


class GroupCommit:
    """The appends of every tenant of one hub database, group-committed per tenant."""

    def __init__(self, database: SqlDatabase) -> None:
        self.database = database
        self._mutex = threading.Lock()
        self._queues: dict[int, _Queue] = {}
        #: tenants known to have a head row (it is never deleted): their appends skip making one
        self.heads: set[int] = set()
        #: per tenant, the head this process committed last: where the next group starts, if
        #: the head is still there (checked by the write itself)
        self._tails: dict[int, Frontier] = {}
        #: groups written, and how many of them in one statement: what tests check sharing with
        self.groups = self.one_statement = 0

    def append(self, pk: int, request: Request) -> int:
        """Write a request's entries durably; its first index."""
        if self.database.in_write():
            # inside a transaction of this thread: the entry commits with it, so it is written
            # there alone, never with other appenders' entries
            self.write_joined(pk, [request])
            return request.first
        with self._mutex:
            queue = self._queues.setdefault(pk, _Queue())
            queue.waiting.append(request)
            _wake(_promote(queue), request)
        if not request.lead:
            request.wake.acquire()  # until its group is written or it is to lead the next one
            if request.done:
                return _result(request)
        with self._mutex:
            group, queue.waiting = queue.waiting, []
            self.groups += 1
        try:
            self._lead(pk, queue, request, group)
        finally:
            with self._mutex:
                for r in group:
                    r.done = True
                if queue.numbering is request:
                    queue.numbering = None
                following = _promote(queue)
            _wake(following)
            for r in group:
                _wake(r, request)
        return _result(request)

    def write_joined(self, pk: int, group: list[Request]) -> None:
        """Lock the head, number the group's entries, write them, their nodes and the new head,
        in the transaction of this thread (one of its own if there is none)."""
        at = now()
        with self.database.write() as db:
            frontier = locked_frontier(self.database, db, pk, at, pk not in self.heads)
            write_rows(db, number(pk, frontier, group, at))
        self.heads.add(pk)

    def _lead(self, pk: int, queue: _Queue, leader: Request, group: list[Request]) -> None:
        """Number and commit a group. From a head this process committed (PostgreSQL), in one
        statement, handing numbering on as soon as the group is numbered: the next group is
        numbered from this one's end and sent while this one commits (it waits for this one's
        row lock, and writes nothing if this one failed). Otherwise in a transaction that reads
        the locked head, numbering held until it commits."""
        tail = self._tails.get(pk) if self.database.backend == "postgresql" else None
        if tail is None:
            self._locked(pk, group)
            return
        expected = (tail.size, tail.root())
        rows = number(pk, tail, group, now())  # the tail moves to the group's end
        with self._mutex:
            queue.numbering = None
            queue.committing += 1
            following = _promote(queue)
        _wake(following, leader)
        try:
            written = self.database.append_audit(pk, expected, rows)
        except BaseException as exc:
            self._tails.pop(pk, None)
            if len(group) > 1 and isinstance(exc, self.database.integrity_errors):
                self._each(pk, group)  # nothing was written: each alone
                return
            for r in group:
                r.error = exc
            return
        finally:
            with self._mutex:
                queue.committing -= 1
                following = _promote(queue)
            _wake(following, leader)
        if written:
            with self._mutex:
                self.one_statement += 1
        else:
            # the head moved (another process, a joined append, the sequencer, a group before
            # this one that failed): nothing was written
            self._tails.pop(pk, None)
            self._locked(pk, group)

    def _locked(self, pk: int, group: list[Request]) -> None:
        """Commit a group in a transaction that locks and reads the head; if it breaks a unique
        key (a device batch sent twice), nothing was written, and each request is tried alone,
        so only the offending one fails."""
        try:
            self._transaction(pk, group)
            return
        except self.database.integrity_errors as exc:
            if len(group) == 1:
                group[0].error = exc
                return
        except BaseException as exc:
            for r in group:
                r.error = exc
            return
        self._each(pk, group)

    def _each(self, pk: int, group: list[Request]) -> None:
        for r in group:
            try:
                self._transaction(pk, [r])
            except BaseException as exc:
                r.error = exc

    def _transaction(self, pk: int, group: list[Request]) -> None:
        at = now()
        with self.database.write() as db:
            frontier = locked_frontier(self.database, db, pk, at, pk not in self.heads)
            write_rows(db, number(pk, frontier, group, at))
        self.heads.add(pk)
        self._tails[pk] = frontier


def _promote(queue: _Queue) -> Request | None:
    """The waiting request to lead the next group, if numbering is free and fewer than
    ``_DEPTH`` groups are committing (the caller holds the mutex, and wakes it)."""
    if queue.numbering or queue.committing >= _DEPTH or not queue.waiting:
        return None
    leader = queue.numbering = queue.waiting[0]
    leader.lead = True
    return leader


def _wake(request: Request | None, caller: Request | None = None) -> None:
    """Let a waiting caller go on (not ``caller``, which is not waiting)."""
    if request is not None and request is not caller:
        request.wake.release()


def _result(request: Request) -> int:
    if request.error is not None:
        raise request.error
    return request.first


def number(pk: int, frontier: Frontier, group: list[Request], at: str) -> AuditRows:
    """Number ``group``'s entries from the frontier (advancing it), with their nodes, their
    device batches and the new head."""
    rows = AuditRows(pk, [], [], [], 0, b"", b"", at)
    for request in group:
        request.first = frontier.size
        info = request.batch
        device, seq = (info.device_id, info.seq) if info else ("", None)
        for entry in request.entries:
            leaf = leaf_hash(entry)
            rows.entries.append((pk, frontier.size, entry, leaf, device, seq))
            for level, index, h in frontier.append(leaf):
                rows.nodes.append((pk, level, index, h, (index + 1) << level))
        if info is not None:
            rows.batches.append((pk, info.device_id, info.seq, request.first, len(request.entries),
                                 info.sign_public, info.signature, at))  # fmt: skip
    rows.size, rows.root, rows.edge = frontier.size, frontier.root(), b"".join(frontier.edge())
    return rows


def write_rows(db: Db, rows: AuditRows) -> None:
    """Insert a group's rows and move the head (whose row this transaction has locked)."""
    db.executemany(
        "INSERT INTO audit_entries (tenant_pk, idx, entry, leaf, device_id, batch_seq) VALUES (?, ?, ?, ?, ?, ?)",
        rows.entries,
    )
    if rows.nodes:
        db.executemany(
            "INSERT INTO audit_nodes (tenant_pk, level, idx, hash, span_end) VALUES (?, ?, ?, ?, ?)",
            rows.nodes,
        )
    if rows.batches:
        db.executemany(
            "INSERT INTO audit_batches (tenant_pk, device_id, seq, first_idx, count, sign_public, "
            "signature, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            rows.batches,
        )
    db.execute(
        "UPDATE audit_heads SET size = ?, root = ?, edge = ?, updated_at = ? WHERE tenant_pk = ?",
        (rows.size, rows.root, rows.edge, rows.at, rows.pk),
    )


def locked_frontier(database: SqlDatabase, db: Db, pk: int, at: str, create: bool = True) -> Frontier:
    """The tenant's right edge, its head row locked until the transaction ends."""
    select = f"SELECT size, edge FROM audit_heads WHERE tenant_pk = ?{database.lock_clause}"
    row = None if create else db.execute(select, (pk,)).fetchone()
    if row is None:
        db.execute(
            "INSERT INTO audit_heads (tenant_pk, size, root, edge, updated_at) VALUES (?, 0, ?, ?, ?) "
            "ON CONFLICT (tenant_pk) DO NOTHING",
            (pk, EMPTY_ROOT, b"", at),
        )
        row = db.execute(select, (pk,)).fetchone()
    size, edge = int(row[0]), bytes(row[1])
    return Frontier(size, [edge[i : i + 32] for i in range(0, len(edge), 32)])
