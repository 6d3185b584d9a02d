"""What both hub stores share: push, pull, conflicts and admin over a few database primitives.

The SQL here is portable (SQLite and PostgreSQL) and written with ``?`` placeholders; the
PostgreSQL adapter rewrites them. A backend supplies connections, transactions and the bulk
write of a push (``_upsert_entities``), and may override its bulk read (``_load_current``).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Protocol

import msgspec

from ..clock import CANONICAL_STAMP_RE, format_stamp
from ..crypto import fingerprint
from ..errors import ConflictState, DeviceRevoked, HubReset, InvalidInput, NotFound, ResyncRequired
from ..intake import prepare_items, sort_out
from ..merge import Loss, MergePlan, plan_merge
from ..model import (
    Decision,
    OriginStep,
    PullResponse,
    PushRequest,
    PushResponse,
    PushResult,
    Record,
    SyncItem,
    checksum_hex,
    describe_item,
    encode,
    record_digest,
)
from ..truth import Outcome, TruthLevel, origin_step
from ._auth import AuthMixin, check_bearer, check_name
from ._keys import KeysMixin
from .store import SYNC_EVENT_TYPES, VAULT_MODES, Device, DeviceContext, Event, Limits, Tenant

__all__ = [
    "ENTITY_COLUMNS",
    "ENTITY_UPSERT_SET",
    "TENANT_COUNTERS",
    "BaseHubStore",
    "Cursor",
    "Db",
    "EntityWrites",
]

_U64 = 1 << 64
#: Bound parameters per IN (...) chunk: well under every SQLite build's variable limit.
_CHUNK = 500
#: How long a device's last_seen_at may lag before a pull writes it again (pulls are frequent).
_SEEN_EVERY_S = 30.0
_RECORD_KINDS = (None, "suggestion", "conflict")
_RECORD_STATUSES = (None, "open", "accepted", "rejected", "resolved")

_item_decoder = msgspec.json.Decoder(SyncItem)
_encoder = msgspec.json.Encoder()
_record_decoder = msgspec.json.Decoder(Record)
_pull_decoder = msgspec.json.Decoder(PullResponse)
_detail_decoder = msgspec.json.Decoder(dict[str, Any])

# Row columns (before ``wire``) and the getters that read them off a stored item or record.
# An entity row keeps beside its wire form only what queries need: the key, the feed order,
# and the clock and flag of a tombstone purge.
ENTITY_COLUMNS = "entity_id, seq, last_modified_at, deleted"
#: the SET list of an entity upsert: every column but the key, from the incoming row
ENTITY_UPSERT_SET = ", ".join(f"{c} = excluded.{c}" for c in [*ENTITY_COLUMNS.split(", ")[1:], "wire"])
_RECORD_COLUMNS = "id, kind, entity_id, entity_type, status, created_at, decided_at, resolution, seq"
_record_fields = attrgetter(*_RECORD_COLUMNS.split(", "))
_decision_fields = attrgetter("status", "decided_at", "resolution", "seq")

log = logging.getLogger("truthvault.hub")
#: how often noted pull events are written
_NOTES_EVERY_S = 0.5

_INSERT_EVENTS = (
    "INSERT INTO sync_events (tenant_pk, type, at, device_id, entity_id, detail) VALUES (?, ?, ?, ?, ?, ?)"
)
#: the tombstones up to a sequence number (ix_entities_tombstone_seq)
_TOMBSTONES = "deleted AND seq <= ?"

#: A tenant's counters (a push locks the row with the backend's lock clause appended).
TENANT_COUNTERS = "SELECT head_seq, checksum, purge_seq, head_tag, records_checksum FROM tenants WHERE pk = ?"
#: The tag of the commit a cursor points into: the first commit that reached it.
_TAG_AT = "SELECT tag FROM commits WHERE tenant_pk = ? AND last_seq >= ? ORDER BY last_seq LIMIT 1"

#: An event to write: (type, entity id, detail).
_EventRow = tuple[str, str | None, dict[str, object]]


class Cursor(Protocol):
    """The part of a DB-API cursor the stores use."""

    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class Db(Protocol):
    """A connection inside a transaction (or in autocommit for single reads)."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...


@dataclass(slots=True)
class TenantState:
    """A tenant's sync counters, as read (and, in a write, locked) at the start of a transaction."""

    head_seq: int
    checksum: int  # unsigned, modulo 2**64
    purge_seq: int
    head_tag: str | None  # the tag of the commit that wrote head_seq (None while empty)
    records_checksum: int  # unsigned, modulo 2**64


@dataclass(slots=True)
class EntityWrites:
    """New current versions of entities, a column each (``ENTITY_COLUMNS``, then ``wire``)."""

    ids: list[str]
    seqs: Sequence[int]
    clocks: list[str]
    deleted: list[bool]
    wires: list[bytes]

    def rows(self) -> Iterator[tuple[str, int, str, bool, bytes]]:
        return zip(self.ids, self.seqs, self.clocks, self.deleted, self.wires, strict=True)

    def split(self, existing: Container[str]) -> tuple[EntityWrites, EntityWrites]:
        """(those whose id is not in ``existing``, those whose id is)."""
        if not existing:
            return self, EntityWrites.of([])
        rows = list(self.rows())
        return (
            EntityWrites.of([row for row in rows if row[0] not in existing]),
            EntityWrites.of([row for row in rows if row[0] in existing]),
        )

    @classmethod
    def of(cls, rows: list[tuple[str, int, str, bool, bytes]]) -> EntityWrites:
        if not rows:
            return cls([], [], [], [], [])
        ids, seqs, clocks, deleted, wires = zip(*rows, strict=True)
        return cls(list(ids), list(seqs), list(clocks), list(deleted), list(wires))


@dataclass(slots=True)
class _Applied:
    """What :meth:`BaseHubStore._apply` wrote, with the sequence numbers it gave."""

    head: int
    entities: dict[str, SyncItem] = field(default_factory=dict)
    records: dict[str, Record] = field(default_factory=dict)
    tag: str | None = None


def _iso_ms(ms: int) -> str:
    """Milliseconds since the epoch as ``2026-11-22T01:36:48.123Z``."""
    return format_stamp(ms)[:-5]


def _now() -> str:
    return _iso_ms(time.time_ns() // 1_000_000)


def _signed(checksum: int) -> int:
    """A checksum modulo 2**64 as the signed 64-bit integer the database stores."""
    checksum %= _U64
    return checksum - _U64 if checksum >= 1 << 63 else checksum


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _select_in(db: Db, select: str, pk: int, column: str, values: Sequence[str]) -> list[Any]:
    """Rows of ``select ... WHERE tenant_pk = pk AND column IN values``, in chunks."""
    rows: list[Any] = []
    for start in range(0, len(values), _CHUNK):
        chunk = values[start : start + _CHUNK]
        sql = f"{select} WHERE tenant_pk = ? AND {column} IN ({','.join('?' * len(chunk))})"
        rows += db.execute(sql, (pk, *chunk)).fetchall()
    return rows


class BaseHubStore(AuthMixin, KeysMixin, ABC):
    """A hub store over a SQL database; subclasses supply connections and transactions."""

    backend: str
    #: appended to the tenant-row SELECT of a write: the lock that serialises a tenant's writes
    _lock_clause: str = ""
    #: what the driver raises for a violated unique constraint
    _integrity_errors: tuple[type[Exception], ...] = ()

    def __init__(self) -> None:
        self._tenant_pks: dict[str, int] = {}
        self._seen: dict[str, float] = {}
        self._seen_lock = threading.Lock()
        # Pull events and last-seen times are noted in memory and written in the background,
        # so a pull is a pure read (one-change pulls stay well under 2 ms). A crash loses at
        # most the last half second of SYNC_PULL events, never sync data.
        self._notes: list[tuple[int, str, str, str, str | None, str]] = []
        self._notes_seen: dict[str, str] = {}
        self._notes_lock = threading.Lock()
        self._notes_wake = threading.Event()
        self._notes_stop = False
        self._notes_thread: threading.Thread | None = None

    def _start_notes(self) -> None:
        if self._notes_thread is None:
            self._notes_thread = threading.Thread(
                target=self._notes_loop, name="truthvault-notes", daemon=True
            )
            self._notes_thread.start()

    def _notes_loop(self) -> None:
        while not self._notes_stop:
            self._notes_wake.wait(_NOTES_EVERY_S)
            self._notes_wake.clear()
            try:
                self.flush_notes()
            except Exception:  # the next round retries; a hub must not die for a note
                log.warning("could not write pull events", exc_info=True)

    def flush_notes(self) -> None:
        """Write the pull events and last-seen times noted so far."""
        with self._notes_lock:
            notes, self._notes = self._notes, []
            seen, self._notes_seen = self._notes_seen, {}
        if not notes and not seen:
            return
        with self._write_note() as db:
            if notes:
                db.executemany(_INSERT_EVENTS, notes)
            if seen:
                db.executemany(
                    "UPDATE devices SET last_seen_at = ? WHERE id = ?", [(at, d) for d, at in seen.items()]
                )

    def _stop_notes(self) -> None:
        """Write what is noted and stop the background writer (from close())."""
        self._notes_stop = True
        self._notes_wake.set()
        if self._notes_thread is not None:
            self._notes_thread.join(5)
        self.flush_notes()

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    @abstractmethod
    def _write(self) -> AbstractContextManager[Db]:
        """A write transaction, committed when the block ends (rolled back on an error)."""

    def _write_note(self) -> AbstractContextManager[Db]:
        """A small write whose statements need no answer and whose loss in a crash would not
        matter (a pull's event, a last_seen_at); a backend may batch it and skip the flush."""
        return self._write()

    @abstractmethod
    def _read(self) -> AbstractContextManager[Db]:
        """A connection for single-statement reads."""

    @abstractmethod
    def _pull_page(
        self, pk: int, since: int, n: int
    ) -> tuple[tuple[int, int, int, str | None, int], list[tuple[int, bytes, int]]]:
        """From one snapshot: the tenant's (head_seq, checksum, purge_seq, head_tag,
        records_checksum) and its first ``n`` changes after ``since`` as (seq, wire, 1 for a
        record else 0), in sequence order."""

    def _load_current(self, db: Db, pk: int, entity_ids: Sequence[str]) -> dict[str, SyncItem]:
        """The current versions of the given entities (those that exist)."""
        items = [
            _item_decoder.decode(r[0])
            for r in _select_in(db, "SELECT wire FROM entities", pk, "entity_id", entity_ids)
        ]
        return {item.entity_id: item for item in items}

    @abstractmethod
    def _upsert_entities(self, db: Db, pk: int, writes: EntityWrites, existing: Container[str]) -> None:
        """Write new current versions. ``existing`` holds the ids that have a row: under the
        tenant's lock, the others have none, so they can be plain inserts (cheaper than an
        upsert that finds no row)."""

    # -- admin -------------------------------------------------------------------
    def add_tenant(self, name: str, vault_mode: str) -> Tenant:
        """Create a tenant; ConflictState if the name is taken, InvalidInput for a bad mode."""
        check_name("tenant name", name)
        if vault_mode not in VAULT_MODES:
            raise InvalidInput(f"vault_mode {vault_mode!r} is not one of {', '.join(VAULT_MODES)}")
        tenant = Tenant(str(uuid.uuid4()), name, vault_mode, _now())
        try:
            with self._write() as db:
                db.execute(
                    "INSERT INTO tenants (id, name, vault_mode, created_at) VALUES (?, ?, ?, ?)",
                    (tenant.id, name, vault_mode, tenant.created_at),
                )
        except self._integrity_errors:
            raise ConflictState(f"tenant {name!r} already exists") from None
        return tenant

    def get_tenant(self, name: str) -> Tenant:
        """A tenant by name; NotFound if there is none."""
        with self._read() as db:
            sql = "SELECT id, name, vault_mode, created_at FROM tenants WHERE name = ?"
            row = db.execute(sql, (name,)).fetchone()
        if row is None:
            raise NotFound(f"no tenant {name!r}", hint="list them with: truthvault hub tenant list")
        return Tenant(*row)

    def list_tenants(self) -> list[Tenant]:
        """All tenants, by name."""
        with self._read() as db:
            rows = db.execute("SELECT id, name, vault_mode, created_at FROM tenants ORDER BY name").fetchall()
        return [Tenant(*row) for row in rows]

    def add_device(self, tenant_name: str, device_name: str) -> tuple[Device, str]:
        """Register a device; return it with its bearer token (shown once, stored hashed)."""
        check_name("device name", device_name)
        tenant = self.get_tenant(tenant_name)
        token = secrets.token_urlsafe(32)
        device = Device(str(uuid.uuid4()), tenant.id, device_name, _now(), None, 0)
        try:
            with self._write() as db:
                db.execute(
                    "INSERT INTO devices (id, tenant_pk, name, token_hash, created_at) "
                    "VALUES (?, (SELECT pk FROM tenants WHERE id = ?), ?, ?, ?)",
                    (device.id, tenant.id, device_name, _token_hash(token), device.created_at),
                )
        except self._integrity_errors:
            raise ConflictState(f"tenant {tenant_name!r} already has a device {device_name!r}") from None
        return device, token

    def list_devices(self, tenant_name: str) -> list[Device]:
        """A tenant's devices, by name."""
        tenant = self.get_tenant(tenant_name)
        with self._read() as db:
            rows = db.execute(
                "SELECT d.id, d.name, d.created_at, d.last_seen_at, d.last_mutation, d.revoked, d.sign_public "
                "FROM devices d "
                "JOIN tenants t ON t.pk = d.tenant_pk WHERE t.id = ? ORDER BY d.name",
                (tenant.id,),
            ).fetchall()
        return [
            Device(
                r[0], tenant.id, r[1], r[2], r[3], int(r[4]), bool(r[5]), fingerprint(r[6]) if r[6] else None
            )
            for r in rows
        ]

    def authenticate(self, token: str) -> DeviceContext:
        """The device a bearer token belongs to (see :meth:`HubStore.authenticate`)."""
        return check_bearer(self.token_holder(token), time.time())

    def head(self, tenant_id: str) -> int:
        """The tenant's latest sequence number (0 when empty)."""
        with self._read() as db:
            row = db.execute("SELECT head_seq FROM tenants WHERE pk = ?", (self._tenant_pk(tenant_id),))
            return int(row.fetchone()[0])

    def _tenant_pk(self, tenant_id: str) -> int:
        pk = self._tenant_pks.get(tenant_id)
        if pk is None:
            with self._read() as db:
                row = db.execute("SELECT pk FROM tenants WHERE id = ?", (tenant_id,)).fetchone()
            if row is None:
                raise NotFound(f"no tenant with id {tenant_id!r}")
            # A tenant's key never changes, so the mapping is kept for the store's life.
            pk = self._tenant_pks[tenant_id] = int(row[0])
        return pk

    def events(
        self,
        tenant_id: str,
        since: int = 0,
        limit: int = 100,
        type: str | None = None,
        newest_first: bool = False,
    ) -> list[Event]:
        """The tenant's events after id ``since``, oldest (or newest) first, with device names."""
        if type is not None:
            type = type.upper()
            if type not in SYNC_EVENT_TYPES:
                raise InvalidInput(f"type: unknown event type {type!r}; known: {', '.join(SYNC_EVENT_TYPES)}")
        self.flush_notes()
        sql = (
            "SELECT e.id, e.type, e.at, e.device_id, e.entity_id, e.detail, d.name FROM sync_events e "
            "LEFT JOIN devices d ON d.id = e.device_id AND d.tenant_pk = e.tenant_pk "
            "WHERE e.tenant_pk = ? AND e.id > ?"
        )
        params: list[object] = [self._tenant_pk(tenant_id), since]
        if type is not None:
            sql += " AND e.type = ?"
            params.append(type)
        order = " ORDER BY e.id DESC" if newest_first else " ORDER BY e.id"
        with self._read() as db:
            rows = db.execute(sql + order + " LIMIT ?", (*params, limit)).fetchall()
        return [Event(int(r[0]), r[1], r[2], r[3], r[4], _detail_decoder.decode(r[5]), r[6]) for r in rows]

    def list_records(
        self, ctx: DeviceContext, kind: str | None = None, status: str | None = "open", limit: int = 1000
    ) -> list[Record]:
        """The tenant's suggestions and conflict records, newest first."""
        if kind not in _RECORD_KINDS or status not in _RECORD_STATUSES:
            raise InvalidInput(f"no records of kind {kind!r} with status {status!r}")
        sql = "SELECT wire FROM records WHERE tenant_pk = ?"
        params: list[object] = [self._tenant_pk(ctx.tenant_id)]
        for column, value in (("kind", kind), ("status", status)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        with self._read() as db:
            rows = db.execute(sql + " ORDER BY seq DESC LIMIT ?", (*params, limit)).fetchall()
        return [_record_decoder.decode(row[0]) for row in rows]

    # -- sync --------------------------------------------------------------------
    def push(self, ctx: DeviceContext, request: PushRequest, limits: Limits, now_ms: int) -> PushResponse:
        """Apply a batch atomically and idempotently (see :meth:`HubStore.push`)."""
        items = _checked_items(ctx, request, limits, now_ms)
        # A base only helps accepting a suggestion: one that fails a check is dropped, not the batch.
        bases, _ = sort_out(
            request.bases,
            "bases",
            tenant_id=ctx.tenant_id,
            max_payload_bytes=limits.max_payload_bytes,
            max_clock=_max_clock(limits, now_ms),
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
                raise _reset(request.cursor, state.head_seq)
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

    def _announce(self, db: Db, tenant_id: str) -> None:
        """Tell other hub processes, at commit, that a tenant changed (see :meth:`watch`)."""

    def watch(self, on_change: Callable[[str], None]) -> Callable[[], None]:
        """Call ``on_change(tenant_id)`` when another hub process commits a change to a
        tenant; return a function that stops watching. One process owns a SQLite hub, so
        by default there is nothing to watch."""
        del on_change
        return lambda: None

    def _lock_tenant(self, db: Db, pk: int) -> TenantState:
        head, checksum, purge_seq, tag, records = db.execute(
            TENANT_COUNTERS + self._lock_clause, (pk,)
        ).fetchone()
        return TenantState(int(head), int(checksum) % _U64, int(purge_seq), tag, int(records) % _U64)

    def _check_history(self, db: Db, pk: int, state: TenantState, tag: str | None, seq: int) -> None:
        """HubReset unless ``tag`` (given for sequence number ``seq``) is the tag of the commit
        ``seq`` belongs to here: else this is not the history the device has seen."""
        if tag is None or not seq:
            return
        if seq > state.head_seq:
            raise _reset(seq, state.head_seq)
        if self._tag_at(db, pk, seq, state.head_seq, state.head_tag) != tag:
            raise _other_history(seq)

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
        new = {rid: _kept(loss, bases, current) for rid, loss in losses.items() if rid not in known}
        events += [_loss_event(losses[rid], record) for rid, record in new.items()]
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
            raise _reset(since, head)
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

    def _note_pull(self, ctx: DeviceContext, pk: int, detail: Mapping[str, object]) -> None:
        now = _now()
        with self._notes_lock:
            self._notes.append((pk, "SYNC_PULL", now, ctx.device_id, None, encode(detail).decode()))
            if self._seen_due(ctx.device_id):
                self._notes_seen[ctx.device_id] = now
        self._start_notes()

    def _seen_due(self, device_id: str) -> bool:
        """True (and noted) when a device's last_seen_at is due to be written again."""
        now = time.monotonic()
        with self._seen_lock:
            if now - self._seen.get(device_id, -_SEEN_EVERY_S) < _SEEN_EVERY_S:
                return False
            self._seen[device_id] = now
            return True

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
                restored = _restoration(record, current.get(record.entity_id), f"hub:{ctx.device_id}", clock)
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


def _other_history(cursor: int) -> HubReset:
    return HubReset(
        f"cursor {cursor} points into a history the hub no longer has (its database was restored "
        "or replaced, then took other changes)",
        hint="pull from 0, then send the hub what it lacks",
    )


def _reset(cursor: int, head: int) -> HubReset:
    return HubReset(
        f"cursor {cursor} is ahead of the hub's last change {head}: the hub lost changes "
        "(its database was restored or replaced)",
        hint="pull from 0, then send the hub what it lacks",
    )


def _checked_items(ctx: DeviceContext, request: PushRequest, limits: Limits, now_ms: int) -> list[SyncItem]:
    """Check a whole batch before anything is written; the first bad item refuses it."""
    items = request.items
    if len(items) > limits.max_batch_items:
        raise InvalidInput(f"items: {len(items)} items is over the limit of {limits.max_batch_items}")
    mutations = [item.mutation for item in items]
    bad = _first_bad_mutation(mutations)
    # A device may relay versions another device wrote (an import, a restore): the version's
    # device_id names its writer, idempotency is per pushing device.
    prepare_items(
        items[:bad],
        tenant_id=ctx.tenant_id,
        max_payload_bytes=limits.max_payload_bytes,
        max_clock=_max_clock(limits, now_ms),
    )
    if bad < len(items):  # the items before it are good, so this is the first error
        if mutations[bad] is None:
            raise InvalidInput(f"items[{bad}].mutation: missing (every pushed item needs one)").for_item(
                bad, describe_item(items[bad])
            )
        raise InvalidInput(
            f"items[{bad}].mutation: {mutations[bad]} is not above the previous item's {mutations[bad - 1]}"
        ).for_item(bad, describe_item(items[bad]))
    return items


def _max_clock(limits: Limits, now_ms: int) -> str:
    """The latest clock a push may carry now."""
    return format_stamp(now_ms + limits.max_future_skew_ms, 0xFFFF)


def _first_bad_mutation(mutations: list[int | None]) -> int:
    """The index of the first missing or not strictly increasing mutation (len when none is)."""
    previous = -1
    for i, mutation in enumerate(mutations):
        if mutation is None or mutation <= previous:
            return i
        previous = mutation
    return len(mutations)


def _kept(loss: Loss, bases: Sequence[SyncItem], current: Mapping[str, SyncItem]) -> Record:
    """The record to store for a loss: its item as the device sent it, without push/pull numbers,
    and for a suggestion the version it was made on when that is known (see :func:`_base_of`)."""
    base = _base_of(loss, bases, current)
    return msgspec.structs.replace(
        loss.record,
        item=_bare(loss.record.item),
        base=None if base is None else _bare(base),
    )


def _bare(item: SyncItem) -> SyncItem:
    return msgspec.structs.replace(item, mutation=None, seq=None, kept=False)


def _base_of(loss: Loss, bases: Sequence[SyncItem], current: Mapping[str, SyncItem]) -> SyncItem | None:
    """The version a lost suggestion was made on: the version it lost to or the hub's current
    one, whichever is that version, else one the pushing device sent beside it (None: unknown).
    The hub's own copies come first: a device could send a forged one of the same number."""
    item = loss.record.item
    if loss.kind != "suggestion" or item.base_clock is None:
        return None
    for candidate in (loss.winner, current.get(item.entity_id), *bases):
        if (
            candidate is not None
            and candidate.entity_id == item.entity_id
            and candidate.version == item.base_version
            and candidate.last_modified_at == item.base_clock
            and not candidate.deleted
        ):
            return candidate
    return None


def _loss_event(loss: Loss, record: Record) -> _EventRow:
    """CONFLICT_DETECTED for a kept U1 loser, AI_SUGGESTION_GENERATED for a kept suggestion."""
    item, winner = record.item, loss.winner
    if record.kind == "conflict":
        sides = {"loser": {"clock": item.last_modified_at, "device_id": item.device_id}}
        if winner is not None:
            sides["winner"] = {"clock": winner.last_modified_at, "device_id": winner.device_id}
        return ("CONFLICT_DETECTED", record.entity_id, {"record_id": record.id, **sides})
    detail = {"record_id": record.id, "level": item.truth_level, "source": item.origin_source}
    return ("AI_SUGGESTION_GENERATED", record.entity_id, detail)


def _restoration(record: Record, current: SyncItem | None, device_id: str, clock: str) -> SyncItem:
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
