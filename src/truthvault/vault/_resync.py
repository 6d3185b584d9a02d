"""Re-sync from scratch: pull the hub's whole state again and drop what it purged, or, after a
hub reset, send it what it lost."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from ..errors import ConflictState
from ..model import Record
from ..truth import record_id
from . import _search
from ._codec import ENTITY_SELECT, current_from_row
from ._refusals import RefusalsMixin

__all__ = ["RESYNC_REASON", "ResyncMixin"]

RESYNC_REASON = "deleted on the hub while this device was offline"


class ResyncMixin(RefusalsMixin):
    """begin_resync / finish_resync."""

    def begin_resync(self, *, hub_reset: bool = False) -> None:
        """Start a full re-pull: cursor 0; every entity id pulled from now on is noted.

        ``hub_reset``: the hub lost history (restored from a backup), so at the end what it
        lacks is sent to it again rather than dropped here.
        """
        with self._tx() as conn:
            conn.execute("DELETE FROM resync_seen")
            self._set_meta("resyncing", 2 if hub_reset else 1)
            self._set_meta("cursor", 0)
            self._forget_history()

    def finish_resync(self, seen_ids: Iterable[str] = ()) -> int:
        """End a full re-pull: drop what the hub had and no longer has; return how many.

        An entity the hub knew that is absent from its full snapshot was deleted and
        purged there. It is dropped here so it cannot come back; an unpushed local change
        to it is kept as an open conflict record (never pushed) so nothing is lost. After a
        hub reset, such entities (and every record) are queued to be sent again instead.
        """
        with self._tx() as conn:
            mode = self._meta("resyncing")
            if mode not in ("1", "2"):
                raise ConflictState("no re-sync in progress", hint="call begin_resync() first")
            conn.executemany("INSERT OR IGNORE INTO resync_seen VALUES (?)", ((i,) for i in seen_ids))
            if mode == "2":
                return self._resend_what_the_hub_lost(conn)
            doomed = [
                current_from_row(row)
                for row in conn.execute(
                    f"{ENTITY_SELECT} WHERE hub_known = 1 AND entity_id NOT IN (SELECT entity_id FROM resync_seen)"
                ).fetchall()
            ]
            now = self._stamp()
            for cur in doomed:
                item = cur.item
                if cur.mutation is not None and not item.deleted:
                    rid = record_id(item.entity_id, item.last_modified_at, item.device_id)
                    record = Record(
                        kind="conflict",
                        id=rid,
                        entity_id=item.entity_id,
                        entity_type=item.entity_type,
                        status="open",
                        item=item,
                        created_at=now,
                    )
                    if self._insert_record(record, reason=RESYNC_REASON):
                        self.add_event(
                            "CONFLICT_DETECTED", item.entity_id, record_id=rid, reason=RESYNC_REASON
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
                self._count([], [cur.item])
            conn.execute("DELETE FROM resync_seen")
            self._set_meta("resyncing", 0)
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
        first = self._take_mutations(len(lost)) if lost else 0
        conn.executemany(
            "UPDATE entities SET mutation = ? WHERE entity_id = ?",
            [(first + n, eid) for n, eid in enumerate(lost)],
        )
        # Records the hub has are kept once there (by id); a decision it has taken stands.
        shared = [row[0] for row in conn.execute("SELECT id FROM records WHERE hub_known = 1 ORDER BY rowid")]
        first = self._take_mutations(len(shared)) if shared else 0
        conn.executemany(
            "UPDATE records SET hub_known = 0, push_item = 1, push_decision = (status != 'open'), "
            "mutation = ? WHERE id = ?",
            [(first + n, rid) for n, rid in enumerate(shared)],
        )
        conn.execute("DELETE FROM resync_seen")
        self._set_meta("resyncing", 0)
        return len(lost)
