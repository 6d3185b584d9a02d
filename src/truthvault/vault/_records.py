"""Kept losers (suggestions and conflict records) and the user's decisions on them."""

from __future__ import annotations

from typing import Any

import msgspec

from ..errors import ConflictState, InvalidInput, NotFound
from ..model import SyncItem
from ._codec import RECORD_COLUMNS, VaultRecord, decode_record, encode_payload, payload_of, step
from ._db import VaultDB
from ._writes import TOMBSTONE, Writer, require_user

__all__ = ["Records"]


class Records:
    """The kept records of one vault, and the user's decisions on them."""

    def __init__(self, db: VaultDB, writer: Writer) -> None:
        self._db = db
        self._writer = writer

    def find(
        self, kind: str | None = None, status: str | None = "open", entity_id: str | None = None
    ) -> list[VaultRecord]:
        """Kept records, newest first; ``status=None`` means any status."""
        where, args = [], []
        for column, value in (("kind", kind), ("status", status), ("entity_id", entity_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = f"SELECT {RECORD_COLUMNS} FROM records"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._db.read():
            rows = self._db.named(sql + " ORDER BY created_at DESC, id", args)
        return [decode_record(r) for r in rows]

    def get(self, record_id: str) -> VaultRecord:
        """One record by id; NotFound if there is none."""
        with self._db.read():
            return self._record(record_id)[0]

    def _record(self, record_id: str) -> tuple[VaultRecord, bool]:
        """A record and whether the hub has or will get it (so a decision must travel)."""
        rows = self._db.named(
            f"SELECT {RECORD_COLUMNS}, hub_known OR push_item AS shared FROM records WHERE id = ?",
            (record_id,),
        )
        if not rows:
            raise NotFound(f"no suggestion or conflict record {record_id!r}")
        return decode_record(rows[0]), bool(rows[0]["shared"])

    def _open(self, record_id: str, kind: str) -> tuple[VaultRecord, bool]:
        rec, shared = self._record(record_id)
        if rec.kind != kind:
            raise ConflictState(f"record {record_id!r} is a {rec.kind}, not a {kind}")
        if rec.status != "open":
            raise ConflictState(f"{kind} {record_id!r} is already {rec.status}")
        return rec, shared

    def _decide(self, record_id: str, status: str, resolution: str | None, shared: bool) -> None:
        """Close a record; queue the decision for the hub when the hub knows the record."""
        at = self._db.stamp()
        if shared:
            self._db.conn.execute(
                # A queued item keeps its number, so the push order stays the order of writes.
                "UPDATE records SET status = ?, decided_at = ?, resolution = ?, push_decision = 1, "
                "mutation = CASE WHEN push_item = 1 THEN mutation ELSE ? END WHERE id = ?",
                (status, at, resolution, self._db.take_mutations(), record_id),
            )
        else:
            self._db.conn.execute(
                "UPDATE records SET status = ?, decided_at = ?, resolution = ? WHERE id = ?",
                (status, at, resolution, record_id),
            )

    def accept(self, record_id: str, *, source: str, force: bool = False) -> SyncItem:
        """Merge an open suggestion into its entity as user truth; returns the new version.

        A suggestion made on the current version is taken whole. When the entity changed
        since, only what the suggestion changed is applied on top of the changes, if the
        vault knows what it was made on; if it does not, nothing is accepted (ConflictState)
        unless ``force``, which lays the suggestion's fields over the current ones.
        """
        require_user(source)
        with self._db.tx():
            rec, shared = self._open(record_id, "suggestion")
            sug = rec.item
            cur = self._db.current(rec.entity_id)
            if sug.deleted:
                content = TOMBSTONE
            elif cur is None or cur.item.deleted:
                content = bytes(sug.payload)
            else:
                content = encode_payload(self._accepted_payload(rec, cur.item, force))
            result = self._writer.write(
                cur,
                entity_type=rec.entity_type,
                entity_id=rec.entity_id,
                payload=content,
                source=source,
                accepted=True,
                deleted=sug.deleted,
                steps=[step(sug, record_id)],
                upgrade={
                    "record_id": record_id,
                    "from_level": sug.truth_level,
                    "from_source": sug.origin_source,
                },
            )
            self._decide(record_id, "accepted", None, shared)
            return result.item

    def _accepted_payload(self, rec: VaultRecord, current: SyncItem, force: bool) -> dict[str, Any]:
        """The content accepting suggestion ``rec`` over the live ``current`` version gives."""
        sug = rec.item
        proposed = payload_of(sug)
        if sug.base_version == current.version and sug.base_clock == current.last_modified_at:
            return proposed  # made on the current version
        row = self._db.conn.execute("SELECT base FROM records WHERE id = ?", (rec.id,)).fetchone()
        if row is not None and row[0] is not None:
            # A three-way merge: what the suggestion changed of its base, over the current
            # content (which is the base itself when nothing changed since).
            base: dict[str, Any] = msgspec.json.decode(row[0])
            merged = payload_of(current)
            for key in proposed.keys() | base.keys():
                if key not in proposed:
                    if key in base:
                        merged.pop(key, None)
                elif key not in base or proposed[key] != base[key]:
                    merged[key] = proposed[key]
            return merged
        if not force:
            raise ConflictState(
                f"{rec.entity_type} {rec.entity_id} changed since suggestion {rec.id} was made, and "
                "this vault does not know what the suggestion was made on",
                hint=f"compare 'truthvault show {rec.entity_id}' with 'truthvault suggestions --json'; "
                "'accept --force' lays the suggestion's fields over the current ones",
            )
        return {**payload_of(current), **proposed}

    def reject(self, record_id: str, *, source: str) -> VaultRecord:
        """Reject an open suggestion; it stays retrievable with status ``rejected``. Like
        accepting, only the user (level 1) decides."""
        require_user(source)
        with self._db.tx():
            _, shared = self._open(record_id, "suggestion")
            self._decide(record_id, "rejected", None, shared)
            return self._record(record_id)[0]

    def resolve_conflict(self, record_id: str, resolution: str, *, source: str) -> VaultRecord:
        """Close a conflict record: ``keep`` the current version or ``restore`` the kept one."""
        if resolution not in ("keep", "restore"):
            raise InvalidInput(f"resolution must be 'keep' or 'restore', not {resolution!r}")
        require_user(source)
        with self._db.tx():
            rec, shared = self._open(record_id, "conflict")
            if resolution == "restore":
                loser = rec.item
                self._writer.write(
                    self._db.current(rec.entity_id),
                    entity_type=rec.entity_type,
                    entity_id=rec.entity_id,
                    payload=bytes(loser.payload),
                    source=source,
                    deleted=loser.deleted,
                    steps=[step(loser, record_id)],
                )
            self._decide(record_id, "resolved", resolution, shared)
            return self._record(record_id)[0]
