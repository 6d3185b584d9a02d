"""The hub's sync engine: push, pull, conflict resolution and tombstone purges, one transaction
each under the tenant's row lock, over the storage primitives of :class:`HubStorage`."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from ..clock import CANONICAL_STAMP_RE
from ..errors import ConflictState, DeviceRevoked, InvalidInput, NotFound, ResyncRequired
from ..intake import sort_out
from ..merge import MergePlan, plan_merge
from ..model import (
    Decision,
    PullResponse,
    PushRequest,
    PushResponse,
    PushResult,
    Record,
    SyncItem,
    checksum_hex,
    encode,
    record_digest,
)
from ..truth import Outcome
from ._rules import checked_items, kept_record, loss_event, max_clock, other_history, reset_error, restoration
from ._storage import (
    _INSERT_EVENTS,
    _RECORD_COLUMNS,
    _TAG_AT,
    _TOMBSTONES,
    Db,
    EntityWrites,
    HubStorage,
    TenantState,
    _decision_fields,
    _encoder,
    _EventRow,
    _iso_ms,
    _now,
    _pull_decoder,
    _record_decoder,
    _record_fields,
    _select_in,
    _signed,
)
from .store import DeviceContext, Limits

__all__ = ["SyncStore"]


@dataclass(slots=True)
class _Applied:
    """What :meth:`BaseHubStore._apply` wrote, with the sequence numbers it gave."""

    head: int
    entities: dict[str, SyncItem] = field(default_factory=dict)
    records: dict[str, Record] = field(default_factory=dict)
    tag: str | None = None


class SyncStore(HubStorage):
    """Push, pull, conflict resolution and purges (see :class:`~truthvault.hub.store.HubStore`)."""

    def push(self, ctx: DeviceContext, request: PushRequest, limits: Limits, now_ms: int) -> PushResponse:
        """Apply a batch atomically and idempotently (see :meth:`HubStore.push`)."""
        items = checked_items(ctx, request, limits, now_ms)
        # A base only helps accepting a suggestion: one that fails a check is dropped, not the batch.
        bases, _ = sort_out(
            request.bases,
            "bases",
            tenant_id=ctx.tenant_id,
            max_payload_bytes=limits.max_payload_bytes,
            max_clock=max_clock(limits, now_ms),
        )
        now = _iso_ms(now_ms)
        pk = self._tenant_pk(ctx.tenant_id)
        with self._write() as db:
            state = self._lock_tenant(db, pk)
            if state.purge_seq > 0 and request.cursor < state.purge_seq:
                raise ResyncRequired(
                    f"cursor {request.cursor} is behind the purge horizon {state.purge_seq}",
                    hint="pull from 0, then push again",
                )
            if request.cursor > state.head_seq:
                raise reset_error(request.cursor, state.head_seq)
            self._check_history(
                db, pk, state, request.tag, request.cursor if request.tag_seq is None else request.tag_seq
            )
            sql = "SELECT last_mutation, revoked FROM devices WHERE id = ? AND tenant_pk = ?"
            row = db.execute(sql, (ctx.device_id, pk)).fetchone()
            if row is None or row[1]:
                raise DeviceRevoked("unknown or revoked device")
            last = int(row[0])
            # Mutations strictly increase, so the already-applied ones are a prefix of the batch.
            applied_before = sum(1 for item in items if (item.mutation or 0) <= last)
            fresh = items[applied_before:]
            current = self._load_current(db, pk, list({item.entity_id: None for item in fresh}))
            plan = plan_merge(current, fresh, now)
            events: list[_EventRow] = []
            detail: dict[str, object] | None = None
            if fresh or request.decisions:
                by_outcome = Counter(outcome for _, outcome, _ in plan.results)
                counts = Counter({outcome.value: n for outcome, n in by_outcome.items()})
                counts["duplicate"] += applied_before
                detail = {"items": len(items), "decisions": len(request.decisions), **counts}
            # (the results are taken before _apply, which renumbers the items in place)
            results = [
                PushResult(item.entity_id, "duplicate", item.mutation) for item in items[:applied_before]
            ]
            results += [
                PushResult(item.entity_id, outcome, item.mutation, rid) for item, outcome, rid in plan.results
            ]
            mutation = max(last, items[-1].mutation or 0) if items else last
            applied = self._apply(
                db, pk, state, plan, current, request.decisions, ctx.device_id, now, events, detail, bases
            )
            if applied.head != state.head_seq:
                self._announce(db, ctx.tenant_id)
            sql = "UPDATE devices SET last_mutation = ?, last_seen_at = ? WHERE id = ?"
            db.execute(sql, (mutation, now, ctx.device_id))
        return PushResponse(
            results=results,
            head=applied.head,
            last_mutation=mutation,
            previous_mutation=last,
            tag=applied.tag,
        )

    def _check_history(self, db: Db, pk: int, state: TenantState, tag: str | None, seq: int) -> None:
        """HubReset unless ``tag`` (given for sequence number ``seq``) is the tag of the commit
        ``seq`` belongs to here: else this is not the history the device has seen."""
        if tag is None or not seq:
            return
        if seq > state.head_seq:
            raise reset_error(seq, state.head_seq)
        if self._tag_at(db, pk, seq, state.head_seq, state.head_tag) != tag:
            raise other_history(seq)

    @staticmethod
    def _tag_at(db: Db, pk: int, seq: int, state_head: int, head_tag: str | None) -> str | None:
        """The tag of the commit sequence number ``seq`` belongs to (None: no commit has it)."""
        if seq == state_head:
            return head_tag
        row = db.execute(_TAG_AT, (pk, seq)).fetchone()
        return None if row is None else str(row[0])

    def _apply(
        self,
        db: Db,
        pk: int,
        state: TenantState,
        plan: MergePlan,
        current: Mapping[str, SyncItem],
        decisions: Sequence[Decision],
        device_id: str,
        now: str,
        events: list[_EventRow],
        push_detail: dict[str, object] | None = None,
        bases: Sequence[SyncItem] = (),
    ) -> _Applied:
        """Write a plan, its kept losers, decisions and events, numbering changes from the head.

        ``push_detail`` is a push's SYNC_PUSH event, written only when the push changed
        something (a replayed batch of decisions already taken writes nothing at all). ``bases``
        are versions the batch's suggestions were made on (see :func:`_base_of`)."""
        out = _Applied(state.head_seq, plan.entities)
        if plan.entities:
            # The wire form carries the hub's seq, not the device's mutation. Renumbering the
            # items in place and restoring the mutations after is much cheaper than copying them.
            versions = list(plan.entities.values())
            mutations = [item.mutation for item in versions]
            seqs = range(state.head_seq + 1, state.head_seq + 1 + len(versions))
            for item, seq in zip(versions, seqs, strict=True):
                item.mutation, item.seq = None, seq
            writes = EntityWrites(
                list(plan.entities),
                seqs,
                [item.last_modified_at for item in versions],
                [item.deleted for item in versions],
                list(map(_encoder.encode, versions)),
            )
            for item, mutation in zip(versions, mutations, strict=True):
                item.mutation = mutation
            out.head = seqs[-1]
            self._upsert_entities(db, pk, writes, current)

        # A loser kept before (a batch replayed by a device that lost its state) is not kept twice.
        losses = {loss.record.id: loss for loss in plan.losses}
        known = {row[0] for row in _select_in(db, "SELECT id FROM records", pk, "id", list(losses))}
        new = {rid: kept_record(loss, bases, current) for rid, loss in losses.items() if rid not in known}
        events += [loss_event(losses[rid], record) for rid, record in new.items()]
        events += [("TRUTH_UPGRADE", i.entity_id, {"source": i.origin_source}) for i in plan.upgrades]

        wanted = list({d.id: None for d in decisions if d.id not in new})
        rows = _select_in(db, "SELECT wire FROM records", pk, "id", wanted)
        stored = {r.id: r for r in map(_record_decoder.decode, (row[0] for row in rows))}
        changed: dict[str, Record] = {}
        records_delta = 0
        for decision in decisions:
            target = new if decision.id in new else stored
            record = target.get(decision.id)
            if record is None or record.status != "open":
                continue  # unknown or already decided: a replayed decision changes nothing
            if target is stored:
                records_delta -= record_digest(record.id, record.status, record.resolution)
            target[decision.id] = record = msgspec.structs.replace(
                record, status=decision.status, decided_at=decision.at, resolution=decision.resolution
            )
            if target is stored:
                changed[decision.id] = record
                records_delta += record_digest(record.id, record.status, record.resolution)
        records_delta += sum(record_digest(r.id, r.status, r.resolution) for r in new.values())

        if push_detail is not None and (plan.results or new or changed):
            events.insert(0, ("SYNC_PUSH", None, push_detail))
        for record in (*new.values(), *changed.values()):
            out.head += 1
            record.seq = out.head
            out.records[record.id] = record
        if new:
            db.executemany(
                f"INSERT INTO records (tenant_pk, {_RECORD_COLUMNS}, wire) VALUES ({pk}, ?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (tenant_pk, id) DO NOTHING",
                [(*_record_fields(record), encode(record)) for record in new.values()],
            )
        if changed:
            db.executemany(
                "UPDATE records SET status = ?, decided_at = ?, resolution = ?, seq = ?, wire = ? "
                f"WHERE tenant_pk = {pk} AND id = ? AND status = 'open'",
                [(*_decision_fields(record), encode(record), record.id) for record in changed.values()],
            )
        if events:
            rows = [(pk, kind, now, device_id, eid, encode(detail).decode()) for kind, eid, detail in events]
            db.executemany(_INSERT_EVENTS, rows)
        if out.head != state.head_seq:
            # Every commit gets a tag of its own, which a restored copy of the database has never
            # seen: a device whose cursor points into a commit the hub has no longer learns so.
            out.tag = secrets.token_hex(8)
            db.execute(
                "INSERT INTO commits (tenant_pk, last_seq, tag) VALUES (?, ?, ?)", (pk, out.head, out.tag)
            )
            db.execute(
                "UPDATE tenants SET head_seq = ?, checksum = ?, records_checksum = ?, head_tag = ? WHERE pk = ?",
                (
                    out.head,
                    _signed(state.checksum + plan.checksum_delta),
                    _signed(state.records_checksum + records_delta),
                    out.tag,
                    pk,
                ),
            )
        return out

    def pull(
        self, ctx: DeviceContext, since: int, limit: int, tag: str | None = None, tag_seq: int | None = None
    ) -> PullResponse:
        """Changes after ``since`` (see :meth:`HubStore.pull`)."""
        return _pull_decoder.decode(self.pull_raw(ctx, since, limit, tag, tag_seq))

    def pull_raw(
        self, ctx: DeviceContext, since: int, limit: int, tag: str | None = None, tag_seq: int | None = None
    ) -> bytes:
        """What :meth:`pull` answers, as the exact JSON bytes of a PullResponse."""
        if since < 0 or limit < 1:
            raise InvalidInput(f"since ({since}) must be >= 0 and limit ({limit}) >= 1")
        pk = self._tenant_pk(ctx.tenant_id)
        (head, checksum, purge_seq, head_tag, records_checksum), page = self._pull_page(pk, since, limit + 1)
        if 0 < since < purge_seq:
            raise ResyncRequired(
                f"cursor {since} is behind the purge horizon {purge_seq}",
                hint="pull from 0 and drop what the hub no longer has",
            )
        if since > head:
            raise reset_error(since, head)
        has_more = len(page) > limit
        del page[limit:]
        items = [row[1] for row in page if not row[2]]
        records = [row[1] for row in page if row[2]]
        cursor = page[-1][0] if has_more else head
        # Commits below the snapshot's head never change, so these reads need not share it.
        seq = since if tag_seq is None else tag_seq
        if (tag is not None and seq > 0) or cursor != head:
            with self._read() as db:
                state = TenantState(head, checksum, purge_seq, head_tag, records_checksum)
                self._check_history(db, pk, state, tag, seq)
                cursor_tag = self._tag_at(db, pk, cursor, head, head_tag)
        else:
            cursor_tag = head_tag
        if page:
            detail = {"since": since, "cursor": cursor, "items": len(items), "records": len(records)}
            self._note_pull(ctx, pk, detail)
        elif self._seen_due(ctx.device_id):
            with self._notes_lock:
                self._notes_seen[ctx.device_id] = _now()
            self._start_notes()
        # Byte for byte what msgspec makes of a PullResponse (a test holds it to that).
        if has_more:
            sums = b'null,"records_checksum":null'
        else:
            sums = b'"%s","records_checksum":"%s"' % (
                checksum_hex(checksum).encode(),
                checksum_hex(records_checksum).encode(),
            )
        meta = b'],"cursor":%d,"has_more":%s,"head":%d,"checksum":%s,"tag":%s}' % (
            cursor,
            b"true" if has_more else b"false",
            head,
            sums,
            b"null" if cursor_tag is None else b'"%s"' % cursor_tag.encode(),
        )
        return b"".join((b'{"items":[', b",".join(items), b'],"records":[', b",".join(records), meta))

    def resolve_conflict(
        self, ctx: DeviceContext, record_id: str, resolution: str, clock: str
    ) -> tuple[Record, SyncItem | None]:
        """Close a conflict record, keeping the current version or restoring the kept loser."""
        if resolution not in ("keep", "restore"):
            raise InvalidInput(f"resolution {resolution!r} must be 'keep' or 'restore'")
        if not CANONICAL_STAMP_RE.match(clock):
            raise InvalidInput(f"clock {clock!r} is not a stamp like 2026-11-22T01:36:48.123Z-0000")
        pk, now = self._tenant_pk(ctx.tenant_id), _now()
        with self._write() as db:
            state = self._lock_tenant(db, pk)
            sql = "SELECT wire FROM records WHERE tenant_pk = ? AND id = ? AND kind = 'conflict'"
            row = db.execute(sql, (pk, record_id)).fetchone()
            if row is None:
                raise NotFound(f"no conflict {record_id!r}", hint="list them with GET /v1/conflicts")
            record = _record_decoder.decode(row[0])
            if record.status != "open":
                raise ConflictState(f"conflict {record_id!r} is already {record.status}")
            if resolution == "restore" and ctx.vault_mode == "local_first":
                # The payload is sealed to its entity and version; only a device can re-seal it.
                raise ConflictState(
                    "a local-first tenant's conflict can only be restored on a device",
                    hint="run 'truthvault conflicts resolve ID --restore' there",
                )

            plan, current = MergePlan(), {}
            if resolution == "restore":
                current = self._load_current(db, pk, [record.entity_id])
                # Written by the hub for the device, not as it: the device's own queued edits
                # must not be taken as ones this version was made on (same writer, earlier clock).
                restored = restoration(record, current.get(record.entity_id), f"hub:{ctx.device_id}", clock)
                plan = plan_merge(current, [restored], now)
                if plan.results[0][1] is not Outcome.APPLIED:
                    raise InvalidInput(f"clock {clock} is not later than the current version's")
            decision = Decision(record_id, "resolved", now, resolution)
            event: _EventRow = (
                "CONFLICT_RESOLVED",
                record.entity_id,
                {"record_id": record_id, "resolution": resolution},
            )
            applied = self._apply(db, pk, state, plan, current, [decision], ctx.device_id, now, [event])
            self._announce(db, ctx.tenant_id)
        return applied.records[record_id], applied.entities.get(record.entity_id)

    def purge_tombstones(self, older_than_ms: int, now_ms: int | None = None) -> int:
        """Delete tombstones received before a time (see :meth:`HubStore.purge_tombstones`)."""
        cutoff, now = _iso_ms(older_than_ms), _now() if now_ms is None else _iso_ms(now_ms)
        with self._read() as db:
            tenants = [int(row[0]) for row in db.execute("SELECT pk FROM tenants").fetchall()]
        purged = 0
        for pk in tenants:
            # A tenant at a time under its row lock, like a push: no lock-order deadlock, no long lock.
            with self._write() as db:
                state = self._lock_tenant(db, pk)
                db.execute(
                    "INSERT INTO head_marks (tenant_pk, at, head) VALUES (?, ?, ?)", (pk, now, state.head_seq)
                )
                # Everything up to the head at the latest mark before the cutoff came before it.
                sql = (
                    "SELECT at, head FROM head_marks WHERE tenant_pk = ? AND at <= ? ORDER BY at DESC LIMIT 1"
                )
                mark = db.execute(sql, (pk, cutoff)).fetchone()
                if mark is None:
                    continue
                # Older marks say nothing the latest of them does not.
                db.execute("DELETE FROM head_marks WHERE tenant_pk = ? AND at < ?", (pk, mark[0]))
                sql = f"SELECT max(seq), count(*) FROM entities WHERE tenant_pk = ? AND {_TOMBSTONES}"
                top, count = db.execute(sql, (pk, int(mark[1]))).fetchone()
                if count:
                    db.execute(
                        f"DELETE FROM entities WHERE tenant_pk = ? AND {_TOMBSTONES}", (pk, int(mark[1]))
                    )
                    horizon = max(state.purge_seq, int(top))
                    db.execute("UPDATE tenants SET purge_seq = ? WHERE pk = ?", (horizon, pk))
                    # A cursor behind the horizon re-syncs from 0, so no one asks for these tags.
                    db.execute("DELETE FROM commits WHERE tenant_pk = ? AND last_seq < ?", (pk, horizon))
                    purged += int(count)
        return purged
