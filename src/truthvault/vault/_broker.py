"""The vault's side of the input broker: its requests and the user's PIN as rows of the vault
file (:class:`VaultBrokerStore`, the kernel's ``BrokerStore`` port), and what a sync needs of
them: the requests changed here, and taking in the hub's.

Every write goes through :meth:`VaultDB.tx`, which nests: a ``redeem`` inside an action's
transaction commits or rolls back with the action.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import ConflictState, InvalidSource
from ..kernel import (
    REQUEST_COLUMNS,
    Approval,
    ApprovalSealer,
    BrokerRequest,
    BrokerSettings,
    InputBroker,
    PinRecord,
    approvals_json,
    decision_checks,
    event_detail,
    request_from_row,
    request_row,
    status_rank,
)
from ..truth import TruthLevel, level_of_source
from ._db import VaultDB

__all__ = ["VaultBrokerStore", "vault_broker"]

#: the kernel's columns of a request, then the vault's own: its tenant and a form's values
_COLUMNS = f"{REQUEST_COLUMNS}, tenant_id, form_values"
_KERNEL_COLUMNS = REQUEST_COLUMNS.count(",") + 1
_MARKS = ", ".join("?" * (_KERNEL_COLUMNS + 2))
_SELECT = f"SELECT {_COLUMNS} FROM broker_requests"
_CURSOR = "broker_cursor"


def _row(request: BrokerRequest) -> tuple[Any, ...]:
    values = None if request.values is None else json.dumps(request.values)
    return (*request_row(request), request.tenant_id, values)


def _request(row: Sequence[Any]) -> BrokerRequest:
    n = _KERNEL_COLUMNS  # the kernel's columns come first
    return request_from_row(row[:n], row[n], None if row[n + 1] is None else json.loads(row[n + 1]))


class VaultBrokerStore:
    """The broker's requests and PIN in a vault file; with ``sealer``, a decision from the hub
    whose seal does not check never replaces one this vault holds."""

    def __init__(self, db: VaultDB, sealer: ApprovalSealer | None = None) -> None:
        self._db = db
        self._sealer = sealer

    # -- the BrokerStore port ---------------------------------------------------------
    def insert(self, request: BrokerRequest) -> None:
        try:
            with self._db.tx() as conn:
                conn.execute(
                    f"INSERT INTO broker_requests ({_COLUMNS}, dirty) VALUES ({_MARKS}, 1)", _row(request)
                )
        except sqlite3.IntegrityError:
            raise ConflictState(f"a request {request.id!r} exists already") from None

    def get(self, request_id: str) -> BrokerRequest | None:
        with self._db.read() as conn:
            row = conn.execute(f"{_SELECT} WHERE id = ?", (request_id,)).fetchone()
        return None if row is None else _request(row)

    def update(
        self, request: BrokerRequest, *, expect: str, approvals: Sequence[Approval] | None = None
    ) -> bool:
        sets = ", ".join(f"{c} = ?" for c in _COLUMNS.split(", ")[1:])
        where, args = "id = ? AND status = ?", [request.id, expect]
        if approvals is not None:  # no other device's approval came in meanwhile
            where += " AND approvals = ?"
            args.append(approvals_json(approvals))
        with self._db.tx() as conn:
            cur = conn.execute(
                f"UPDATE broker_requests SET {sets}, dirty = 1 WHERE {where}", (*_row(request)[1:], *args)
            )
            return cur.rowcount == 1

    def requests(self, *, status: str | None = None, limit: int = 1000) -> list[BrokerRequest]:
        sql, args = _SELECT, []
        if status is not None:
            sql += " WHERE status = ?"
            args.append(status)
        with self._db.read() as conn:
            rows = conn.execute(sql + " ORDER BY created_at DESC LIMIT ?", (*args, limit)).fetchall()
        return [_request(r) for r in rows]

    def pin(self) -> PinRecord | None:
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT hash, salt, n, r, p, failures, locked_until, set_at FROM broker_pin WHERE id = 1"
            ).fetchone()
        return None if row is None else PinRecord(*row)

    def save_pin(self, record: PinRecord) -> None:
        with self._db.tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO broker_pin (id, hash, salt, n, r, p, failures, locked_until, set_at) "
                "VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.hash,
                    record.salt,
                    record.n,
                    record.r,
                    record.p,
                    record.failures,
                    record.locked_until,
                    record.set_at,
                ),
            )

    # -- sync --------------------------------------------------------------------------
    def unsent(self) -> list[BrokerRequest]:
        """The requests asked, decided or used here since they last went to the hub, oldest first."""
        with self._db.read() as conn:
            rows = conn.execute(f"{_SELECT} WHERE dirty = 1 ORDER BY created_at").fetchall()
        return [_request(r) for r in rows]

    def mark_sent(self, requests: Iterable[BrokerRequest]) -> None:
        """The hub has these as they were read (a request changed since stays unsent)."""
        with self._db.tx() as conn:
            conn.executemany(
                "UPDATE broker_requests SET dirty = 0 WHERE id = ? AND status = ?",
                [(r.id, r.status) for r in requests],
            )

    def take_in(self, requests: Iterable[BrokerRequest]) -> int:
        """Keep the hub's state of requests: new ones, and decisions on ours. A request changed
        here and not yet sent, or one that has come further here (used), is left as it is, and
        so is a decision held here when the hub's carries no seal that checks. (A decision whose
        seal does not check on a request still pending here is kept as the hub's word, which the
        broker shows refused and never redeems: the key it was sealed under may come later.)
        Returns how many changed."""
        changed = 0
        with self._db.tx() as conn:
            me = self._db.meta_str("device_id")
            for theirs in requests:
                if theirs.status in ("approved", "denied", "used") and not _user_decided(theirs):
                    continue  # only the user decides: a decision by anyone else is no decision
                row = conn.execute(
                    f"SELECT {_COLUMNS}, dirty FROM broker_requests WHERE id = ?", (theirs.id,)
                ).fetchone()
                if row is None:
                    if theirs.device_id == me:
                        continue  # this device knows every request it asked: not one of them
                    conn.execute(
                        f"INSERT INTO broker_requests ({_COLUMNS}, dirty) VALUES ({_MARKS}, 0)",
                        _row(theirs),
                    )
                    changed += 1
                    continue
                mine = _request(row)
                if row[-1] or status_rank(theirs.status) < status_rank(mine.status):
                    continue
                if mine.decided_by is not None and not self._checks(theirs):
                    continue  # the hub's word does not replace a decision taken by the user
                if any(getattr(theirs, f) != getattr(mine, f) for f in _FIXED):
                    continue  # what a request asked for never changes (the hub refuses it too)
                if theirs == mine:
                    continue
                # a form's values stay where they were given
                kept = theirs.with_(values=mine.values, tenant_id=mine.tenant_id)
                sets = ", ".join(f"{c} = ?" for c in _COLUMNS.split(", ")[1:])
                conn.execute(f"UPDATE broker_requests SET {sets} WHERE id = ?", (*_row(kept)[1:], mine.id))
                changed += 1
        return changed

    def _checks(self, request: BrokerRequest) -> bool:
        if request.is_multi:
            return decision_checks(request, self._sealer)
        return self._sealer is None or request.decided_by is None or self._sealer.check(request)

    def cursor(self) -> int:
        """The hub's change number of the last request change taken in."""
        return int(self._db.meta_str(_CURSOR) or 0)

    def set_cursor(self, cursor: int) -> None:
        with self._db.tx():
            self._db.set_meta(_CURSOR, cursor)


#: what a request asked for, the same wherever it is kept: the hub's version of a request held
#: here with other values is not taken in (the reason and targets too: the deciding device seals
#: what the hub showed it, so a decision on another reason or targets than were asked is none)
_FIXED = ("kind", "action", "risk", "source", "device_id", "input_hash", "reason", "targets", "needed")


def _user_decided(request: BrokerRequest) -> bool:
    try:
        return level_of_source(request.decided_by or "") is TruthLevel.USER
    except InvalidSource:
        return False


def vault_broker(db: VaultDB, settings: BrokerSettings | None = None) -> InputBroker:
    """The vault's input broker: requests kept in its file, its events in its event log."""

    def on_event(type_: str, request: BrokerRequest) -> None:
        db.add_event(type_, None, **event_detail(request))

    from ._approval_seal import VaultApprovalSeal

    sealer = VaultApprovalSeal(db)
    return InputBroker(
        VaultBrokerStore(db, sealer),
        settings=settings,
        on_event=on_event,
        tenant_id=lambda: db.meta_str("tenant_id"),
        sealer=sealer,
    )
