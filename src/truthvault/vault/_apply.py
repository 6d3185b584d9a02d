"""The device's one merge-applier: a plan from :func:`truthvault.merge.plan_merge` written to the
vault, with what each losing version keeps decided by :func:`truthvault.merge.fate`.

Local writes, pulls and imports all apply their plans here; they differ only in where their
incoming versions stand (a :class:`~truthvault.merge.Place`) and in the change numbers of those
queued for the hub.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..merge import EVENT_OF_KIND, Fate, Loss, MergePlan, Place, fate
from ..model import SyncItem
from ._codec import Current
from ._db import VaultDB

__all__ = ["Applied", "Applier"]


@dataclass(slots=True)
class Applied:
    """What applying a plan kept beyond its entity rows."""

    suggestions: int = 0  # new suggestion records kept here
    conflicts: int = 0  # new conflict records kept here
    requeued: int = 0  # this device's versions queued again for a hub that lost them


class Applier:
    """Writes merge plans into one vault's database (inside its transaction)."""

    def __init__(self, db: VaultDB) -> None:
        self._db = db

    def apply(
        self,
        plan: MergePlan,
        current: Mapping[str, Current],
        place: Place,
        mutations: Mapping[int, int] | None = None,
        *,
        local_reason: str | None = None,
    ) -> Applied:
        """Write ``plan``, made against ``current``, whose incoming versions stand at ``place``.

        ``mutations`` gives the change number of each incoming version queued for the hub (by
        ``id()`` of the item); the others are not queued. A record this device alone keeps
        (:attr:`Fate.LOCAL`) gives ``local_reason`` as why.
        """
        mutations = mutations or {}
        self._write_entities(plan, current, place, mutations)
        done = Applied()
        requeue: list[str] = []
        for loss in plan.losses:
            cur = current.get(loss.record.entity_id)
            loser, mutation = _stand(loss.record.item, cur, place, mutations)
            winner = None if loss.winner is None else _stand(loss.winner, cur, place, mutations)[0]
            what = fate(loser, winner)
            if what is Fate.RESEND:
                requeue.append(loss.record.entity_id)
            elif what is not Fate.LEAVE and self._keep(loss, what, mutation, loser, local_reason):
                done.conflicts += loss.kind == "conflict"
                done.suggestions += loss.kind == "suggestion"
        if requeue:
            done.requeued = len(requeue)
            first = self._db.take_mutations(len(requeue))
            self._db.conn.executemany(
                "UPDATE entities SET mutation = ? WHERE entity_id = ? AND mutation IS NULL",
                [(first + n, eid) for n, eid in enumerate(requeue)],
            )
        return done

    def _write_entities(
        self, plan: MergePlan, current: Mapping[str, Current], place: Place, mutations: Mapping[int, int]
    ) -> None:
        if place is Place.PULLED:
            # a page at a time: the hub holds every one of them, and none is queued
            self._db.put_rows(
                list(plan.entities.values()),
                True,
                current,
                defer_index=True,
                checksum_delta=plan.checksum_delta,
            )
            return
        for eid, item in plan.entities.items():
            cur = current.get(eid)
            self._db.put_row(item, mutations.get(id(item)), cur.hub_known if cur else False, cur)

    def _keep(self, loss: Loss, what: Fate, mutation: int | None, loser: Place, reason: str | None) -> bool:
        """Keep a losing version as its fate says; True when its record is new."""
        record, winner = loss.record, loss.winner
        if what is Fate.SHARE:
            # a version written here on top of another was proposed against that one (see accept)
            base = winner if loser is Place.WRITTEN and winner is not None and not winner.deleted else None
            new = self._db.insert_record(record, mutation=mutation, push_item=True, base=base)
        else:
            new = self._db.insert_record(record, reason=reason)
        if new:
            item = record.item
            self._db.add_event(
                EVENT_OF_KIND[loss.kind],
                record.entity_id,
                record_id=record.id,
                level=item.truth_level,
                source=item.origin_source,
            )
        return new


def _stand(
    version: SyncItem, cur: Current | None, place: Place, mutations: Mapping[int, int]
) -> tuple[Place, int | None]:
    """Where a version of a merge stands, and its change number when it is queued for the hub."""
    if cur is not None and version is cur.item:
        if cur.mutation is not None:
            return Place.QUEUED, cur.mutation
        return (Place.HUB if cur.hub_known else Place.LOCAL), None
    return place, mutations.get(id(version))
