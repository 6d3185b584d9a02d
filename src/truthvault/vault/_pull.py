"""Applying a pulled page: its versions merged through the one applier, its records stored or
their decisions taken, what this vault would not take kept aside, and the cursor moved."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec

from ..clock import future_limit
from ..errors import InvalidInput, TruthvaultError
from ..intake import prepare_item, sort_out
from ..merge import EVENT_OF_KIND, MergePlan, Place, plan_merge
from ..model import PullResponse, Record, Refused, SyncItem, refuse
from ..truth import Outcome, TruthLevel, record_id, resolve
from ._apply import Applier
from ._codec import NO_SIZE_LIMIT, Current
from ._db import VaultDB
from ._refusals import keep_aside
from ._resync import ResyncState

__all__ = [
    "LOCAL_ONLY_REASON",
    "PULL_CLOCK_SKEW_MS",
    "ApplyStats",
    "CheckedPage",
    "Overruled",
    "Puller",
    "check_page",
]

#: How far ahead of this device's clock a pulled stamp may be. The hub refuses pushes beyond its
#: own skew limit (15 minutes unless its operator chose more); a stamp far beyond that comes
#: from a broken or hostile hub, and taking it in would move this vault's clock there for good.
PULL_CLOCK_SKEW_MS = 24 * 3600 * 1000
LOCAL_ONLY_REASON = "lost here to a version the hub refused, so the hub never keeps it"
_encoder = msgspec.json.Encoder()


def _copy(item: SyncItem) -> SyncItem:
    """A pulled item as a version to merge: without the hub's seq (a copy, the page stays as pulled)."""
    return msgspec.structs.replace(item, seq=None, mutation=None, kept=False)


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


@dataclass(frozen=True, slots=True)
class CheckedPage:
    """A pulled page's items and records that check out, and what of it to keep aside."""

    items: list[SyncItem]
    records: list[Record]
    aside: list[Refused]


def check_page(response: PullResponse, refused: Sequence[Refused], tenant: str) -> CheckedPage:
    """Check a pulled page's items and records as the hub checks a push, for a vault of
    ``tenant``; ``refused`` (what did not even decode) goes aside with what fails. It reads
    nothing of the vault, so a page can be checked in the thread that fetched it."""
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
    return CheckedPage(items, records, aside)


def _decided(cur: Current | None, item: SyncItem) -> bool:
    """Whether a late pulled version loses to a current one the hub sent (or took) since."""
    return (
        cur is not None
        and cur.hub_known
        and cur.mutation is None
        and resolve(cur.item, item).outcome is not Outcome.APPLIED
    )


class Puller:
    """Applies pulled pages to one vault."""

    def __init__(self, db: VaultDB, applier: Applier) -> None:
        self._db = db
        self._applier = applier

    def apply(
        self,
        response: PullResponse,
        refused: Sequence[Refused] = (),
        checked: CheckedPage | None = None,
        *,
        late: bool = False,
    ) -> ApplyStats:
        """Merge a pulled page into the vault in one transaction and advance the cursor.

        Every item and record is checked as the hub checks a push (``checked``: the page's
        :func:`check_page`, done already); one that fails (or that ``refused`` names: what did
        not even decode) is kept aside in ``refused`` with an event, and the rest of the page
        is applied: one bad item never stops a pull.

        ``late``: changes pulled before and applied only now (a payload that opens at last),
        after pages that came after them. The cursor stays, and a version that loses to one the
        hub sent since is left: the hub decided it when it came (superseded, or kept as a record
        its feed brings), so it is neither kept here nor a sign that the hub lost the winner.
        """
        stats = ApplyStats()
        db = self._db
        with db.tx() as conn:
            if checked is None:
                checked = check_page(response, refused, db.meta_str("tenant_id"))
            items, records, aside = checked.items, checked.records, checked.aside
            clocks = [item.last_modified_at for item in (*items, *(rec.item for rec in records))]
            if clocks:
                # canonical stamps sort as strings: observing the greatest is observing them all
                db.clock.observe(max(clocks))
            current = db.currents(item.entity_id for item in items)
            if late:
                items = [item for item in items if not _decided(current.get(item.entity_id), item)]
            plan = plan_merge({eid: cur.item for eid, cur in current.items()}, items, db.stamp())
            kept = self._applier.apply(plan, current, Place.PULLED, local_reason=LOCAL_ONLY_REASON)
            stats.suggestions, stats.conflicts, stats.requeued = (
                kept.suggestions,
                kept.conflicts,
                kept.requeued,
            )
            stats.applied = self._settle(plan, items)
            if ResyncState.of(db) is not ResyncState.NONE:
                # an item kept aside is at the hub all the same: a re-sync must not drop it here
                seen = [*(item.entity_id for item in items), *(r.entity_id for r in aside if r.entity_id)]
                conn.execute(
                    "INSERT OR IGNORE INTO resync_seen SELECT value FROM json_each(?)",
                    (_encoder.encode(seen),),
                )
            for rec in records:
                stats.records += 1
                stats.new_records += not self._has_record(rec.id)
                overruled = self._upsert_pulled_record(rec)
                if overruled is not None:
                    stats.overruled.append(overruled)
            for r in aside:
                keep_aside(db, "pull", r.kind, r.entity_id, r.record_id, r.reason, r.raw.encode())
            stats.refused.extend(aside)
            if not late:
                db.set_meta("cursor", response.cursor)
                db.note_history(response.cursor, response.tag)
        return stats

    def _settle(self, plan: MergePlan, items: list[SyncItem]) -> int:
        """Mark the page's entities as held by the hub and unqueue this vault's versions the
        hub holds exactly; return how many pulled versions became current."""
        conn, applied = self._db.conn, 0
        for item, outcome, _ in plan.results:
            if outcome is Outcome.APPLIED:
                applied += 1
            elif outcome is Outcome.DUPLICATE and item.entity_id not in plan.entities:
                # The hub already holds our queued version exactly: nothing left to push.
                conn.execute(
                    "UPDATE entities SET mutation = NULL WHERE entity_id = ? AND last_modified_at = ? "
                    "AND device_id = ?",
                    (item.entity_id, item.last_modified_at, item.device_id),
                )
        # the rows the plan wrote say so already
        known = [item.entity_id for item in items if item.entity_id not in plan.entities]
        if known:
            conn.execute(
                "UPDATE entities SET hub_known = 1 WHERE entity_id IN (SELECT value FROM json_each(?))",
                (_encoder.encode(list(dict.fromkeys(known))),),
            )
        return applied

    def _has_record(self, rid: str) -> bool:
        return self._db.conn.execute("SELECT 1 FROM records WHERE id = ?", (rid,)).fetchone() is not None

    def _upsert_pulled_record(self, rec: Record) -> Overruled | None:
        """Store a pulled record, or take the hub's decision on one this vault holds (the first
        decision to reach the hub stands everywhere); the decision of this vault's that gave
        way, if one did."""
        rows = self._db.named("SELECT status, resolution FROM records WHERE id = ?", (rec.id,))
        if not rows:
            self._db.insert_record(rec, hub_known=True, base=self._base_for(rec))
            if rec.status == "open":
                self._db.add_event(EVENT_OF_KIND[rec.kind], rec.entity_id, record_id=rec.id)
            return None
        overruled = None
        mine, my_resolution = rows[0]["status"], rows[0]["resolution"]
        if rec.status != "open" and (mine, my_resolution) != (rec.status, rec.resolution):
            if mine != "open":
                # Another device's decision came first: what this one wrote for its own (an
                # accepted or restored version) stays, as an edit of its own.
                overruled = Overruled(rec.id, rec.entity_id, mine, my_resolution, rec.status, rec.resolution)
                self._db.add_event(
                    "DECISION_OVERRULED",
                    rec.entity_id,
                    record_id=rec.id,
                    mine=my_resolution or mine,
                    kept=rec.resolution or rec.status,
                )
            self._db.conn.execute(
                "UPDATE records SET status = ?, decided_at = ?, resolution = ?, push_decision = 0 "
                "WHERE id = ?",
                (rec.status, rec.decided_at, rec.resolution, rec.id),
            )
        self._db.conn.execute(
            "UPDATE records SET hub_known = 1, push_item = 0, "
            "mutation = CASE WHEN push_decision = 1 THEN mutation END WHERE id = ?",
            (rec.id,),
        )
        if rec.base is not None:
            self._db.conn.execute(
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
        cur = self._db.current(rec.entity_id)
        if (
            cur is not None
            and not cur.item.deleted
            and (cur.item.version, cur.item.last_modified_at) == (item.base_version, item.base_clock)
        ):
            return cur.item
        return None
