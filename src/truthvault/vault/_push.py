"""The push queue: the oldest queued changes as a push, their acknowledgement, and the checksums
compared with the hub's."""

from __future__ import annotations

import msgspec

from ..model import Decision, PushRequest, PushResponse, SyncItem, checksum_hex, record_digest
from ..truth import record_id
from ._codec import ENTITY_SELECT, current_from_row
from ._db import VaultDB

__all__ = ["PushQueue"]

_item_decoder = msgspec.json.Decoder(SyncItem)


class PushQueue:
    """What one vault has queued for its hub, and what the hub acknowledged."""

    def __init__(self, db: VaultDB) -> None:
        self._db = db

    def pending_batch(self, limit: int = 1000) -> PushRequest | None:
        """The oldest queued changes (at most ``limit`` items) as a push, or None if none."""
        with self._db.read() as conn:
            queued: list[tuple[int, SyncItem, str | None]] = []
            sql = f"{ENTITY_SELECT} WHERE mutation IS NOT NULL ORDER BY mutation LIMIT ?"
            for row in conn.execute(sql, (limit,)):
                cur = current_from_row(row)
                queued.append((cur.mutation or 0, cur.item, None))
            base_of: dict[str, bytes] = {}
            for rid, blob, mutation, base in conn.execute(
                "SELECT id, item, mutation, base_item FROM records WHERE push_item = 1 ORDER BY mutation LIMIT ?",
                (limit,),
            ):
                # A record's item lost here: the hub keeps it as a record too (see SyncItem.kept).
                item = _item_decoder.decode(blob)
                item.kept = True
                queued.append((mutation, item, rid))
                if base is not None:
                    base_of[rid] = base
            queued.sort(key=lambda q: q[0])
            del queued[limit:]
            sent_records = {rid for _, _, rid in queued if rid is not None}
            # what the suggestions sent were made on, so every device can accept only what they changed
            bases = list({base_of[rid]: None for rid in sent_records if rid in base_of})
            decisions = [
                Decision(id=rid, status=status, at=at, resolution=resolution)
                for rid, status, at, resolution, hub_known in conn.execute(
                    "SELECT id, status, decided_at, resolution, hub_known FROM records "
                    "WHERE push_decision = 1 ORDER BY mutation"
                )
                # A decision on a record the hub has not received yet waits for its item.
                if hub_known or rid in sent_records
            ]
            cursor = int(self._db.meta("cursor") or 0)
            mark = self._db.history_mark()
        if not queued and not decisions:
            return None
        items = []
        for mutation, item, _ in queued:
            item.mutation = mutation
            items.append(item)
        return PushRequest(
            items=items,
            decisions=decisions,
            cursor=cursor,
            tag=None if mark is None else mark[1],
            tag_seq=None if mark is None else mark[0],
            bases=[_item_decoder.decode(blob) for blob in bases],
        )

    def renumber_pending(self, above: int) -> None:
        """Give every queued change a new number above ``above``, in the order they had.

        For a vault whose numbers fell behind what the hub has seen from this device (a
        restored copy of the vault file, or a new vault given an old device's token): the hub
        would take those numbers for changes it already applied and drop them.
        """
        with self._db.tx() as conn:
            queued = sorted(
                [
                    (m, "entities", "entity_id", key)
                    for m, key in conn.execute(
                        "SELECT mutation, entity_id FROM entities WHERE mutation IS NOT NULL"
                    )
                ]
                + [
                    (m, "records", "id", key)
                    for m, key in conn.execute("SELECT mutation, id FROM records WHERE mutation IS NOT NULL")
                ]
            )
            first = max(above + 1, int(self._db.meta("next_mutation") or 1))
            for n, (_, table, column, key) in enumerate(queued):
                conn.execute(f"UPDATE {table} SET mutation = ? WHERE {column} = ?", (first + n, key))
            self._db.set_meta("next_mutation", first + len(queued))

    def pending_count(self) -> int:
        """How many changes wait to be pushed (entity versions, record items, decisions)."""
        with self._db.read() as conn:
            return int(
                conn.execute(
                    "SELECT (SELECT count(*) FROM entities WHERE mutation IS NOT NULL)"
                    " + (SELECT count(*) FROM records WHERE push_item = 1)"
                    " + (SELECT count(*) FROM records WHERE push_decision = 1 AND push_item = 0)"
                ).fetchone()[0]
            )

    def ack(self, request: PushRequest, response: PushResponse) -> None:
        """The hub stored ``request``: unqueue what was pushed unless it changed since."""
        with self._db.tx() as conn:
            self._db.note_history(response.head, response.tag)
            top = max([i.mutation or 0 for i in request.items], default=0)
            acked = self._db.meta_str("acked_mutation")
            if top > int(acked or 0):
                self._db.set_meta("acked_mutation", top)
            # What the hub refused is kept aside by the syncer (Replica.refuse_pushed), not acknowledged.
            refused = {(r.entity_id, r.mutation) for r in response.results if r.outcome == "refused"}
            taken = [i for i in request.items if (i.entity_id, i.mutation) not in refused]
            # An edit made while the push was in flight has a newer number: it stays queued.
            conn.executemany(
                "UPDATE entities SET hub_known = 1, "
                "mutation = CASE WHEN mutation = ? THEN NULL ELSE mutation END WHERE entity_id = ?",
                [(item.mutation, item.entity_id) for item in taken],
            )
            # Kept losers queued for the hub are few: only items of their entities can be one.
            sql = "SELECT entity_id FROM records WHERE mutation IS NOT NULL AND push_item = 1"
            queued = {row[0] for row in conn.execute(sql)}
            conn.executemany(
                "UPDATE records SET push_item = 0, hub_known = 1, "
                "mutation = CASE WHEN push_decision = 1 THEN mutation END WHERE id = ? AND push_item = 1",
                [
                    (record_id(item.entity_id, item.last_modified_at, item.device_id),)
                    for item in taken
                    if item.entity_id in queued
                ],
            )
            conn.executemany(
                "UPDATE records SET push_decision = 0, "
                "mutation = CASE WHEN push_item = 1 THEN mutation END WHERE id = ?",
                [(decision.id,) for decision in request.decisions],
            )

    def checksum(self, *, recount: bool = False) -> str:
        """The state checksum over all entities, comparable with the hub's: the running one every
        write keeps, or with ``recount`` one computed from every entity (which also corrects
        the running one)."""
        if recount:
            with self._db.tx():
                return checksum_hex(self._db.recount())
        return checksum_hex(int(self._db.meta_str("checksum") or 0))

    def records_checksum(self) -> str:
        """The checksum of the records this vault shares with the hub (their ids and statuses),
        comparable with the hub's ``records_checksum``."""
        total = 0
        with self._db.read() as conn:
            for rid, status, resolution in conn.execute(
                "SELECT id, status, resolution FROM records WHERE hub_known = 1"
            ):
                total += record_digest(rid, status, resolution)
        return checksum_hex(total)
