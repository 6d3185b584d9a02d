"""Re-sync from scratch: pull the hub's whole state again and drop what it purged, or, after a
hub reset, send it what it lost."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from enum import StrEnum

from ..errors import ConflictState
from ..merge import EVENT_OF_KIND, loss_record
from . import _search
from ._codec import ENTITY_SELECT, current_from_row
from ._db import VaultDB

__all__ = ["RESYNC_REASON", "Resync", "ResyncState"]

RESYNC_REASON = "deleted on the hub while this device was offline"


class ResyncState(StrEnum):
    """Whether a full re-pull is under way, and what ends it (stored in the meta table as the
    digits vaults have always stored)."""

    #: no re-sync under way
    NONE = "0"
    #: pulling everything again; at the end, drop what the hub purged
    FULL = "1"
    #: the hub lost history (restored from a backup): at the end, send it what it lacks
    HUB_RESET = "2"

    @classmethod
    def of(cls, db: VaultDB) -> ResyncState:
        """The state stored in ``db`` (an unknown value reads as none)."""
        try:
            return cls(db.meta("resyncing") or "0")
        except ValueError:
            return cls.NONE

    def store(self, db: VaultDB) -> None:
        """Keep this state in ``db`` (inside a transaction)."""
        db.set_meta("resyncing", self.value)


class Resync:
    """Re-sync from scratch for one vault: begin, note what is pulled, finish."""

    def __init__(self, db: VaultDB) -> None:
        self._db = db

    def begin(self, *, hub_reset: bool = False) -> None:
        """Start a full re-pull: cursor 0; every entity id pulled from now on is noted.

        ``hub_reset``: the hub lost history (restored from a backup), so at the end what it
        lacks is sent to it again rather than dropped here.
        """
        with self._db.tx() as conn:
            conn.execute("DELETE FROM resync_seen")
            (ResyncState.HUB_RESET if hub_reset else ResyncState.FULL).store(self._db)
            self._db.set_meta("cursor", 0)
            self._db.forget_history()

    def finish(self, seen_ids: Iterable[str] = ()) -> int:
        """End a full re-pull: drop what the hub had and no longer has; return how many.

        An entity the hub knew that is absent from its full snapshot was deleted and
        purged there. It is dropped here so it cannot come back; an unpushed local change
        to it is kept as an open conflict record (never pushed) so nothing is lost. After a
        hub reset, such entities (and every record) are queued to be sent again instead.
        """
        with self._db.tx() as conn:
            mode = ResyncState.of(self._db)
            if mode is ResyncState.NONE:
                raise ConflictState("no re-sync in progress", hint="call begin_resync() first")
            conn.executemany("INSERT OR IGNORE INTO resync_seen VALUES (?)", ((i,) for i in seen_ids))
            if mode is ResyncState.HUB_RESET:
                return self._resend_what_the_hub_lost(conn)
            self._db.catch_up_index()  # rows dropped below must be in the index to leave it
            doomed = [
                current_from_row(row)
                for row in conn.execute(
                    f"{ENTITY_SELECT} WHERE hub_known = 1 AND entity_id NOT IN (SELECT entity_id FROM resync_seen)"
                ).fetchall()
            ]
            now = self._db.stamp()
            for cur in doomed:
                item = cur.item
                if cur.mutation is not None and not item.deleted:
                    record = loss_record("conflict", item, now)
                    if self._db.insert_record(record, reason=RESYNC_REASON):
                        self._db.add_event(
                            EVENT_OF_KIND["conflict"],
                            item.entity_id,
                            record_id=record.id,
                            reason=RESYNC_REASON,
                        )
                # Queued record items would recreate the entity at the hub: keep them local.
                conn.execute(
                    "UPDATE records SET push_item = 0, push_decision = push_decision * hub_known, "
                    "reason = coalesce(reason, ?) WHERE entity_id = ? AND push_item = 1",
                    (RESYNC_REASON, item.entity_id),
                )
                conn.execute(
                    "UPDATE records SET mutation = NULL WHERE entity_id = ? AND push_item = 0 AND push_decision = 0",
                    (item.entity_id,),
                )
                _search.unindex(conn, cur.rowid)
                conn.execute("DELETE FROM entities WHERE rowid = ?", (cur.rowid,))
                self._db.count([], [cur.item])
            conn.execute("DELETE FROM resync_seen")
            ResyncState.NONE.store(self._db)
        return len(doomed)

    def _resend_what_the_hub_lost(self, conn: sqlite3.Connection) -> int:
        """Queue every entity and record to be pushed again; return how many entities.

        The hub may lack an entity, or hold an older version of it, and this vault does not
        know which: it sends everything, and what the hub holds already comes back as a
        duplicate version, which writes nothing.
        """
        lost = [
            row[0]
            for row in conn.execute("SELECT entity_id FROM entities WHERE mutation IS NULL ORDER BY rowid")
        ]
        first = self._db.take_mutations(len(lost)) if lost else 0
        conn.executemany(
            "UPDATE entities SET mutation = ? WHERE entity_id = ?",
            [(first + n, eid) for n, eid in enumerate(lost)],
        )
        # Records the hub has are kept once there (by id); a decision it has taken stands.
        shared = [row[0] for row in conn.execute("SELECT id FROM records WHERE hub_known = 1 ORDER BY rowid")]
        first = self._db.take_mutations(len(shared)) if shared else 0
        conn.executemany(
            "UPDATE records SET hub_known = 0, push_item = 1, push_decision = (status != 'open'), "
            "mutation = ? WHERE id = ?",
            [(first + n, rid) for n, rid in enumerate(shared)],
        )
        conn.execute("DELETE FROM resync_seen")
        ResyncState.NONE.store(self._db)
        return len(lost)
