"""Rows <-> wire types: how an entity version and a kept record are stored in SQLite."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from typing import Any

import msgspec

from ..errors import InvalidInput
from ..intake import prepare_item
from ..model import OriginStep, Record, SyncItem
from ..payload import check_payload
from ..truth import origin_step

__all__ = [
    "ENTITY_COLUMNS",
    "ENTITY_INSERT",
    "ENTITY_SELECT",
    "MAX_PAYLOAD_BYTES",
    "NO_CLOCK_LIMIT",
    "NO_SIZE_LIMIT",
    "RECORD_COLUMNS",
    "SELECT_COLUMNS",
    "Current",
    "VaultRecord",
    "check_item",
    "current_from_row",
    "decode_record",
    "encode_chain",
    "encode_payload",
    "entity_params",
    "item_from_row",
    "payload_of",
    "step",
]

#: The truth fields of an entity version, in the order of :func:`entity_params`.
ENTITY_COLUMNS = (
    "entity_id",
    "entity_type",
    "tenant_id",
    "payload",
    "truth_level",
    "origin_source",
    "origin_chain",
    "accepted_by_user",
    "last_modified_by_level",
    "version",
    "base_version",
    "base_clock",
    "last_modified_at",
    "device_id",
    "contract_version",
    "deleted",
)
_COLS = ", ".join(ENTITY_COLUMNS)
#: The columns of :data:`ENTITY_SELECT`: the truth fields, then the local bookkeeping.
SELECT_COLUMNS = (*ENTITY_COLUMNS, "mutation", "hub_known", "rowid")
# Qualified, so the same select works joined to the search index.
ENTITY_SELECT = "SELECT " + ", ".join(f"entities.{c}" for c in SELECT_COLUMNS) + " FROM entities"
ENTITY_INSERT = (
    f"INSERT INTO entities ({_COLS}, mutation, hub_known) VALUES ({', '.join('?' * 18)}) "
    "ON CONFLICT (entity_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in (*ENTITY_COLUMNS[1:], "mutation", "hub_known"))
)

_EMPTY_CHAIN = b"[]"
_chain_decoder = msgspec.json.Decoder(tuple[OriginStep, ...])
_item_decoder = msgspec.json.Decoder(SyncItem)
_encoder = msgspec.json.Encoder()


class VaultRecord(Record, omit_defaults=True):
    """A kept loser as the vault holds it: the wire :class:`Record` plus why it was kept."""

    reason: str | None = None


@dataclass(slots=True)
class Current:
    """The stored current version of an entity and its local bookkeeping."""

    item: SyncItem
    mutation: int | None
    hub_known: bool
    rowid: int


def encode_chain(chain: tuple[OriginStep, ...]) -> bytes:
    """The stored JSON of an origin chain."""
    return _encoder.encode(chain) if chain else _EMPTY_CHAIN


def encode_payload(payload: object) -> bytes:
    """A payload dict as JSON bytes; InvalidInput for anything else, and for what no replica
    could take in (see :mod:`truthvault.payload`)."""
    if not isinstance(payload, dict):
        raise InvalidInput(f"payload must be a JSON object, got {type(payload).__name__}")
    try:
        encoded = _encoder.encode(payload)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidInput(f"payload is not JSON-serialisable: {exc}") from None
    if b"null" in encoded and _has_non_finite(payload):
        # msgspec writes NaN and infinities as null: say so rather than store another value
        raise InvalidInput("payload: numbers must be finite (not NaN or infinity)")
    check_payload(encoded, "payload")
    return encoded


def _has_non_finite(value: object) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
        elif isinstance(node, float) and not math.isfinite(node):
            return True
    return False


def payload_of(item: SyncItem) -> dict[str, Any]:
    """The payload of an item as a dict (see :meth:`SyncItem.data`)."""
    return item.data()


def step(item: SyncItem, ref: str | None = None) -> OriginStep:
    """The origin-chain step that names ``item`` as a source of later content."""
    return OriginStep(**origin_step(item.truth_level, item.origin_source, item.last_modified_at, ref))  # type: ignore[arg-type]


#: Same as the hub's default limit: a bigger payload could never be pushed.
MAX_PAYLOAD_BYTES = 1 << 20
#: Later than any real stamp: pulls are not bounded by the hub's skew limit.
NO_CLOCK_LIMIT = "9999-12-31T23:59:59.999Z-ffff"
#: Pulls take what the hub holds; the hub limited the size when the item was pushed.
NO_SIZE_LIMIT = 1 << 62


def check_item(item: SyncItem, where: str, tenant_id: str, max_clock: str) -> SyncItem:
    """Check an item to import exactly as a hub checks a pushed one (so an imported item can
    always be pushed) and apply the upgrade rule: :func:`truthvault.intake.prepare_item` with
    the default hub's size limit and ``max_clock``; ``seq`` and ``mutation`` are dropped (not
    truth fields)."""
    item.seq = item.mutation = None
    item.kept = False
    return prepare_item(
        item,
        where,
        tenant_id=tenant_id,
        device_id=None,
        max_payload_bytes=MAX_PAYLOAD_BYTES,
        max_clock=max_clock,
    )


def entity_params(item: SyncItem, mutation: int | None, hub_known: bool) -> tuple[Any, ...]:
    """The 18 bound values of :data:`ENTITY_INSERT` for one version."""
    return (
        item.entity_id,
        item.entity_type,
        item.tenant_id,
        memoryview(item.payload),
        item.truth_level,
        item.origin_source,
        encode_chain(item.origin_chain),
        int(item.accepted_by_user),
        item.last_modified_by_level,
        item.version,
        item.base_version,
        item.base_clock,
        item.last_modified_at,
        item.device_id,
        item.contract_version,
        int(item.deleted),
        mutation,
        int(hub_known),
    )


def item_from_row(row: sqlite3.Row | tuple[Any, ...]) -> SyncItem:
    """A SyncItem from an :data:`ENTITY_SELECT` row."""
    # Unpacked by name in the order of SELECT_COLUMNS (a test checks the two agree): a
    # sqlite3.Row read by name costs a third more on an export or a big pull.
    (
        entity_id,
        entity_type,
        tenant_id,
        payload,
        truth_level,
        origin_source,
        origin_chain,
        accepted_by_user,
        last_modified_by_level,
        version,
        base_version,
        base_clock,
        last_modified_at,
        device_id,
        contract_version,
        deleted,
        _mutation,
        _hub_known,
        _rowid,
    ) = row
    return SyncItem(
        entity_id=entity_id,
        entity_type=entity_type,
        tenant_id=tenant_id,
        payload=msgspec.Raw(bytes(payload)),
        truth_level=truth_level,
        origin_source=origin_source,
        origin_chain=() if origin_chain == _EMPTY_CHAIN else _chain_decoder.decode(origin_chain),
        accepted_by_user=bool(accepted_by_user),
        last_modified_by_level=last_modified_by_level,
        version=version,
        base_version=base_version,
        base_clock=base_clock,
        last_modified_at=last_modified_at,
        device_id=device_id,
        contract_version=contract_version,
        deleted=bool(deleted),
    )


def current_from_row(row: sqlite3.Row | tuple[Any, ...]) -> Current:
    """A :class:`Current` from an :data:`ENTITY_SELECT` row."""
    *_, mutation, hub_known, rowid = row
    return Current(item_from_row(row), mutation, bool(hub_known), rowid)


#: the columns :func:`decode_record` reads, by name
RECORD_COLUMNS = "kind, id, entity_id, entity_type, status, item, created_at, decided_at, resolution, reason"


def decode_record(row: sqlite3.Row) -> VaultRecord:
    """A record from a row (read by name) holding :data:`RECORD_COLUMNS`."""
    return VaultRecord(
        kind=row["kind"],
        id=row["id"],
        entity_id=row["entity_id"],
        entity_type=row["entity_type"],
        status=row["status"],
        item=_item_decoder.decode(row["item"]),
        created_at=row["created_at"],
        decided_at=row["decided_at"],
        resolution=row["resolution"],
        reason=row["reason"],
    )
