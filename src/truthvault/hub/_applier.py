"""The hub's one merge-applier: every plan (a push's, a conflict resolution's) is written here.

What to keep of a losing version is :mod:`truthvault.merge`'s to say (:data:`~truthvault.merge.
HUB_FATE`: the hub keeps every loser as a record), and so is the event that announces it
(:data:`~truthvault.merge.EVENT_OF_KIND`). This module numbers the changes from the tenant's
head and writes them through a :class:`~._port.SyncTx`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from ..merge import EVENT_OF_KIND, HUB_FATE, Loss, MergePlan, keeps
from ..model import Decision, Record, SyncItem, encode, record_digest
from ._port import EntityWrites, EventRow, SyncTx
from ._rules import kept_record

__all__ = ["Applied", "apply_plan"]

_replace = msgspec.structs.replace


@dataclass(slots=True)
class Applied:
    """What :func:`apply_plan` wrote, with the sequence numbers it gave."""

    head: int
    #: entity id -> its new current version as stored: numbered (``seq``), without the mutation
    entities: dict[str, SyncItem] = field(default_factory=dict)
    #: record id -> the new or decided record, numbered
    records: dict[str, Record] = field(default_factory=dict)
    tag: str | None = None


def apply_plan(
    tx: SyncTx,
    plan: MergePlan,
    current: Mapping[str, SyncItem],
    decisions: Sequence[Decision],
    device_id: str,
    now: str,
    events: list[EventRow],
    push_detail: Mapping[str, object] | None = None,
    bases: Sequence[SyncItem] = (),
) -> Applied:
    """Write a plan, the losers it keeps, decisions and events, numbering changes from the head.

    ``push_detail`` is a push's SYNC_PUSH event, written only when the push changed something
    (a replayed batch of decisions already taken writes nothing at all). ``bases`` are versions
    the batch's suggestions were made on (see :func:`~._rules.kept_record`). The items of the
    plan are left as they are: the stored versions are numbered copies."""
    state = tx.state
    out = Applied(state.head_seq)
    if plan.entities:
        out.entities, writes = _numbered(plan.entities, state.head_seq)
        out.head += len(out.entities)
        tx.write_entities(writes, current)
    new = _kept(tx, plan.losses, bases, current)
    events += [_loss_event(loss, record) for loss, record in new.values()]
    events += [("TRUTH_UPGRADE", i.entity_id, {"source": i.origin_source}) for i in plan.upgrades]
    kept = {rid: record for rid, (_, record) in new.items()}
    changed, records_delta = _decide(tx, decisions, kept)
    records_delta += sum(record_digest(r.id, r.status, r.resolution) for r in kept.values())
    if push_detail is not None and (plan.results or kept or changed):
        events.insert(0, ("SYNC_PUSH", None, push_detail))
    for record in (*kept.values(), *changed.values()):
        out.head += 1
        record.seq = out.head  # a record of this transaction's own making
        out.records[record.id] = record
    if kept:
        tx.insert_records(kept.values())
    if changed:
        tx.update_records(changed.values())
    if events:
        tx.write_events(events, device_id, now)
    if out.head != state.head_seq:
        # Every commit gets a tag of its own, which a restored copy of the database has never
        # seen: a device whose cursor points into a commit the hub has no longer learns so.
        out.tag = secrets.token_hex(8)
        checksum = state.checksum + plan.checksum_delta
        tx.write_commit(out.head, checksum, state.records_checksum + records_delta, out.tag)
    return out


def _numbered(versions: Mapping[str, SyncItem], head: int) -> tuple[dict[str, SyncItem], EntityWrites]:
    """The new current versions as stored (numbered from ``head``, the wire form carrying the
    hub's seq and not the device's mutation), and their rows."""
    seqs = range(head + 1, head + 1 + len(versions))
    numbered = {
        eid: _replace(item, mutation=None, seq=seq)
        for (eid, item), seq in zip(versions.items(), seqs, strict=True)
    }
    stored = numbered.values()
    writes = EntityWrites(
        list(numbered),
        seqs,
        [item.last_modified_at for item in stored],
        [item.deleted for item in stored],
        list(map(encode, stored)),
    )
    return numbered, writes


def _kept(
    tx: SyncTx, losses: Sequence[Loss], bases: Sequence[SyncItem], current: Mapping[str, SyncItem]
) -> dict[str, tuple[Loss, Record]]:
    """The records to add for a plan's losers: those the hub keeps (:data:`HUB_FATE`) and does
    not hold already (a batch replayed by a device that lost its state is not kept twice)."""
    if not keeps(HUB_FATE):
        return {}
    by_id = {loss.record.id: loss for loss in losses}
    known = tx.known_records(list(by_id)) if by_id else set()
    return {rid: (loss, kept_record(loss, bases, current)) for rid, loss in by_id.items() if rid not in known}


def _decide(
    tx: SyncTx, decisions: Sequence[Decision], kept: dict[str, Record]
) -> tuple[dict[str, Record], int]:
    """Take the decisions on open records: those kept now (changed in ``kept``) and those
    stored before (returned, with the change of the records checksum they make)."""
    wanted = list({d.id: None for d in decisions if d.id not in kept})
    stored = tx.load_records(wanted) if wanted else {}
    changed: dict[str, Record] = {}
    delta = 0
    for decision in decisions:
        target = kept if decision.id in kept else stored
        record = target.get(decision.id)
        if record is None or record.status != "open":
            continue  # unknown or already decided: a replayed decision changes nothing
        if target is stored:
            delta -= record_digest(record.id, record.status, record.resolution)
        target[decision.id] = record = _replace(
            record, status=decision.status, decided_at=decision.at, resolution=decision.resolution
        )
        if target is stored:
            changed[decision.id] = record
            delta += record_digest(record.id, record.status, record.resolution)
    return changed, delta


def _loss_event(loss: Loss, record: Record) -> EventRow:
    """The event of a kept loser (:data:`EVENT_OF_KIND`): for a conflict with both sides' clocks
    and devices, for a suggestion with its level and source."""
    item, winner = record.item, loss.winner
    detail: dict[str, object] = {"record_id": record.id}
    if record.kind == "conflict":
        detail["loser"] = {"clock": item.last_modified_at, "device_id": item.device_id}
        if winner is not None:
            detail["winner"] = {"clock": winner.last_modified_at, "device_id": winner.device_id}
    else:
        detail |= {"level": item.truth_level, "source": item.origin_source}
    return (EVENT_OF_KIND[record.kind], record.entity_id, detail)
