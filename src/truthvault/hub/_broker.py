"""The hub's side of the input broker: each tenant's requests and PIN as rows of the hub's
database (SQLite or PostgreSQL), and what devices sync of them.

Every change to a tenant's request takes the tenant's next broker change number (``seq``),
under the tenant row's lock, so that a device fetching "changed since N" never misses one.
The hub keeps no form values and no secret: only that they were provided. It relays a
decision's seal (see :mod:`truthvault.kernel._approval_seal`) and keeps the sealed fields as the
deciding device gave them; it cannot make one. A request that needs approvals from several
devices keeps each device's approval with its seal: a device adds only its own (named by the
device it authenticated as), never removes another's, and the change number moves with each. Its own broker (actions decided at the hub) has
no sealer: it holds no tenant key.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from ..errors import ConflictState, Forbidden, InvalidInput, InvalidSource, NotFound
from ..kernel import (
    REQUEST_COLUMNS,
    Actor,
    Approval,
    BrokerRequest,
    BrokerSettings,
    InputBroker,
    PinRecord,
    ValidationFailed,
    approvals_json,
    request_from_row,
    request_row,
)
from ..truth import TruthLevel, level_of_source
from ._sql import Db, SqlDatabase
from .store import DeviceContext

__all__ = ["HubBroker", "TenantBrokerStore"]

_COLUMNS = REQUEST_COLUMNS
_SETS = ", ".join(f"{c} = ?" for c in _COLUMNS.split(", ")[1:])
_MARKS = ", ".join("?" * (_COLUMNS.count(",") + 3))  # the tenant, its change number, the columns
#: what a request never changes once asked: a device sending other values is refused
_FIXED = ("kind", "action", "risk", "source", "device_id", "input_hash", "needed")


def _row(request: BrokerRequest) -> tuple[Any, ...]:
    return request_row(request)


def _request(row: Sequence[Any], tenant_id: str) -> BrokerRequest:
    return request_from_row(row, tenant_id)


class TenantBrokerStore:
    """One tenant's broker requests and PIN in the hub's database (the kernel's BrokerStore)."""

    def __init__(self, database: SqlDatabase, tenant_id: str) -> None:
        self._db = database
        self.tenant_id = tenant_id
        self.pk = database.tenant_pk(tenant_id)

    def _next_seq(self, db: Db) -> int:
        # the tenant row's lock serialises the tenant's broker writes: numbers commit in order
        db.execute("SELECT pk FROM tenants WHERE pk = ?" + self._db.lock_clause, (self.pk,))
        row = db.execute("SELECT coalesce(max(seq), 0) FROM broker_requests WHERE tenant_pk = ?", (self.pk,))
        return int(row.fetchone()[0]) + 1

    def insert(self, request: BrokerRequest) -> None:
        try:
            with self._db.write() as db:
                db.execute(
                    f"INSERT INTO broker_requests (tenant_pk, seq, {_COLUMNS}) VALUES ({_MARKS})",
                    (self.pk, self._next_seq(db), *_row(request)),
                )
        except self._db.integrity_errors:
            raise ConflictState(f"a request {request.id!r} exists already") from None

    def get(self, request_id: str) -> BrokerRequest | None:
        with self._db.read() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM broker_requests WHERE tenant_pk = ? AND id = ?",
                (self.pk, request_id),
            ).fetchone()
        return None if row is None else _request(row, self.tenant_id)

    def update(
        self, request: BrokerRequest, *, expect: str, approvals: Sequence[Approval] | None = None
    ) -> bool:
        where, args = "tenant_pk = ? AND id = ? AND status = ?", [self.pk, request.id, expect]
        if approvals is not None:  # no other device's approval came in meanwhile
            where += " AND approvals = ?"
            args.append(approvals_json(approvals))
        with self._db.write() as db:
            seq = self._next_seq(db)
            found = db.execute(
                f"UPDATE broker_requests SET {_SETS}, seq = ? WHERE {where} RETURNING id",
                (*_row(request)[1:], seq, *args),
            ).fetchone()
        return found is not None

    def requests(self, *, status: str | None = None, limit: int = 1000) -> list[BrokerRequest]:
        sql, args = f"SELECT {_COLUMNS} FROM broker_requests WHERE tenant_pk = ?", list[Any]([self.pk])
        if status is not None:
            sql += " AND status = ?"
            args.append(status)
        with self._db.read() as db:
            rows = db.execute(sql + " ORDER BY created_at DESC LIMIT ?", (*args, limit)).fetchall()
        return [_request(r, self.tenant_id) for r in rows]

    def changes(self, since: int, limit: int) -> list[tuple[int, BrokerRequest]]:
        """The requests changed after change number ``since``, in order, with their numbers."""
        with self._db.read() as db:
            rows = db.execute(
                f"SELECT seq, {_COLUMNS} FROM broker_requests WHERE tenant_pk = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (self.pk, since, limit),
            ).fetchall()
        return [(int(r[0]), _request(r[1:], self.tenant_id)) for r in rows]

    def pin(self) -> PinRecord | None:
        with self._db.read() as db:
            row = db.execute(
                "SELECT hash, salt, n, r, p, failures, locked_until, set_at FROM broker_pins WHERE tenant_pk = ?",
                (self.pk,),
            ).fetchone()
        return None if row is None else PinRecord(*row)

    def save_pin(self, record: PinRecord) -> None:
        with self._db.write() as db:
            db.execute(
                "INSERT INTO broker_pins (tenant_pk, hash, salt, n, r, p, failures, locked_until, set_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant_pk) DO UPDATE SET hash = excluded.hash, "
                "salt = excluded.salt, n = excluded.n, r = excluded.r, p = excluded.p, "
                "failures = excluded.failures, locked_until = excluded.locked_until, set_at = excluded.set_at",
                (self.pk, record.hash, record.salt, record.n, record.r, record.p, record.failures,
                 record.locked_until, record.set_at),
            )  # fmt: skip


class HubBroker:
    """The tenants' brokers at the hub, and what devices sync of their requests."""

    def __init__(self, database: SqlDatabase, settings: BrokerSettings | None = None) -> None:
        self._db = database
        self.settings = settings or BrokerSettings()

    def store(self, tenant_id: str) -> TenantBrokerStore:
        """The tenant's store (NotFound for an unknown tenant)."""
        return TenantBrokerStore(self._db, tenant_id)

    def broker(self, tenant_id: str) -> InputBroker:
        """The tenant's input broker, for what the hub itself asks and decides."""
        return InputBroker(self.store(tenant_id), settings=self.settings, tenant_id=tenant_id)

    def changes(self, ctx: DeviceContext, since: int, limit: int) -> list[tuple[int, BrokerRequest]]:
        """The tenant's requests changed after ``since`` (see TenantBrokerStore.changes)."""
        return self.store(ctx.tenant_id).changes(since, limit)

    def decide(
        self,
        ctx: DeviceContext,
        request_id: str,
        *,
        approve: bool,
        source: str,
        reason: str | None = None,
        decided_at: float | None = None,
        seal: str | None = None,
    ) -> BrokerRequest:
        """A decision taken on device ``ctx`` as ``source`` (level 1; the device checked the
        PIN a ``pin`` request needs), with the time and seal the device gave it (kept as they
        are: the asking device checks them, the hub cannot). ActionForbidden below level 1,
        ConflictState if it is no longer pending, NotFound for an unknown request."""
        broker = self.broker(ctx.tenant_id)
        request = broker.get(request_id)
        if approve and request.is_input:
            raise InvalidInput("decision: a request for values is answered on the device that holds them")
        if not approve and not (reason or "").strip():
            raise InvalidInput("reason: say why it is denied")
        try:
            actor = Actor(source, ctx.device_id, ctx.tenant_id)
        except InvalidSource as exc:
            raise ValidationFailed(
                f"source: {source[:80]!r} names no truth level", hint=exc.hint, field="source"
            ) from None
        return broker.record_decision(
            request_id,
            actor=actor,
            approved=approve,
            reason=reason,
            decided_at=decided_at if seal else None,
            seal=seal or None,
            device_name=ctx.device_name,
        )

    def post(self, ctx: DeviceContext, requests: Sequence[BrokerRequest]) -> list[BrokerRequest]:
        """Take in a device's requests: new ones it asked, and what became of them there
        (decided, used, expired). Returns the hub's state of each afterwards."""
        store = self.store(ctx.tenant_id)
        return [self._post_one(ctx, store, r.with_(tenant_id=ctx.tenant_id)) for r in requests]

    def _post_one(self, ctx: DeviceContext, store: TenantBrokerStore, theirs: BrokerRequest) -> BrokerRequest:
        theirs.check()
        held = store.get(theirs.id)
        if held is None:
            if theirs.device_id != ctx.device_id:
                raise Forbidden(f"requests.{theirs.id}: a device posts only the requests it asked")
            held = theirs.with_(
                status="pending", decided_by=None, decided_device=None, decided_at=None, deny_reason=None,
                provided=False, seal=None, approvals=(),
            )  # fmt: skip
            try:
                store.insert(held)
            except ConflictState:
                held = store.get(theirs.id) or held  # asked twice at once: the first one stands
        changed = [f for f in _FIXED if getattr(held, f) != getattr(theirs, f)]
        if changed:
            raise ConflictState(f"requests.{theirs.id}: {changed[0]} differs from the request the hub has")
        return self._advance(ctx, store, held, theirs)

    def _advance(
        self, ctx: DeviceContext, store: TenantBrokerStore, held: BrokerRequest, theirs: BrokerRequest
    ) -> BrokerRequest:
        now = time.time()
        if held.is_multi and theirs.status in ("pending", "approved", "used"):
            held = self._own_approval(ctx, held, theirs)
            if theirs.status != "used":
                return held
        elif held.status_at(now) == "pending" and theirs.status == "used" and theirs.decided_by:
            # approved and used there before either reached the hub: the approval comes first
            held = self._advance(ctx, store, held, theirs.with_(status="approved"))
        status = held.status_at(now)
        new: BrokerRequest | None = None
        if status == "pending" and theirs.status in ("approved", "denied"):
            decider = theirs.decided_by or ""
            if level_of_source(decider) is not TruthLevel.USER:
                raise Forbidden(f"requests.{theirs.id}.decided_by: only the user (level 1) decides")
            # an approval is used within its window from now, whatever expiry the device names
            window = (
                self.settings.confirm_window_s if held.kind == "confirm" else self.settings.approved_ttl_s
            )
            expires_at = (
                min(theirs.expires_at, now + window) if theirs.status == "approved" else held.expires_at
            )
            new = held.with_(
                status=theirs.status, decided_by=decider, decided_device=ctx.device_id,
                decided_at=min(theirs.decided_at or now, now), deny_reason=theirs.deny_reason,
                expires_at=expires_at, provided=theirs.provided,
            )  # fmt: skip
            if theirs.seal and theirs.decided_at is not None:
                # sealed by the deciding device: kept as it gave them, or the seal would not check
                new = new.with_(
                    decided_device=theirs.decided_device, decided_at=theirs.decided_at, seal=theirs.seal
                )
        elif status == "approved" and theirs.status == "used" and held.device_id == ctx.device_id:
            new = held.with_(status="used")
        elif status in ("pending", "approved") and theirs.status == "expired":
            new = held.with_(status="expired")
        if new is not None and store.update(new, expect=held.status):
            return new
        return store.get(held.id) or held

    def _own_approval(self, ctx: DeviceContext, held: BrokerRequest, theirs: BrokerRequest) -> BrokerRequest:
        """``held`` with the posting device's own approval from ``theirs`` added, if it carries
        one the hub lacks (another device's approval in it is not taken: each device sends its
        own, so none can drop or stand in for another's)."""
        own = next((a for a in theirs.approvals if a.device == ctx.device_id), None)
        if own is None or any(a.device == ctx.device_id for a in held.approvals):
            return held
        if held.status_at(time.time()) != "pending":
            return held
        try:
            actor = Actor(own.by, ctx.device_id, ctx.tenant_id)
        except InvalidSource:
            actor = None
        if actor is None or actor.level is not TruthLevel.USER:
            raise Forbidden(f"requests.{theirs.id}.approvals: only the user (level 1) approves")
        try:
            return self.broker(ctx.tenant_id).record_decision(
                held.id, actor=actor, approved=True, decided_at=own.at, seal=own.seal,
                device_name=ctx.device_name,
            )  # fmt: skip
        except (ConflictState, NotFound):
            return self.store(ctx.tenant_id).get(held.id) or held  # decided or changed meanwhile
