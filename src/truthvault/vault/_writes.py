"""Local writes: a new version made on this device, under the truth rule, applied through the
one merge-applier (:mod:`._apply`) as a :attr:`~truthvault.merge.Place.WRITTEN` version."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import msgspec

from .. import intake
from ..errors import ConflictState, InvalidInput, InvalidSource, NotFound, PayloadTooLarge
from ..intake import prepare_item
from ..merge import Place, plan_merge
from ..model import MAX_COUNTER, OriginStep, SyncItem
from ..truth import Outcome, TruthLevel, level_of_source
from ._apply import Applier
from ._codec import MAX_PAYLOAD_BYTES, Current, encode_payload, payload_of, step
from ._contracts import VaultContracts
from ._db import VaultDB, WriteResult
from ._ids import new_id

__all__ = ["MAX_PAYLOAD_BYTES", "TOMBSTONE", "Writer", "require_user"]

TOMBSTONE = b"{}"


def require_user(source: str) -> None:
    """Raise InvalidSource unless ``source`` is a user source (only the user decides)."""
    if level_of_source(source) != TruthLevel.USER:
        raise InvalidSource(
            f"only the user decides: {source!r} is not a user source",
            hint="write as a user source (user:<app>, such as user:desktop)",
        )


class Writer:
    """Makes new versions on this device: put / edit / delete / upgrade_truth, and the writes
    behind accepting a suggestion or restoring a conflict's version."""

    def __init__(self, db: VaultDB, applier: Applier, contracts: VaultContracts) -> None:
        self._db = db
        self._applier = applier
        self._contracts = contracts

    # -- the one write path --------------------------------------------------------
    def write(
        self,
        cur: Current | None,
        *,
        entity_type: str,
        entity_id: str,
        payload: bytes,
        source: str,
        accepted: bool = False,
        deleted: bool = False,
        steps: Sequence[OriginStep] = (),
        upgrade: dict[str, Any] | None = None,
    ) -> WriteResult:
        """Write a new version made on this device on top of ``cur`` (inside a transaction)."""
        level = level_of_source(source)
        if accepted:
            require_user(source)  # only the user accepts
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise PayloadTooLarge(f"payload is {len(payload)} bytes, over the limit of {MAX_PAYLOAD_BYTES}")
        item, raised_from = self._version(
            cur, entity_type, entity_id, TOMBSTONE if deleted else payload, source, accepted, deleted, steps
        )
        current = {} if cur is None else {entity_id: cur}
        plan = plan_merge({} if cur is None else {entity_id: cur.item}, [item], item.last_modified_at)
        # A fresh stamp is later than anything seen here, so the version wins unless the
        # current one is of higher truth (then it is kept as a record, pushed to the hub).
        self._applier.apply(plan, current, Place.WRITTEN, {id(item): self._db.take_mutations()})
        _, outcome, rid = plan.results[0]
        if outcome is not Outcome.APPLIED:
            assert outcome in (Outcome.SUGGESTION, Outcome.CONFLICT), outcome
            return WriteResult(item, outcome, rid)
        if upgrade is not None or raised_from is not None or level != item.truth_level:
            detail = dict(upgrade or {})
            if raised_from is not None:
                detail.setdefault("from_level", raised_from.truth_level)
                detail.setdefault("from_source", raised_from.origin_source)
            else:
                detail.setdefault("from_level", int(level))
                detail.setdefault("from_source", source)
            self._db.add_event("TRUTH_UPGRADE", entity_id, by=item.origin_source, **detail)
        return WriteResult(item, Outcome.APPLIED)

    def _version(
        self,
        cur: Current | None,
        entity_type: str,
        entity_id: str,
        payload: bytes,
        source: str,
        accepted: bool,
        deleted: bool,
        steps: Sequence[OriginStep],
    ) -> tuple[SyncItem, SyncItem | None]:
        """The new version, checked as a hub checks a push, and the lower-level version it
        raises to user truth (None when it raises none)."""
        level = level_of_source(source)
        stamp = self._db.stamp()
        device, tenant = self._db.meta_str("device_id"), self._db.meta_str("tenant_id")
        chain: builtins.list[OriginStep] = []
        version, base_version, base_clock = 1, 0, None
        raised_from: SyncItem | None = None
        if cur is not None:
            chain, raised_from, accepted = _lineage(cur.item, level, accepted)
            # saturating: a version is only ever compared with its clock, so one at the largest
            # number (taken in from a hostile device, say) can still be edited and synced
            version = min(cur.item.version + 1, MAX_COUNTER)
            if cur.mutation is None:
                base_version, base_clock = cur.item.version, cur.item.last_modified_at
            else:
                # Unpushed edits collapse: the hub still only knows the old base.
                base_version, base_clock = cur.item.base_version, cur.item.base_clock
        chain.extend(steps)
        # Made under the type's newest contract; checked against it here, before a push seals it.
        contract = self._contracts.book().current(entity_type)
        item = SyncItem(
            entity_type=entity_type,
            entity_id=entity_id,
            tenant_id=tenant,
            truth_level=int(level),
            origin_source=source,
            last_modified_at=stamp,
            device_id=device,
            payload=msgspec.Raw(payload),
            origin_chain=tuple(chain),
            accepted_by_user=accepted,
            version=version,
            base_version=base_version,
            base_clock=base_clock,
            contract_version=1 if contract is None else contract.version,
            deleted=deleted,
        )
        prepare_item(
            item,
            "write",
            tenant_id=tenant,
            device_id=device,
            max_payload_bytes=MAX_PAYLOAD_BYTES,
            max_clock=stamp,
        )
        if contract is not None and not deleted:
            contract.validate(msgspec.json.decode(payload))
        return item, raised_from

    def live(self, entity_id: str) -> Current:
        """The current version of a live entity; NotFound if there is none (or it was deleted)."""
        cur = self._db.current(entity_id)
        if cur is None or cur.item.deleted:
            raise NotFound(f"no entity {entity_id!r}" if cur is None else f"entity {entity_id!r} was deleted")
        return cur

    # -- public writes -------------------------------------------------------------
    def put(
        self,
        entity_type: str,
        payload: dict[str, Any],
        *,
        entity_id: str | None = None,
        source: str,
    ) -> WriteResult:
        """Write an entity (new, or a new version of ``entity_id``) under the truth rule.

        Acceptance is the user's act and never a flag a writer sets: :meth:`accept` a
        suggestion, :meth:`edit` as a user source, or :meth:`upgrade_truth`.
        """
        level_of_source(source)
        entity_type = intake.check_entity_type(entity_type)
        entity_id = new_id() if entity_id is None else intake.check_entity_id(entity_id)
        body = encode_payload(payload)
        with self._db.tx():
            cur = self._db.current(entity_id)
            if cur is not None and cur.item.entity_type != entity_type:
                raise ConflictState(f"entity {entity_id!r} is a {cur.item.entity_type}, not a {entity_type}")
            return self.write(
                cur,
                entity_type=entity_type,
                entity_id=entity_id,
                payload=body,
                source=source,
            )

    def edit(
        self, entity_id: str, changes: dict[str, Any], *, source: str, replace: bool = False
    ) -> WriteResult:
        """Merge ``changes`` into an entity's payload (or replace it) and write it."""
        level_of_source(source)
        if not isinstance(changes, dict):
            raise InvalidInput(f"changes must be a JSON object, got {type(changes).__name__}")
        with self._db.tx():
            cur = self.live(entity_id)
            payload = changes if replace else {**payload_of(cur.item), **changes}
            return self.write(
                cur,
                entity_type=cur.item.entity_type,
                entity_id=entity_id,
                payload=encode_payload(payload),
                source=source,
            )

    def delete(self, entity_id: str, *, source: str) -> WriteResult:
        """Write a tombstone; below the entity's level it becomes a suggestion instead."""
        level_of_source(source)
        with self._db.tx():
            cur = self.live(entity_id)
            return self.write(
                cur,
                entity_type=cur.item.entity_type,
                entity_id=entity_id,
                payload=TOMBSTONE,
                source=source,
                deleted=True,
            )

    def upgrade_truth(self, entity_id: str, *, source: str) -> SyncItem:
        """The user confirms lower-level content: it becomes level 1, accepted by the user."""
        require_user(source)
        with self._db.tx():
            cur = self.live(entity_id)
            if cur.item.truth_level == TruthLevel.USER:
                raise ConflictState(f"entity {entity_id!r} is already user truth (level 1)")
            return self.write(
                cur,
                entity_type=cur.item.entity_type,
                entity_id=entity_id,
                payload=bytes(cur.item.payload),
                source=source,
                accepted=True,
            ).item


def _lineage(
    old: SyncItem, level: TruthLevel, accepted: bool
) -> tuple[builtins.list[OriginStep], SyncItem | None, bool]:
    """The origin chain a new version of ``old`` written at ``level`` starts from, the
    lower-level version it raises to user truth (or None), and whether it is accepted."""
    chain = list(old.origin_chain)
    raised_from = None
    if accepted or level == TruthLevel.USER:
        if not old.deleted and old.truth_level != TruthLevel.USER:
            chain.append(step(old))
            raised_from = old
            accepted = True
        elif old.accepted_by_user:
            accepted = True  # provenance survives the user's later edits
    return chain, raised_from, accepted
