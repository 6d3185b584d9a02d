"""Sync plumbing for the sync client: the push queue and its acknowledgement, applying pulled
pages, and the checksums compared with the hub's."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec

from ..clock import future_limit
from ..errors import InvalidInput, TruthvaultError
from ..intake import prepare_item, sort_out
from ..merge import Loss, plan_merge
from ..model import (
    Decision,
    PullResponse,
    PushRequest,
    PushResponse,
    Record,
    Refused,
    SyncItem,
    checksum_hex,
    record_digest,
    refuse,
)
from ..truth import Outcome, TruthLevel, record_id
from ._codec import ENTITY_SELECT, NO_SIZE_LIMIT, Current, item_from_row
from ._entities import EVENT_OF_KIND
from ._resync import ResyncMixin

__all__ = ["LOCAL_ONLY_REASON", "ApplyStats", "Overruled", "SyncMixin"]

#: How far ahead of this device's clock a pulled stamp may be. The hub refuses pushes beyond its
#: own skew limit (15 minutes unless its operator chose more); a stamp far beyond that comes
#: from a broken or hostile hub, and taking it in would move this vault's clock there for good.
PULL_CLOCK_SKEW_MS = 24 * 3600 * 1000
LOCAL_ONLY_REASON = "lost here to a version the hub refused, so the hub never keeps it"
_item_decoder = msgspec.json.Decoder(SyncItem)


def _copy(item: SyncItem) -> SyncItem:
    """A pulled item as a version to merge: without the hub's seq (a copy, the page stays as pulled)."""
    return msgspec.structs.replace(item, seq=None, mutation=None, kept=False)


_encoder = msgspec.json.Encoder()


@dataclass(slots=True)
class ApplyStats:
    """What one pulled page did to the vault."""

    applied: int = 0  # pulled versions that became current
    suggestions: int = 0  # new suggestion records kept here
    conflicts: int = 0  # new conflict records kept here
    records: int = 0  # pulled records stored or updated
    new_records: int = 0  # pulled records this vault did not hold
    requeued: int = 0  # versions the hub had lost, queued to be pushed again
    #: pulled items and records this vault would not take in (kept aside, see ``refusals``)
    refused: list[Refused] = field(default_factory=list)
    #: this vault's decisions that gave way to another device's, which reached the hub first
    overruled: list[Overruled] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Overruled:
    """A decision made here on a record that another device decided differently first."""

    record_id: str
    entity_id: str
    mine: str  # this vault's status ...
    my_resolution: str | None  # ... and resolution (keep / restore)
    status: str  # the decision that stands
    resolution: str | None

    def describe(self) -> str:
        """How one line says it: ``record R on E: another device restored it first (you kept it)``."""
        return (
            f"{self.record_id} on {self.entity_id}: another device's decision came first "
            f"({self.resolution or self.status}; yours: {self.my_resolution or self.mine})"
        )


def _pulled(item: SyncItem, where: str, tenant: str, max_clock: str) -> SyncItem:
    """A copy of a pulled version, checked as the hub checks pushed ones (no size limit: the hub
    applied its own when it took the version)."""
    return prepare_item(
        _copy(item),
        where,
        tenant_id=tenant,
        device_id=None,
        max_payload_bytes=NO_SIZE_LIMIT,
        max_clock=max_clock,
    )


def _checked_record(rec: Record, n: int, tenant: str, max_clock: str) -> Record:
    """A pulled record checked as the hub checks pushed items, bound to its item (its id is the
    one its item gives, its kind the one its level gives), with its base dropped when the base is
    not the suggestion's."""
    where = f"records[{n}]"
    item = _pulled(rec.item, f"{where}.item", tenant, max_clock)
    if rec.id != record_id(item.entity_id, item.last_modified_at, item.device_id):
        raise InvalidInput(f"{where}.id: {rec.id!r} is not the id of the version it keeps")
    if (rec.entity_id, rec.entity_type) != (item.entity_id, item.entity_type):
        raise InvalidInput(f"{where}: names another entity than the version it keeps")
    if (rec.kind == "conflict") != (item.truth_level == TruthLevel.USER):
        # a conflict keeps a user's version, a suggestion a lower one: a record that says
        # otherwise would let a restore turn an AI's text into the user's
        raise InvalidInput(f"{where}.kind: a {rec.kind} cannot keep a level-{item.truth_level} version")
    base = None
    if rec.base is not None:
        # a base that does not check out is only a base unknown
        with contextlib.suppress(TruthvaultError):
            base = _pulled(rec.base, f"{where}.base", tenant, max_clock)
        if base is not None and (base.entity_id, base.version, base.last_modified_at) != (
            item.entity_id,
            item.base_version,
            item.base_clock,
        ):
            base = None
    return msgspec.structs.replace(rec, item=item, base=base)


class SyncMixin(ResyncMixin):
    """pending_batch / renumber_pending / pending_count / ack / apply_pull / checksums."""

    def pending_batch(self, limit: int = 1000) -> PushRequest | None:
        """The oldest queued changes (at most ``limit`` items) as a push, or None if none."""
        with self._read() as conn:
            queued: list[tuple[int, SyncItem, str | None]] = []
            for row in conn.execute(
                f"{ENTITY_SELECT} WHERE mutation IS NOT NULL ORDER BY mutation LIMIT ?", (limit,)
            ):
                queued.append((row[16], item_from_row(row), None))
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
            cursor = int(self._meta("cursor") or 0)
            mark = self._history_mark()
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
        with self._tx() as conn:
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
            first = max(above + 1, int(self._meta("next_mutation") or 1))
            for n, (_, table, column, key) in enumerate(queued):
                conn.execute(f"UPDATE {table} SET mutation = ? WHERE {column} = ?", (first + n, key))
            self._set_meta("next_mutation", first + len(queued))

    def pending_count(self) -> int:
        """How many changes wait to be pushed (entity versions, record items, decisions)."""
        with self._read() as conn:
            return int(
                conn.execute(
                    "SELECT (SELECT count(*) FROM entities WHERE mutation IS NOT NULL)"
                    " + (SELECT count(*) FROM records WHERE push_item = 1)"
                    " + (SELECT count(*) FROM records WHERE push_decision = 1 AND push_item = 0)"
                ).fetchone()[0]
            )

    def ack(self, request: PushRequest, response: PushResponse) -> None:
        """The hub stored ``request``: unqueue what was pushed unless it changed since."""
        with self._tx() as conn:
            self._note_history(response.head, response.tag)
            top = max([i.mutation or 0 for i in request.items], default=0)
            if top > (self.acked_mutation or 0):
                self._set_meta("acked_mutation", top)
            # An edit made while the push was in flight has a newer number: it stays queued.
            conn.executemany(
                "UPDATE entities SET hub_known = 1, "
                "mutation = CASE WHEN mutation = ? THEN NULL ELSE mutation END WHERE entity_id = ?",
                [(item.mutation, item.entity_id) for item in request.items],
            )
            # Kept losers queued for the hub are few: only items of their entities can be one.
            sql = "SELECT entity_id FROM records WHERE mutation IS NOT NULL AND push_item = 1"
            queued = {row[0] for row in conn.execute(sql)}
            conn.executemany(
                "UPDATE records SET push_item = 0, hub_known = 1, "
                "mutation = CASE WHEN push_decision = 1 THEN mutation END WHERE id = ? AND push_item = 1",
                [
                    (record_id(item.entity_id, item.last_modified_at, item.device_id),)
                    for item in request.items
                    if item.entity_id in queued
                ],
            )
            conn.executemany(
                "UPDATE records SET push_decision = 0, "
                "mutation = CASE WHEN push_item = 1 THEN mutation END WHERE id = ?",
                [(decision.id,) for decision in request.decisions],
            )

    def apply_pull(self, response: PullResponse, refused: Sequence[Refused] = ()) -> ApplyStats:
        """Merge a pulled page into the vault in one transaction and advance the cursor.

        Every item and record is checked as the hub checks a push; one that fails (or that
        ``refused`` names: what did not even decode) is kept aside in ``refused`` with an event,
        and the rest of the page is applied: one bad item never stops a pull.
        """
        stats = ApplyStats()
        with self._tx() as conn:
            tenant = self._meta_str("tenant_id")
            max_clock = future_limit(PULL_CLOCK_SKEW_MS)
            items, bad = sort_out(
                list(map(_copy, response.items)),
                tenant_id=tenant,
                max_payload_bytes=NO_SIZE_LIMIT,
                max_clock=max_clock,
            )
            aside = [*refused, *(refuse("item", item, exc) for item, exc in bad)]
            records = []
            for n, rec in enumerate(response.records):
                try:
                    records.append(_checked_record(rec, n, tenant, max_clock))
                except TruthvaultError as exc:
                    aside.append(refuse("record", rec.item, exc, rec.id))
            clocks = [item.last_modified_at for item in (*items, *(rec.item for rec in records))]
            if clocks:
                # canonical stamps sort as strings: observing the greatest is observing them all
                self._clock.observe(max(clocks))
            current = self._currents(item.entity_id for item in items)
            now = self._stamp()
            plan = plan_merge({eid: cur.item for eid, cur in current.items()}, items, now)
            self._put_rows(list(plan.entities.values()), True, current)
            for item, outcome, _ in plan.results:
                if outcome is Outcome.APPLIED:
                    stats.applied += 1
                elif outcome is Outcome.DUPLICATE and item.entity_id not in plan.entities:
                    # The hub already holds our queued version exactly: nothing left to push.
                    conn.execute(
                        "UPDATE entities SET mutation = NULL WHERE entity_id = ? AND last_modified_at = ? "
                        "AND device_id = ?",
                        (item.entity_id, item.last_modified_at, item.device_id),
                    )
            ids = _encoder.encode(list(dict.fromkeys(item.entity_id for item in items)))
            conn.execute(
                "UPDATE entities SET hub_known = 1 WHERE entity_id IN (SELECT value FROM json_each(?))",
                (ids,),
            )
            if self._meta("resyncing") in ("1", "2"):
                # an item kept aside is at the hub all the same: a re-sync must not drop it here
                seen = [*(item.entity_id for item in items), *(r.entity_id for r in aside if r.entity_id)]
                conn.execute(
                    "INSERT OR IGNORE INTO resync_seen SELECT value FROM json_each(?)",
                    (_encoder.encode(seen),),
                )
            requeue: list[str] = []
            for loss in plan.losses:
                kept = self._keep_pulled_loss(loss, current.get(loss.record.entity_id), requeue)
                if kept:
                    stats.conflicts += loss.kind == "conflict"
                    stats.suggestions += loss.kind == "suggestion"
                    self.add_event(EVENT_OF_KIND[loss.kind], loss.record.entity_id, record_id=loss.record.id)
            for rec in records:
                stats.records += 1
                stats.new_records += not self._has_record(rec.id)
                overruled = self._upsert_pulled_record(rec)
                if overruled is not None:
                    stats.overruled.append(overruled)
            if requeue:
                stats.requeued = len(requeue)
                first = self._take_mutations(len(requeue))
                conn.executemany(
                    "UPDATE entities SET mutation = ? WHERE entity_id = ? AND mutation IS NULL",
                    [(first + n, eid) for n, eid in enumerate(requeue)],
                )
            for r in aside:
                self._keep_aside("pull", r.kind, r.entity_id, r.record_id, r.reason, r.raw.encode())
            stats.refused.extend(aside)
            self._set_meta("cursor", response.cursor)
            self._note_history(response.cursor, response.tag)
        return stats

    def _keep_pulled_loss(self, loss: Loss, cur: Current | None, requeue: list[str]) -> bool:
        """Keep what lost when a pulled version met this vault's; True when a record was kept.

        Records converge as entities do: this vault keeps only its own versions that lose, and
        the hub decides everything else. Its own unpushed version is kept queued (it reaches
        the hub marked ``kept``); a version the hub will never see (one it refused) stays here.
        A version the hub holds that loses, or a pulled version that loses to this vault's, is
        the hub's to keep: it has done so already, or will when this vault's version reaches it,
        and its feed brings the record. Keeping one here could keep a version no other replica
        keeps (the hub may have a successor of it that this vault has not seen yet).
        """
        if cur is None:
            return False
        here = loss.record.item is cur.item
        if cur.mutation is not None:
            if not here:
                return False  # our unpushed version won: the hub decides when it gets it
            return self._insert_record(loss.record, mutation=cur.mutation, push_item=True)
        if cur.hub_known:
            if not here:
                # The hub sends a version that this one, which the hub had, beats: the hub lost
                # this one (a purged tombstone, a restore). Sending it again puts the winner back
                # there; otherwise the replicas would differ for good.
                requeue.append(cur.item.entity_id)
            return False
        # this vault's version is one the hub never took: nothing of this reaches the hub
        return self._insert_record(loss.record, reason=LOCAL_ONLY_REASON)

    def _has_record(self, rid: str) -> bool:
        return self._conn.execute("SELECT 1 FROM records WHERE id = ?", (rid,)).fetchone() is not None

    def _upsert_pulled_record(self, rec: Record) -> Overruled | None:
        """Store a pulled record, or take the hub's decision on one this vault holds (the first
        decision to reach the hub stands everywhere); the decision of this vault's that gave
        way, if one did."""
        row = self._conn.execute("SELECT status, resolution FROM records WHERE id = ?", (rec.id,)).fetchone()
        if row is None:
            self._insert_record(rec, hub_known=True, base=self._base_for(rec))
            if rec.status == "open":
                self.add_event(EVENT_OF_KIND[rec.kind], rec.entity_id, record_id=rec.id)
            return None
        overruled = None
        if rec.status != "open" and (row[0], row[1]) != (rec.status, rec.resolution):
            if row[0] != "open":
                # Another device's decision came first: what this one wrote for its own (an
                # accepted or restored version) stays, as an edit of its own.
                overruled = Overruled(rec.id, rec.entity_id, row[0], row[1], rec.status, rec.resolution)
                self.add_event(
                    "DECISION_OVERRULED",
                    rec.entity_id,
                    record_id=rec.id,
                    mine=row[1] or row[0],
                    kept=rec.resolution or rec.status,
                )
            self._conn.execute(
                "UPDATE records SET status = ?, decided_at = ?, resolution = ?, push_decision = 0 "
                "WHERE id = ?",
                (rec.status, rec.decided_at, rec.resolution, rec.id),
            )
        self._conn.execute(
            "UPDATE records SET hub_known = 1, push_item = 0, "
            "mutation = CASE WHEN push_decision = 1 THEN mutation END WHERE id = ?",
            (rec.id,),
        )
        if rec.base is not None:
            self._conn.execute(
                "UPDATE records SET base = ?, base_item = ? WHERE id = ? AND base_item IS NULL",
                (bytes(rec.base.payload), _encoder.encode(rec.base), rec.id),
            )
        return overruled

    def _base_for(self, rec: Record) -> SyncItem | None:
        """The version a pulled suggestion was made on: the one it came with, or this vault's
        current version when it is that one (None: unknown here)."""
        item = rec.item
        if rec.kind != "suggestion" or item.base_clock is None:
            return None
        if rec.base is not None:
            return rec.base
        cur = self._current(rec.entity_id)
        if (
            cur is not None
            and not cur.item.deleted
            and (cur.item.version, cur.item.last_modified_at) == (item.base_version, item.base_clock)
        ):
            return cur.item
        return None

    def checksum(self, *, recount: bool = False) -> str:
        """The state checksum over all entities, comparable with the hub's: the running one every
        write keeps, or with ``recount`` one computed from every entity (which also corrects
        the running one)."""
        if recount:
            with self._tx():
                return checksum_hex(self._recount())
        return checksum_hex(int(self._meta_str("checksum") or 0))

    def records_checksum(self) -> str:
        """The checksum of the records this vault shares with the hub (their ids and statuses),
        comparable with the hub's ``records_checksum``."""
        total = 0
        with self._read() as conn:
            for rid, status, resolution in conn.execute(
                "SELECT id, status, resolution FROM records WHERE hub_known = 1"
            ):
                total += record_digest(rid, status, resolution)
        return checksum_hex(total)
