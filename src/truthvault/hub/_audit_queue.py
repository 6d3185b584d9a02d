"""Queued audit appends: an entry is written into ``audit_pending`` in the writer's own
transaction (an action's, a push's), taking no lock, and a sequencer moves queued entries into
the tenant's tree in large batches under the head's lock.

A synchronous append (:meth:`~._audit.AuditLog.append`) holds the tenant's head lock through
its commit, so one tenant's log takes at most one commit's worth of entries at a time. Queued,
the writers' commits run side by side (PostgreSQL flushes concurrent commits together) and the
sequencer's one transaction numbers thousands of entries: the log stays sequenced (only the
sequencer, under the head lock, numbers entries, so it cannot fork) without making writers
wait for one another.

Each hub process runs a sequencer thread: woken by its own enqueues, and sweeping every
``sweep_s`` for entries other processes queued.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from ._audit import AuditLog

__all__ = ["AuditQueue"]

log = logging.getLogger("truthvault.hub")


class AuditQueue:
    """Queues entries for a tenant's audit log and sequences them in the background."""

    def __init__(self, audit: AuditLog, *, sweep_s: float = 0.2) -> None:
        self.audit = audit
        self.database = audit.database
        self.sweep_s = sweep_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def enqueue(self, tenant_id: str, entries: Sequence[bytes]) -> None:
        """Queue canonical entries, durably, in the caller's transaction when there is one."""
        pk = self.database.tenant_pk(tenant_id)
        with self.database.write() as db:
            db.executemany(
                "INSERT INTO audit_pending (tenant_pk, entry) VALUES (?, ?)", [(pk, e) for e in entries]
            )
        self._start()
        self._wake.set()

    def pending(self) -> int:
        with self.database.read() as db:
            return int(db.execute("SELECT count(*) FROM audit_pending").fetchone()[0])

    def flush(self, tenant_id: str) -> int:
        """Move a tenant's queued entries into its tree now (before its head is read)."""
        pk = self.database.tenant_pk(tenant_id)
        with self.database.read() as db:
            if (
                db.execute("SELECT 1 FROM audit_pending WHERE tenant_pk = ? LIMIT 1", (pk,)).fetchone()
                is None
            ):
                return 0
        moved = 0
        while n := self.audit.integrate(pk):
            moved += n
        return moved

    def sequence(self) -> int:
        """Move every queued entry (of every tenant) into its tree now; how many moved."""
        with self.database.read() as db:
            pks = [int(r[0]) for r in db.execute("SELECT DISTINCT tenant_pk FROM audit_pending").fetchall()]
        moved = 0
        for pk in pks:
            while n := self.audit.integrate(pk):
                moved += n
        return moved

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="truthvault-audit-sequencer", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.sweep_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.sequence()
            except Exception:  # the entries stay queued: the next sweep tries again
                log.exception("sequencing queued audit entries failed")

    def close(self) -> None:
        """Stop the sequencer after one last pass (entries still queued stay for the next)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(10)
        try:
            self.sequence()
        except Exception:
            log.exception("sequencing queued audit entries at close failed")
