"""Apply a run of incoming versions to a set of current ones: the merge both sides share.

Pure code, no I/O. The hub calls :func:`plan_merge` inside its push transaction and a
device calls it when it applies a pull; the storage code only reads the current rows
before and writes the plan's rows after.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, Literal

import msgspec

from .model import OriginStep, Record, SyncItem, digest_sum, item_digest
from .truth import Outcome, TruthLevel, origin_step, record_id, resolve

__all__ = [
    "EVENT_OF_KIND",
    "HUB_FATE",
    "Fate",
    "Loss",
    "MergePlan",
    "Place",
    "fate",
    "item_checksum",
    "keeps",
    "loss_record",
    "plan_merge",
    "restoration",
]

#: the event that announces a kept loser of each kind, on the hub and on a device
EVENT_OF_KIND: Final = {"suggestion": "AI_SUGGESTION_GENERATED", "conflict": "CONFLICT_DETECTED"}


def item_checksum(item: SyncItem) -> int:
    """The checksum contribution of an item as the current version of its entity."""
    return item_digest(item.entity_id, item.last_modified_at, item.device_id, item.truth_level, item.deleted)


@dataclass(slots=True)
class Loss:
    """A losing version to keep, and why."""

    kind: Literal["suggestion", "conflict"]
    record: Record
    winner: SyncItem | None  # the version it lost to, when known


@dataclass(slots=True)
class MergePlan:
    """What a run of incoming versions does to the current state."""

    #: entity id -> its new current version (only entities that changed), in first-change order
    entities: dict[str, SyncItem] = field(default_factory=dict)
    #: new records to keep (suggestions and conflicts), in order
    losses: list[Loss] = field(default_factory=list)
    #: one (item, outcome, record id or None) per incoming item, in order
    results: list[tuple[SyncItem, Outcome, str | None]] = field(default_factory=list)
    #: items that raised an entity from a lower level to level 1 (TRUTH_UPGRADE)
    upgrades: list[SyncItem] = field(default_factory=list)
    #: change of the tenant checksum, to add modulo 2**64
    checksum_delta: int = 0


class Place(StrEnum):
    """Where a version in a device's merge stands, which decides what its loss keeps."""

    #: at the hub already: pushed and acknowledged, or pulled before
    HUB = "hub"
    #: arriving from the hub now, in a pulled page
    PULLED = "pulled"
    #: this device's change, queued for the hub and not pushed yet
    QUEUED = "queued"
    #: this device's only: a version the hub never took (an import not queued, say)
    LOCAL = "local"
    #: written on this device now, on top of the current version (and queued)
    WRITTEN = "written"


class Fate(StrEnum):
    """What a replica does with a losing version."""

    #: keep it as a record that every replica holds: the hub keeps it, a device pushes it
    SHARE = "share"
    #: keep it as a record on this device only, since the hub will never see it
    LOCAL = "local"
    #: keep nothing here: the hub keeps it (or has), and its feed brings the record
    LEAVE = "leave"
    #: keep nothing, and queue this device's winner again: the hub sent a version that one it
    #: held beats, so the hub lost it (a purged tombstone, a restore)
    RESEND = "resend"


#: the hub keeps every loser of a merge: it is the replica every record reaches first
HUB_FATE: Final = Fate.SHARE


def fate(loser: Place, winner: Place | None) -> Fate:
    """What a device keeps of a losing version, from where it and its winner stand.

    Records converge as entities do: a device keeps its own losing versions the hub has not
    seen, and the hub decides everything else. A version the hub holds that loses, or a pulled
    version that loses to a queued one, is the hub's to keep: it has done so already, or will
    when the queued version reaches it. Keeping one here as well could keep a version no other
    replica keeps (the hub may hold a successor of it that this device has not seen yet).
    """
    if winner is Place.WRITTEN:
        return Fate.LEAVE  # an edit supersedes the version it was made on
    if loser in (Place.QUEUED, Place.WRITTEN):
        return Fate.SHARE  # it reaches the hub marked kept, and the hub keeps it too
    if Place.LOCAL in (loser, winner):
        return Fate.LOCAL
    if loser is Place.PULLED and winner is Place.HUB:
        return Fate.RESEND
    return Fate.LEAVE


def keeps(decided: Fate) -> bool:
    """True when a replica that decided ``decided`` for a loss keeps it as a record of its own."""
    return decided in (Fate.SHARE, Fate.LOCAL)


def loss_record(kind: Literal["suggestion", "conflict"], item: SyncItem, now: str) -> Record:
    """The open record that keeps ``item`` as a losing version of ``kind``."""
    return Record(
        kind=kind,
        id=record_id(item.entity_id, item.last_modified_at, item.device_id),
        entity_id=item.entity_id,
        entity_type=item.entity_type,
        status="open",
        item=item,
        created_at=now,
    )


def plan_merge(current: Mapping[str, SyncItem], items: Iterable[SyncItem], now: str) -> MergePlan:
    """Resolve each incoming item, in order, against the current version of its entity.

    ``current`` must hold the current version of every entity the items touch (those
    absent are new). Items must have had the upgrade rule applied (see
    :func:`truthvault.intake.prepare_item`). Nothing is written; the plan says what to write.
    """
    plan = MergePlan()
    items = list(items)
    ids = [item.entity_id for item in items]
    if not current and len(set(ids)) == len(ids) and True not in [item.kept for item in items]:
        # The first versions of new entities, one each: every one applies, nothing can lose.
        plan.entities = dict(zip(ids, items, strict=True))
        plan.results = [(item, Outcome.APPLIED, None) for item in items]
        plan.checksum_delta = digest_sum(items)
        return plan
    state: dict[str, SyncItem] = {}
    # the versions that became current and those they replaced, for the checksum
    added: list[SyncItem] = []
    replaced: list[SyncItem] = []
    for item in items:
        eid = item.entity_id
        cur = state.get(eid) or current.get(eid)
        if item.kept:
            # It lost where it was written, to a version that is (or will be) pushed too: keep
            # it as that device does, whatever the current version here is now.
            kind: Literal["suggestion", "conflict"] = (
                "conflict" if item.truth_level == TruthLevel.USER else "suggestion"
            )
            loss = loss_record(kind, item, now)
            plan.losses.append(Loss(kind, loss, cur))
            plan.results.append((item, Outcome(kind), loss.id))
            continue
        if cur is None:
            state[eid] = plan.entities[eid] = item
            added.append(item)
            plan.results.append((item, Outcome.APPLIED, None))
            continue
        res = resolve(cur, item)
        rid: str | None = None
        if res.outcome is Outcome.APPLIED:
            state[eid] = item
            plan.entities[eid] = item
            added.append(item)
            replaced.append(cur)
            if res.loser is not None:
                loss = loss_record("conflict" if res.loser == "conflict" else "suggestion", cur, now)
                plan.losses.append(Loss(loss.kind, loss, item))
            if item.truth_level == TruthLevel.USER and cur.truth_level != TruthLevel.USER:
                plan.upgrades.append(item)
        elif res.outcome in (Outcome.SUGGESTION, Outcome.CONFLICT):
            kind = "conflict" if res.outcome is Outcome.CONFLICT else "suggestion"
            loss = loss_record(kind, item, now)
            rid = loss.id
            plan.losses.append(Loss(kind, loss, cur))
        plan.results.append((item, res.outcome, rid))
    plan.checksum_delta = digest_sum(added) - (digest_sum(replaced) if replaced else 0)
    return plan


def restoration(record: Record, current: SyncItem | None, device_id: str, clock: str) -> SyncItem:
    """The new level-1 version that brings a conflict's loser back, built on the current one."""
    loser = record.item
    step = origin_step(loser.truth_level, loser.origin_source, loser.last_modified_at, record.id)
    return SyncItem(
        entity_type=loser.entity_type,
        entity_id=loser.entity_id,
        tenant_id=loser.tenant_id,
        truth_level=int(TruthLevel.USER),
        origin_source="user:conflict-resolve",
        last_modified_at=clock,
        device_id=device_id,
        payload=loser.payload,
        origin_chain=(*loser.origin_chain, msgspec.convert(step, type=OriginStep)),
        last_modified_by_level=int(TruthLevel.USER),
        version=current.version + 1 if current else 1,
        base_version=current.version if current else 0,
        base_clock=current.last_modified_at if current else None,
        contract_version=loser.contract_version,
        deleted=loser.deleted,
    )
