"""Items kept aside: those the hub refused when this vault pushed them (out of the push queue,
so one bad item never jams it) and those of pulled pages this vault would not take in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from ..errors import ConflictState, NotFound
from ..model import SyncItem
from ..truth import record_id
from ._db import VaultDB

__all__ = ["Refusal", "Refusals", "keep_aside"]

_item_decoder = msgspec.json.Decoder(SyncItem)
_encoder = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Refusal:
    """An item kept aside: one the hub refused when this vault pushed it (``push``), or one of
    a pulled page this vault would not take in (``pull``)."""

    id: int
    direction: str
    kind: str  # item | record
    entity_id: str | None
    record_id: str | None
    reason: str
    at: str
    item: str  # its JSON as it was sent or received (cut at 4 KiB when pulled)


def keep_aside(
    db: VaultDB,
    direction: str,
    kind: str,
    entity_id: str | None,
    record_id: str | None,
    reason: str,
    raw: bytes,
    mutation: int | None = None,
) -> None:
    """Note an item kept aside (inside a transaction), with its event."""
    db.conn.execute(
        "INSERT INTO refused (direction, kind, entity_id, record_id, reason, at, item, mutation) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (direction, kind, entity_id, record_id, reason, db.stamp(), raw, mutation),
    )
    event = {"pull": "PULL_REFUSED", "parked": "ITEM_PARKED"}.get(direction, "PUSH_REFUSED")
    db.add_event(event, entity_id, kind=kind, record_id=record_id, reason=reason)


class Refusals:
    """What the hub refused of one vault's pushes, and what it refused of pulls."""

    def __init__(self, db: VaultDB) -> None:
        self._db = db

    def refuse_pushed(self, item: SyncItem, reason: str) -> None:
        """The hub refused ``item`` of a push: take it out of the queue and keep it aside.

        The version stays in the vault as it is; ``sync rejected`` lists it and ``retry``
        queues it again (after the hub's limits changed, say). An edit made since stays queued.
        """
        with self._db.tx() as conn:
            if item.kept:
                rid = record_id(item.entity_id, item.last_modified_at, item.device_id)
                # a decision on it cannot travel either (the hub never has the record): it stays
                # here, and nothing waits to be pushed that never can be
                conn.execute(
                    "UPDATE records SET push_item = 0, push_decision = 0, mutation = NULL "
                    "WHERE id = ? AND mutation = ?",
                    (rid, item.mutation),
                )
                kind, rec_id = "record", rid
            else:
                # The hub does not hold this version: when another one of the entity arrives and
                # wins, this one is kept here as a record rather than dropped (see merge.fate).
                conn.execute(
                    "UPDATE entities SET mutation = NULL, hub_known = 0 WHERE entity_id = ? AND mutation = ?",
                    (item.entity_id, item.mutation),
                )
                kind, rec_id = "item", None
            bare = msgspec.structs.replace(item, mutation=None, kept=False)
            keep_aside(
                self._db, "push", kind, item.entity_id, rec_id, reason, _encoder.encode(bare), item.mutation
            )

    def find(self, direction: str | None = None) -> list[Refusal]:
        """What the hub refused of this vault's pushes and what this vault refused of pulls,
        newest first."""
        sql = "SELECT id, direction, kind, entity_id, record_id, reason, at, item FROM refused"
        args: list[Any] = []
        if direction is not None:
            sql += " WHERE direction = ?"
            args.append(direction)
        else:
            sql += " WHERE direction IN ('push', 'pull')"  # parked items are listed apart
        with self._db.read():
            rows = self._db.named(sql + " ORDER BY id DESC", args)
        return [
            Refusal(
                r["id"],
                r["direction"],
                r["kind"],
                r["entity_id"],
                r["record_id"],
                r["reason"],
                r["at"],
                bytes(r["item"]).decode(errors="replace"),
            )
            for r in rows
        ]

    def retry(self, refusal_id: int) -> bool:
        """Queue a version the hub refused again (True), or say it changed since (False: the
        newer version is queued or pushed already); either way the refusal is forgotten."""
        with self._db.tx() as conn:
            row = conn.execute(
                "SELECT direction, kind, entity_id, record_id, item FROM refused WHERE id = ?", (refusal_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no refusal {refusal_id}", hint="list them with 'truthvault sync rejected'")
            direction, kind, entity_id, rid, blob = row
            if direction != "push":
                raise ConflictState(
                    f"refusal {refusal_id} is of a pulled item, which only the hub can send again",
                    hint="'truthvault sync resync' pulls everything again; 'sync rejected forget' drops the note",
                )
            item = _item_decoder.decode(blob)
            queued = False
            if kind == "record":
                cur = conn.execute(
                    "UPDATE records SET push_item = 1, mutation = coalesce(mutation, ?) "
                    "WHERE id = ? AND push_item = 0 AND hub_known = 0",
                    (self._db.take_mutations(), rid),
                )
                queued = cur.rowcount > 0
            else:
                cur = conn.execute(
                    "UPDATE entities SET mutation = ? WHERE entity_id = ? AND mutation IS NULL "
                    "AND last_modified_at = ? AND device_id = ?",
                    (self._db.take_mutations(), entity_id, item.last_modified_at, item.device_id),
                )
                if not cur.rowcount:
                    # another version won here since: the refused one was kept as a record, which
                    # goes to the hub as a kept loser
                    cur = conn.execute(
                        "UPDATE records SET push_item = 1, mutation = ?, reason = NULL "
                        "WHERE id = ? AND push_item = 0 AND hub_known = 0",
                        (
                            self._db.take_mutations(),
                            record_id(item.entity_id, item.last_modified_at, item.device_id),
                        ),
                    )
                queued = cur.rowcount > 0
            conn.execute("DELETE FROM refused WHERE id = ?", (refusal_id,))
            return queued

    def forget(self, refusal_id: int) -> None:
        """Drop the note of a refusal (what the vault holds is not touched)."""
        with self._db.tx() as conn:
            if conn.execute("DELETE FROM refused WHERE id = ?", (refusal_id,)).rowcount == 0:
                raise NotFound(f"no refusal {refusal_id}", hint="list them with 'truthvault sync rejected'")
