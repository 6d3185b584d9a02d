"""Local writes and reads of entities: the truth rule applied to every change made here."""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import Sequence
from typing import Any

import msgspec

from .. import intake
from ..errors import ConflictState, InvalidInput, InvalidSource, NotFound, PayloadTooLarge
from ..intake import prepare_item
from ..model import MAX_COUNTER, OriginStep, Record, SyncItem
from ..truth import Outcome, TruthLevel, level_of_source, record_id, resolve
from ._base import VaultBase, WriteResult
from ._codec import (
    ENTITY_SELECT,
    MAX_PAYLOAD_BYTES,
    Current,
    encode_payload,
    item_from_row,
    payload_of,
    step,
)
from ._ids import new_id
from ._search import fts_error, plain_query

__all__ = ["EVENT_OF_KIND", "MAX_PAYLOAD_BYTES", "TOMBSTONE", "EntitiesMixin", "require_user"]

TOMBSTONE = b"{}"
#: the event a kept record of each kind is recorded as
EVENT_OF_KIND = {"suggestion": "AI_SUGGESTION_GENERATED", "conflict": "CONFLICT_DETECTED"}


def require_user(source: str) -> None:
    """Raise InvalidSource unless ``source`` is a user source (only the user decides)."""
    if level_of_source(source) != TruthLevel.USER:
        raise InvalidSource(f"only the user decides: {source!r} is not a user source", hint="use user:cli")


class EntitiesMixin(VaultBase):
    """put / edit / delete / get / list / count / search / upgrade_truth."""

    # -- the one write path --------------------------------------------------------
    def _local_write(
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
        """Write a new version made on this device (inside a transaction)."""
        level = level_of_source(source)
        if accepted:
            require_user(source)  # only the user accepts
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise PayloadTooLarge(f"payload is {len(payload)} bytes, over the limit of {MAX_PAYLOAD_BYTES}")
        stamp = self._stamp()
        device, tenant = self._meta_str("device_id"), self._meta_str("tenant_id")
        chain: builtins.list[OriginStep] = []
        version, base_version, base_clock = 1, 0, None
        raised_from: SyncItem | None = None
        if cur is not None:
            old = cur.item
            chain = list(old.origin_chain)
            # saturating: a version is only ever compared with its clock, so one at the largest
            # number (taken in from a hostile device, say) can still be edited and synced
            version = min(old.version + 1, MAX_COUNTER)
            if cur.mutation is None:
                base_version, base_clock = old.version, old.last_modified_at
            else:
                # Unpushed edits collapse: the hub still only knows the old base.
                base_version, base_clock = old.base_version, old.base_clock
            if accepted or level == TruthLevel.USER:
                if not old.deleted and old.truth_level != TruthLevel.USER:
                    chain.append(step(old))
                    raised_from = old
                    accepted = True
                elif old.accepted_by_user:
                    accepted = True  # provenance survives the user's later edits
        chain.extend(steps)
        item = SyncItem(
            entity_type=entity_type,
            entity_id=entity_id,
            tenant_id=tenant,
            truth_level=int(level),
            origin_source=source,
            last_modified_at=stamp,
            device_id=device,
            payload=msgspec.Raw(TOMBSTONE if deleted else payload),
            origin_chain=tuple(chain),
            accepted_by_user=accepted,
            version=version,
            base_version=base_version,
            base_clock=base_clock,
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
        res = resolve(None if cur is None else cur.item, item)
        if res.outcome in (Outcome.SUGGESTION, Outcome.CONFLICT):
            kind = str(res.outcome)
            rid = record_id(entity_id, stamp, device)
            record = Record(
                kind=kind,  # type: ignore[arg-type]
                id=rid,
                entity_id=entity_id,
                entity_type=entity_type,
                status="open",
                item=item,
                created_at=stamp,
            )
            base = cur.item if cur is not None and not cur.item.deleted else None
            self._insert_record(record, mutation=self._take_mutations(), push_item=True, base=base)
            self.add_event(
                EVENT_OF_KIND[kind], entity_id, record_id=rid, level=item.truth_level, source=source
            )
            return WriteResult(item, res.outcome, rid)
        # A fresh stamp is later than anything seen, so it can only win; and a local
        # write builds on what it replaces, so nothing else needs keeping.
        assert res.outcome is Outcome.APPLIED, res
        self._put_row(item, self._take_mutations(), cur.hub_known if cur else False, cur)
        if upgrade is not None or raised_from is not None or level != item.truth_level:
            detail = dict(upgrade or {})
            if raised_from is not None:
                detail.setdefault("from_level", raised_from.truth_level)
                detail.setdefault("from_source", raised_from.origin_source)
            else:
                detail.setdefault("from_level", int(level))
                detail.setdefault("from_source", source)
            self.add_event("TRUTH_UPGRADE", entity_id, by=item.origin_source, **detail)
        return WriteResult(item, Outcome.APPLIED)

    def _live(self, entity_id: str) -> Current:
        cur = self._current(entity_id)
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
        source: str = "user:cli",
    ) -> WriteResult:
        """Write an entity (new, or a new version of ``entity_id``) under the truth rule.

        Acceptance is the user's act and never a flag a writer sets: :meth:`accept` a
        suggestion, :meth:`edit` as a user source, or :meth:`upgrade_truth`.
        """
        level_of_source(source)
        entity_type = intake.check_entity_type(entity_type)
        entity_id = new_id() if entity_id is None else intake.check_entity_id(entity_id)
        body = encode_payload(payload)
        with self._tx():
            cur = self._current(entity_id)
            if cur is not None and cur.item.entity_type != entity_type:
                raise ConflictState(f"entity {entity_id!r} is a {cur.item.entity_type}, not a {entity_type}")
            return self._local_write(
                cur,
                entity_type=entity_type,
                entity_id=entity_id,
                payload=body,
                source=source,
            )

    def edit(
        self, entity_id: str, changes: dict[str, Any], *, source: str = "user:cli", replace: bool = False
    ) -> WriteResult:
        """Merge ``changes`` into an entity's payload (or replace it) and write it."""
        level_of_source(source)
        if not isinstance(changes, dict):
            raise InvalidInput(f"changes must be a JSON object, got {type(changes).__name__}")
        with self._tx():
            cur = self._live(entity_id)
            payload = changes if replace else {**payload_of(cur.item), **changes}
            return self._local_write(
                cur,
                entity_type=cur.item.entity_type,
                entity_id=entity_id,
                payload=encode_payload(payload),
                source=source,
            )

    def delete(self, entity_id: str, *, source: str = "user:cli") -> WriteResult:
        """Write a tombstone; below the entity's level it becomes a suggestion instead."""
        level_of_source(source)
        with self._tx():
            cur = self._live(entity_id)
            return self._local_write(
                cur,
                entity_type=cur.item.entity_type,
                entity_id=entity_id,
                payload=TOMBSTONE,
                source=source,
                deleted=True,
            )

    def upgrade_truth(self, entity_id: str, *, source: str = "user:cli") -> SyncItem:
        """The user confirms lower-level content: it becomes level 1, accepted by the user."""
        require_user(source)
        with self._tx():
            cur = self._live(entity_id)
            if cur.item.truth_level == TruthLevel.USER:
                raise ConflictState(f"entity {entity_id!r} is already user truth (level 1)")
            return self._local_write(
                cur,
                entity_type=cur.item.entity_type,
                entity_id=entity_id,
                payload=bytes(cur.item.payload),
                source=source,
                accepted=True,
            ).item

    # -- reads ---------------------------------------------------------------------
    def get(self, entity_id: str, include_deleted: bool = False) -> SyncItem:
        """The current version of an entity; NotFound if there is none (or it was deleted)."""
        with self._read():
            cur = self._current(entity_id)
        if cur is None:
            raise NotFound(f"no entity {entity_id!r}")
        if cur.item.deleted and not include_deleted:
            raise NotFound(
                f"entity {entity_id!r} was deleted", hint="pass include_deleted to see the tombstone"
            )
        return cur.item

    def search(self, query: str, limit: int = 50, *, fts: bool = False) -> builtins.list[SyncItem]:
        """Live entities whose type or payload text holds every word of ``query``, best first;
        with ``fts`` the query is FTS5 syntax (phrases, AND / OR / NOT, NEAR, prefix*)."""
        if not query or not query.strip():
            raise InvalidInput("search query must not be empty")
        sql = (
            f"{ENTITY_SELECT} JOIN entities_fts ON entities_fts.rowid = entities.rowid "
            "WHERE entities_fts MATCH ? AND entities.deleted = 0 ORDER BY entities_fts.rank LIMIT ?"
        )
        with self._read() as conn:
            try:
                rows = conn.execute(sql, (query if fts else plain_query(query), limit)).fetchall()
            except sqlite3.OperationalError as exc:
                raise fts_error(query, exc) from None
        return [item_from_row(r) for r in rows]

    @staticmethod
    def _filters(
        entity_type: str | None, level: int | None, accepted: bool | None, include_deleted: bool
    ) -> tuple[str, builtins.list[Any]]:
        where: builtins.list[str] = []
        args: builtins.list[Any] = []
        if entity_type is not None:
            # Entity types are lowercase by rule: "Note" can only mean note.
            where.append("entity_type = ?")
            args.append(intake.check_entity_type(entity_type.lower()))
        if level is not None:
            where.append("truth_level = ?")
            args.append(int(level))
        if accepted is not None:
            where.append("accepted_by_user = ?")
            args.append(int(accepted))
        if not include_deleted:
            where.append("deleted = 0")
        return (" WHERE " + " AND ".join(where) if where else ""), args

    def count(
        self,
        entity_type: str | None = None,
        level: int | None = None,
        accepted: bool | None = None,
        include_deleted: bool = False,
    ) -> int:
        """How many entities match the filters of :meth:`list`."""
        where, args = self._filters(entity_type, level, accepted, include_deleted)
        with self._read() as conn:
            return int(conn.execute(f"SELECT count(*) FROM entities{where}", args).fetchone()[0])

    def list(
        self,
        entity_type: str | None = None,
        level: int | None = None,
        accepted: bool | None = None,
        include_deleted: bool = False,
        limit: int | None = 100,
        offset: int = 0,
    ) -> builtins.list[SyncItem]:
        """Current versions, newest first, filtered by type (any case), level and acceptance;
        ``limit=None`` lists them all."""
        where, args = self._filters(entity_type, level, accepted, include_deleted)
        sql = f"{ENTITY_SELECT}{where} ORDER BY last_modified_at DESC, entity_id DESC LIMIT ? OFFSET ?"
        with self._read() as conn:
            # SQLite reads a negative LIMIT as none
            rows = conn.execute(sql, [*args, -1 if limit is None else limit, offset]).fetchall()
        return [item_from_row(r) for r in rows]
