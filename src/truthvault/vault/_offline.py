"""Offline governance on the device: what it knows of its own risk (its last sync, the
contracts it is behind), and the items it parks at a sync because a newer major version of
their contract broke the version they were written under (upcast instead when the contracts
declare how: see :mod:`truthvault.kernel._upcast`). Nothing parked is lost: the version stays
in the vault as written, out of the push queue, until the user edits and applies it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import InvalidInput, NotFound
from ..kernel import DeviceStatus, upcast
from ..model import SyncItem
from ._codec import ENTITY_SELECT, Current, current_from_row, encode_payload, payload_of
from ._contracts import VaultContracts
from ._db import VaultDB
from ._refusals import keep_aside

if TYPE_CHECKING:
    from ..kernel import ContractBook
    from ._writes import Writer

__all__ = ["OfflineState", "ParkStats", "Parked"]

_item_decoder = msgspec.json.Decoder(SyncItem)
_encoder = msgspec.json.Encoder()
#: the direction of a parked item in the ``refused`` table (kept apart from push and pull refusals)
PARKED = "parked"


@dataclass(frozen=True, slots=True)
class Parked:
    """An item parked at a sync: its id (for ``parked apply``), what it is and why."""

    id: int
    entity_id: str
    entity_type: str
    contract_version: int
    reason: str
    at: str
    item: str  # its JSON as it was parked


@dataclass(slots=True)
class ParkStats:
    """What one sync's screen of the push queue did."""

    #: entity ids upcast to the newest version of their type (and so pushed)
    upcast: list[str] = field(default_factory=list)
    #: (entity id, why) parked: not pushed, kept here
    parked: list[tuple[str, str]] = field(default_factory=list)


class OfflineState:
    """One vault's offline governance: its own risk's inputs and its parked items."""

    def __init__(self, db: VaultDB, contracts: VaultContracts, writer: Writer) -> None:
        self._db = db
        self._contracts = contracts
        self._writer = writer

    # -- what the device knows of its own risk ------------------------------------------
    def note_synced(self, at: float | None = None) -> None:
        """A sync ended at ``at`` (Unix seconds; now by default)."""
        with self._db.tx():
            self._db.set_meta("last_sync_at", repr(time.time() if at is None else at))
        self._db.local_epoch += 1  # the kernel's cached risk is read again

    def note_behind(self, versions: Iterable[tuple[str, int, int]]) -> None:
        """The contract versions (type, version, major) the hub has that this device cannot use
        and that start a newer major version than it writes under (empty: none)."""
        with self._db.tx():
            self._db.set_meta("contracts_behind", json.dumps(sorted(set(versions))))
        self._db.local_epoch += 1

    def behind(self) -> list[tuple[str, int, int]]:
        """What :meth:`note_behind` kept."""
        text = self._db.meta_str("contracts_behind")
        return [(str(t), int(v), int(m)) for t, v, m in json.loads(text)] if text else []

    @property
    def last_sync_at(self) -> float | None:
        """When this device last finished a sync (Unix seconds), None: never."""
        return read_status(self._db).last_sync_at

    def status(self, pending: int = 0) -> DeviceStatus:
        """This device's status as the risk rule sees it (``pending``: its unsynced changes)."""
        return read_status(self._db, pending)

    # -- parking ---------------------------------------------------------------------
    def screen_queue(self) -> ParkStats:
        """Before a push: each queued version written under a contract version a newer major
        version broke is upcast to the newest (when every major on the way declares an
        upcaster, and the result fits) or parked (out of the queue, kept here, with why)."""
        stats = ParkStats()
        book = self._contracts.book()
        if not any(c.major > 1 for c in book.all()):
            return stats  # nothing was ever broken: the common case costs no read of the queue
        with self._db.tx() as conn:
            rows = conn.execute(f"{ENTITY_SELECT} WHERE mutation IS NOT NULL AND deleted = 0").fetchall()
            for cur in map(current_from_row, rows):
                item = cur.item
                newer = book.broken(item.entity_type, item.contract_version)
                if newer is None:
                    continue
                fitted = upcast(book, item.entity_type, item.contract_version, payload_of(item))
                if isinstance(fitted, str):
                    self._park(item, cur.mutation, fitted)
                    stats.parked.append((item.entity_id, fitted))
                    continue
                self._rewrite(cur, fitted[0])
                self._db.add_event(
                    "ITEM_UPCAST",
                    item.entity_id,
                    entity_type=item.entity_type,
                    from_version=item.contract_version,
                    to_version=fitted[1].version,
                )
                stats.upcast.append(item.entity_id)
        return stats

    def _park(self, item: SyncItem, mutation: int | None, reason: str) -> None:
        # as a refused push: the hub does not hold this version, so when another one of the
        # entity arrives and wins, this one is kept here as a record rather than dropped
        self._db.conn.execute(
            "UPDATE entities SET mutation = NULL, hub_known = 0 WHERE entity_id = ? AND mutation = ?",
            (item.entity_id, mutation),
        )
        bare = msgspec.structs.replace(item, mutation=None, kept=False)
        keep_aside(self._db, PARKED, "item", item.entity_id, None, reason, _encoder.encode(bare), mutation)

    def _rewrite(self, cur: Current, payload: dict[str, Any]) -> None:
        """A new version of ``cur`` with ``payload``, made under the newest contract, by the
        same source: the change is mechanical, so the truth level stays the writer's."""
        self._writer.write(
            cur,
            entity_type=cur.item.entity_type,
            entity_id=cur.item.entity_id,
            payload=encode_payload(payload),
            source=cur.item.origin_source,
        )

    def parked(self) -> list[Parked]:
        """The items parked here, newest first."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT id, reason, at, item FROM refused WHERE direction = ? ORDER BY id DESC", (PARKED,)
            ).fetchall()
        found = []
        for rid, reason, at, blob in rows:
            item = _item_decoder.decode(blob)
            found.append(
                Parked(
                    int(rid),
                    item.entity_id,
                    item.entity_type,
                    item.contract_version,
                    reason,
                    at,
                    bytes(blob).decode(errors="replace"),
                )
            )
        return found

    def parked_count(self) -> int:
        with self._db.read() as conn:
            sql = "SELECT count(*) FROM refused WHERE direction = ?"
            return int(conn.execute(sql, (PARKED,)).fetchone()[0])

    def apply_parked(self, parked_id: int) -> str:
        """Bring a parked item back: ``"applied"`` (upcast, or as it is when it fits the newest
        version of its contract: queued for the hub), or ``"superseded"`` (the entity was edited
        since, and the edit went the usual way); either way the note is dropped. InvalidInput
        naming the field when it still does not fit: edit it first."""
        with self._db.tx() as conn:
            row = conn.execute(
                "SELECT item FROM refused WHERE id = ? AND direction = ?", (parked_id, PARKED)
            ).fetchone()
            if row is None:
                raise NotFound(f"no parked item {parked_id}", hint="'truthvault parked' lists them")
            item = _item_decoder.decode(row[0])
            cur = self._db.current(item.entity_id)
            same = cur is not None and (cur.item.last_modified_at, cur.item.device_id) == (
                item.last_modified_at,
                item.device_id,
            )
            outcome = "superseded"
            if same and cur is not None and not cur.item.deleted:
                payload = _fit(self._contracts.book(), item)
                if isinstance(payload, str):
                    raise InvalidInput(
                        payload,
                        hint=f"edit it to fit ('truthvault edit {item.entity_id} ...'), "
                        f"then 'truthvault parked apply {parked_id}'",
                    )
                self._rewrite(cur, payload)
                outcome = "applied"
            conn.execute("DELETE FROM refused WHERE id = ?", (parked_id,))
            self._db.add_event("PARKED_APPLIED", item.entity_id, outcome=outcome)
            return outcome


def read_status(db: VaultDB, pending: int = 0) -> DeviceStatus:
    """A vault's status as the risk rule sees it, from its meta (``pending``: as given)."""
    last, behind = db.meta_str("last_sync_at"), db.meta_str("contracts_behind")
    said = tuple(
        f"{t} v{v} (major {m}) cannot be used by this truthvault: update it, then sync"
        for t, v, m in (json.loads(behind) if behind else ())
    )
    return DeviceStatus(float(last) if last else None, pending, said)


def _fit(book: ContractBook, item: SyncItem) -> dict[str, Any] | str:
    """The payload of a parked item made to fit the newest version of its type (upcast, or as
    it is when it already fits), or why it does not (naming the field)."""
    data = payload_of(item)
    fitted = upcast(book, item.entity_type, item.contract_version, data)
    if not isinstance(fitted, str):
        return fitted[0]
    current = book.current(item.entity_type)
    reason = None if current is None else current.refusal(data)
    if reason is None:
        return data
    return f"{fitted}; as it is: {reason}" if "no upcaster" in fitted else fitted
