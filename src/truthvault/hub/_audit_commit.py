"""Group commit of the audit log's appends: many callers' entries in one durable transaction.

A standalone append (one not inside a transaction the caller has open) hands its entries to the
tenant's queue. The first caller to find the tenant idle becomes the leader: it takes every
request waiting, numbers their entries from the tree's head, writes them in ONE transaction and
wakes the callers of the group (each woken caller wakes the next), each with its own first
index, or with the error if the commit failed, so no caller is told success falsely. While it writes, the next callers queue up for
the next leader, who first waits a little (at most half a commit) for the callers of the last
group to come back: a busy writer appends again at once, and without the wait every writer
would be in every other commit. One tenant's commits follow one another (the head stays locked
until its commit is on disk), so what a commit carries is what the log's rate is made of.

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

import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..kernel import EMPTY_ROOT, Frontier, leaf_hash
from ._audit_batches import Grouped, batch_taken
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
    #: the caller of its group it wakes once woken: a group's callers wake one after another,
    #: rather than all at once to wait for the GIL together (measured: 8-17% more appends/s)
    after: Request | None = None


@dataclass(slots=True)
class _Queue:
    """A tenant's appends: those waiting, the one leading a group and the size of its group,
    the callers of the last group that have not come back, how long a commit takes (a moving
    average, in seconds)."""

    waiting: list[Request] = field(default_factory=list)
    leader: Request | None = None
    committing: int = 0
    returning: int = 0
    commit_s: float = 0.0
    #: when the last group was done (``time.perf_counter()``)
    done_at: float = 0.0


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


#: the longest a leader waits for the last group's callers to come back, as a share of a commit
_GATHER = 0.5
#: and at most this long (seconds)
_GATHER_MAX = 0.005


class GroupCommit:
    """The appends of every tenant of one hub database, group-committed per tenant."""

    def __init__(self, database: SqlDatabase) -> None:
        self.database = database
        self._cv = threading.Condition(threading.Lock())
        self._queues: dict[int, _Queue] = {}
        #: tenants known to have a head row (it is never deleted): their appends skip making one
        self.heads: set[int] = set()
        #: per tenant, the head this process committed last and its root: where the next group
        #: starts, if the head is still there (checked by the write itself)
        self._tails: dict[int, tuple[Frontier, bytes]] = {}
        #: groups written, and how many of them in one statement: what tests check sharing with
        self.groups = self.one_statement = 0

    def append(self, pk: int, request: Request) -> int:
        """Write a request's entries durably; its first index."""
        if self.database.in_write():
            # inside a transaction of this thread: the entry commits with it, so it is written
            # there alone, never with other appenders' entries
            self.write_joined(pk, [request])
            return _result(request)
        with self._cv:
            queue = self._queues.setdefault(pk, _Queue())
            queue.waiting.append(request)
            if queue.returning and time.perf_counter() - queue.done_at > queue.commit_s:
                queue.returning = 0  # not a busy writer coming back: no one to wait for
            if queue.returning:
                queue.returning -= 1
                if not queue.returning:
                    self._cv.notify_all()
            if queue.leader is None:
                queue.leader = request
            lead = queue.leader is request
        if not lead:
            request.wake.acquire()  # until its group is written or it is to lead the next one
            if request.done:
                if request.after is not None:
                    request.after.wake.release()
                return _result(request)
        with self._cv:
            # the callers of the last group mostly append again at once (a busy writer): wait a
            # little for them, so that the commit carries them too
            if queue.returning:
                self._cv.wait_for(lambda: not queue.returning, min(queue.commit_s * _GATHER, _GATHER_MAX))
            queue.returning = 0
            group, queue.waiting = queue.waiting, []
            queue.committing = len(group)
            self.groups += 1
        started = time.perf_counter()
        try:
            self._commit(pk, group)
        finally:
            with self._cv:
                for r in group:
                    r.done = True
                queue.committing = 0
                queue.done_at = time.perf_counter()
                queue.commit_s += (queue.done_at - started - queue.commit_s) / 8
                queue.returning = len(group)
                following = queue.leader = queue.waiting[0] if queue.waiting else None
            callers = [r for r in group if r is not request]
            for r, after in itertools.pairwise(callers):
                r.after = after
            if callers:
                callers[0].wake.release()
            if following is not None:
                following.wake.release()
        return _result(request)

    def pending(self, pk: int) -> int:
        """Appends of a tenant waiting or being committed (by the group commit)."""
        with self._cv:
            queue = self._queues.get(pk)
            return 0 if queue is None else len(queue.waiting) + queue.committing

    def write_joined(self, pk: int, group: list[Request]) -> None:
        """Lock the head, number the group's entries, write them, their nodes and the new head,
        in the transaction of this thread (one of its own if there is none)."""
        at = now()
        with self.database.write() as db:
            frontier = locked_frontier(self.database, db, pk, at, pk not in self.heads)
            write_rows(db, number(pk, frontier, group, at, db))
        self.heads.add(pk)

    def _commit(self, pk: int, group: list[Request]) -> None:
        """Number and commit a group: from the head this process committed last in one statement
        (PostgreSQL), else (or if the head moved) in a transaction that locks and reads the
        head. If the group breaks a unique key (a device batch sent twice), nothing was
        written, and each request is tried alone, so only the offending one fails."""
        tail = self._tails.pop(pk, None) if self.database.backend == "postgresql" else None
        if any(r.batch is not None for r in group):
            tail = None  # a device batch is checked against the log under the head's lock
        try:
            if tail is not None:
                frontier, root = tail
                expected = (frontier.size, root)
                rows = number(pk, frontier, group, now())
                if self.database.append_audit(pk, expected, rows):
                    self._tails[pk] = (frontier, rows.root)
                    with self._cv:
                        self.one_statement += 1
                    return
                # the head moved (another process, a joined append, the sequencer): nothing
                # was written
            self._transaction(pk, group)
        except self.database.integrity_errors as exc:
            if len(group) == 1:
                group[0].error = exc
                return
            for r in group:
                try:
                    self._transaction(pk, [r])
                except BaseException as alone:
                    r.error = alone
        except BaseException as exc:
            for r in group:
                r.error = exc

    def _transaction(self, pk: int, group: list[Request]) -> None:
        at = now()
        with self.database.write() as db:
            frontier = locked_frontier(self.database, db, pk, at, pk not in self.heads)
            rows = number(pk, frontier, group, at, db)
            write_rows(db, rows)
        self.heads.add(pk)
        self._tails[pk] = (frontier, rows.root)


def _result(request: Request) -> int:
    if request.error is not None:
        raise request.error
    return request.first


def number(pk: int, frontier: Frontier, group: list[Request], at: str, db: Db | None = None) -> AuditRows:
    """Number ``group``'s entries from the frontier (advancing it), with their nodes, their
    device batches and the new head. With ``db`` (a transaction holding the head's lock), a
    device batch the log cannot take (:func:`~._audit_batches.batch_taken`) gets its error and
    is left out; without it, the group must hold no device batch."""
    rows = AuditRows(pk, [], [], [], 0, b"", b"", at)
    grouped = Grouped()
    for request in group:
        info = request.batch
        device, seq = (info.device_id, info.seq) if info else ("", None)
        leaves = [leaf_hash(entry) for entry in request.entries]
        if info is not None:
            assert db is not None, "a device batch is numbered under the head's lock"
            # under the head's lock: no other append can slip in between the check and the write
            request.error = batch_taken(db, pk, info.device_id, info.seq, leaves, grouped)
            if request.error is not None:
                continue
        request.first = frontier.size
        for entry, leaf in zip(request.entries, leaves, strict=True):
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
    if rows.entries:
        db.executemany(
            "INSERT INTO audit_entries (tenant_pk, idx, entry, leaf, device_id, batch_seq) "
            "VALUES (?, ?, ?, ?, ?, ?)",
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
