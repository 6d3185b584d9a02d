"""The hub's entity contracts (see :mod:`truthvault.kernel`): each tenant's versions, which
versions its devices use, and the screen a push passes: for a cloud-first tenant, each item's
payload against the contract version it declares (a local-first payload is ciphertext: its
device checked it before sealing). Portable SQL over :class:`~._sql.SqlDatabase`.
"""

from __future__ import annotations

import builtins
import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import Forbidden, InvalidInput
from ..intake import check_entity_type
from ..kernel import Contract, ContractBook
from ..model import SyncItem, describe_item
from ..truth import TruthLevel, level_of_source
from ._auth import iso_s
from ._sql import Db, SqlDatabase
from .store import DeviceContext

__all__ = ["DeviceReport", "HubContracts"]

#: stands for a version its type does not have (the type has others)
_UNKNOWN = Contract("unknown", 0, 0, {})

#: How long a process trusts the contracts it read of a tenant. Versions are only ever added,
#: and an item declaring one not read yet makes a fresh read, so this only bounds how long a
#: type that just got its first contract stays free-form to another hub process.
_BOOK_TTL_S = 2.0
#: The most (type, version) pairs a device may report.
_MAX_HELD = 1000


@dataclass(frozen=True, slots=True)
class DeviceReport:
    """What a device reports of itself at the end of a sync, besides its contract versions."""

    app_version: str | None = None
    #: its sync before this one, as it says (ISO 8601), None: this is its first
    previous_sync_at: str | None = None
    #: changes it holds that the hub does not: queued, and parked
    pending: int = 0
    parked: int = 0


class HubContracts:
    """Each tenant's contract versions and the versions its devices use."""

    def __init__(self, database: SqlDatabase) -> None:
        self._db = database
        self._lock = threading.Lock()
        self._books: dict[str, tuple[float, ContractBook]] = {}
        #: (tenant, device, type, version) this process knows to be noted in contract_use
        self._seen: set[tuple[str, str, str, int]] = set()

    # -- reading -------------------------------------------------------------------------
    def book(self, tenant_id: str, fresh: bool = False) -> ContractBook:
        """The tenant's contracts (the built-ins and those stored), read at most _BOOK_TTL_S ago."""
        now = time.monotonic()
        cached = self._books.get(tenant_id)
        if cached is not None and not fresh and now - cached[0] < _BOOK_TTL_S:
            return cached[1]
        book = ContractBook(c for _, c in self.list(tenant_id))
        with self._lock:
            self._books[tenant_id] = (now, book)
        return book

    def list(self, tenant_id: str, since: int = 0) -> list[tuple[int, Contract]]:
        """The tenant's stored versions after marker ``since``, with their markers, in order."""
        pk = self._db.tenant_pk(tenant_id)
        with self._db.read() as db:
            rows = db.execute(
                "SELECT id, entity_type, version, major, schema FROM contracts "
                "WHERE tenant_pk = ? AND id > ? ORDER BY id",
                (pk, since),
            ).fetchall()
        return [(int(r[0]), Contract(r[1], int(r[2]), int(r[3]), json.loads(r[4]))) for r in rows]

    def in_use(self, tenant_id: str, entity_type: str | None = None) -> dict[str, dict[int, int]]:
        """Per type, each version active devices write under and how many do."""
        pk = self._db.tenant_pk(tenant_id)
        sql = (
            "SELECT u.entity_type, u.version, count(*) FROM contract_use u JOIN devices d "
            "ON d.id = u.device_id AND d.tenant_pk = u.tenant_pk WHERE u.tenant_pk = ? AND d.revoked = ?"
        )
        args: list[Any] = [pk, False]
        if entity_type is not None:
            sql += " AND u.entity_type = ?"
            args.append(entity_type)
        with self._db.read() as db:
            rows = db.execute(sql + " GROUP BY u.entity_type, u.version", args).fetchall()
        found: dict[str, dict[int, int]] = {}
        for kind, version, devices in rows:
            found.setdefault(kind, {})[int(version)] = int(devices)
        return found

    # -- adding a version ----------------------------------------------------------------
    def add(
        self, ctx: DeviceContext, entity_type: str, schema: Any, *, major: bool = False, source: str
    ) -> tuple[int, Contract]:
        """Add the next version of a type's contract, checked against the newest version and
        every version an active device uses (BreakingChange unless compatible or ``major``);
        only a user source (level 1) adds one. Returns its marker and the version."""
        if level_of_source(source) != TruthLevel.USER:
            raise Forbidden(
                f"only the user (level 1) adds a contract version: {source!r} is not a user source"
            )
        entity_type = check_entity_type(entity_type)
        pk = self._db.tenant_pk(ctx.tenant_id)
        with self._db.write() as db:
            # The tenant row lock serialises two versions of one tenant added at once.
            db.execute("SELECT pk FROM tenants WHERE pk = ?" + self._db.lock_clause, (pk,))
            rows = db.execute(
                "SELECT version, major, schema FROM contracts WHERE tenant_pk = ? AND entity_type = ?",
                (pk, entity_type),
            ).fetchall()
            book = ContractBook(Contract(entity_type, int(v), int(m), json.loads(s)) for v, m, s in rows)
            used = _used(db, pk, entity_type)
            contract = book.propose(entity_type, schema, major=major, in_use=used)
            marker = db.execute(
                "INSERT INTO contracts (tenant_pk, entity_type, version, major, schema, added_at, added_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    pk,
                    entity_type,
                    contract.version,
                    contract.major,
                    contract.canonical,
                    iso_s(time.time()),
                    ctx.device_id,
                ),
            ).fetchone()[0]
        with self._lock:
            self._books.pop(ctx.tenant_id, None)
        return int(marker), contract

    # -- what devices use ----------------------------------------------------------------
    def report(
        self, ctx: DeviceContext, held: Mapping[str, Sequence[int]], status: DeviceReport | None = None
    ) -> int:
        """What a device writes under now (it replaces what was noted of it), and with
        ``status`` what else it reports at sync (its app version, last sync, unsynced changes);
        how many pairs."""
        pairs = sorted(
            {(check_entity_type(t, f"held.{t}"), _version(v, t)) for t, vs in held.items() for v in vs}
        )
        if len(pairs) > _MAX_HELD:
            raise InvalidInput(f"held: {len(pairs)} versions is over the limit of {_MAX_HELD}")
        pk, at = self._db.tenant_pk(ctx.tenant_id), iso_s(time.time())
        with self._db.write() as db:
            db.execute("DELETE FROM contract_use WHERE tenant_pk = ? AND device_id = ?", (pk, ctx.device_id))
            db.executemany(
                "INSERT INTO contract_use (tenant_pk, device_id, entity_type, version, seen_at) VALUES (?, ?, ?, ?, ?)",
                [(pk, ctx.device_id, t, v, at) for t, v in pairs],
            )
            if status is not None:
                db.execute(
                    "DELETE FROM device_reports WHERE tenant_pk = ? AND device_id = ?", (pk, ctx.device_id)
                )
                db.execute(
                    "INSERT INTO device_reports (tenant_pk, device_id, app_version, previous_sync_at, pending, "
                    "parked, reported_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        pk,
                        ctx.device_id,
                        status.app_version,
                        status.previous_sync_at,
                        status.pending,
                        status.parked,
                        at,
                    ),
                )
        with self._lock:
            self._seen = {s for s in self._seen if s[:2] != (ctx.tenant_id, ctx.device_id)}
            self._seen.update((ctx.tenant_id, ctx.device_id, t, v) for t, v in pairs)
        return len(pairs)

    def reports(self, tenant_id: str) -> dict[str, tuple[DeviceReport, str]]:
        """Each device's last report, with when the hub took it, by device id."""
        pk = self._db.tenant_pk(tenant_id)
        with self._db.read() as db:
            rows = db.execute(
                "SELECT device_id, app_version, previous_sync_at, pending, parked, reported_at "
                "FROM device_reports WHERE tenant_pk = ?",
                (pk,),
            ).fetchall()
        return {r[0]: (DeviceReport(r[1], r[2], int(r[3]), int(r[4])), str(r[5])) for r in rows}

    def held_by_device(self, tenant_id: str) -> dict[str, dict[str, builtins.list[int]]]:
        """Per device, the versions of each type it writes under (as reported or pushed)."""
        pk = self._db.tenant_pk(tenant_id)
        with self._db.read() as db:
            rows = db.execute(
                "SELECT device_id, entity_type, version FROM contract_use WHERE tenant_pk = ? "
                "ORDER BY device_id, entity_type, version",
                (pk,),
            ).fetchall()
        found: dict[str, dict[str, builtins.list[int]]] = {}
        for device_id, kind, version in rows:
            found.setdefault(device_id, {}).setdefault(kind, []).append(int(version))
        return found

    def screen(self, ctx: DeviceContext, items: Sequence[SyncItem]) -> dict[int, str]:
        """The items of a push the hub refuses, by index, with why: those written under a
        contract version a newer major version broke (any tenant: the version travels in
        clear), and for a cloud-first tenant those whose payload does not fit the contract
        version they declare (or that declare one the type does not have). Notes the versions
        the pushing device writes under."""
        if not items:
            return {}
        self._note_use(ctx, items)
        cloud = ctx.vault_mode == "cloud_first"
        book, refused = self.book(ctx.tenant_id), {}
        # the version each (type, version) pair is checked against, None when the type is free-form
        found: dict[tuple[str, int], Contract | None] = {}
        broken: dict[tuple[str, int], Contract | None] = {}
        for n, item in enumerate(items):
            if item.deleted:
                continue
            key = (item.entity_type, item.contract_version)
            if key not in found:
                book = self._book_for(ctx.tenant_id, book, key)
                found[key] = book.get(*key) or (book.current(key[0]) and _UNKNOWN)
                broken[key] = book.broken(*key)
            newer = broken[key]
            if newer is not None and not item.kept:  # a kept loser is a record: it applies nothing
                refused[n] = (
                    f"items[{n}] ({describe_item(item)}): contract_version: {key[0]} v{key[1]} was broken "
                    f"by v{newer.version} (major {newer.major}); a current device upcasts or parks it"
                )
                continue
            contract = found[key]
            if not cloud or contract is None or (contract is not _UNKNOWN and contract.accepts(item.payload)):
                continue
            reason = book.refusal(item.entity_type, item.contract_version, bytes(item.payload))
            refused[n] = f"items[{n}] ({describe_item(item)}): {reason}"
        return refused

    def _book_for(self, tenant_id: str, book: ContractBook, key: tuple[str, int]) -> ContractBook:
        """``book``, or the tenant's read again when it lacks the version ``key`` names of a type
        that has contracts (another hub process may have just added it)."""
        if book.get(*key) is None and book.current(key[0]) is not None:
            return self.book(tenant_id, fresh=True)
        return book

    def _note_use(self, ctx: DeviceContext, items: Sequence[SyncItem]) -> None:
        pairs = {(item.entity_type, item.contract_version) for item in items}
        new = [p for p in pairs if (ctx.tenant_id, ctx.device_id, *p) not in self._seen]
        if not new:
            return
        pk, at = self._db.tenant_pk(ctx.tenant_id), iso_s(time.time())
        with self._db.write() as db:
            db.executemany(
                "INSERT INTO contract_use (tenant_pk, device_id, entity_type, version, seen_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_pk, device_id, entity_type, version) DO NOTHING",
                [(pk, ctx.device_id, t, v, at) for t, v in new],
            )
        with self._lock:
            self._seen.update((ctx.tenant_id, ctx.device_id, t, v) for t, v in new)


def _used(db: Db, pk: int, entity_type: str) -> set[int]:
    rows = db.execute(
        "SELECT DISTINCT u.version FROM contract_use u JOIN devices d "
        "ON d.id = u.device_id AND d.tenant_pk = u.tenant_pk "
        "WHERE u.tenant_pk = ? AND u.entity_type = ? AND d.revoked = ?",
        (pk, entity_type, False),
    ).fetchall()
    return {int(r[0]) for r in rows}


def _version(value: object, entity_type: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 2**31 - 1:
        raise InvalidInput(f"held.{entity_type}: {value!r} is not a contract version (an integer >= 1)")
    return value
