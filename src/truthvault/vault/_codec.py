"""Rows <-> wire types: how an entity version and a kept record are stored in SQLite."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import msgspec

from ..errors import InvalidInput
from ..model import OriginStep, Record, SyncItem, check_payload_depth, prepare_item, prepare_items
from ..truth import origin_step

__all__ = [
    "ENTITY_COLUMNS",
    "ENTITY_INSERT",
    "ENTITY_SELECT",
    "Current",
    "VaultRecord",
    "check_item",
    "check_items",
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
# Qualified, so the same select works joined to the search index.
ENTITY_SELECT = (
    "SELECT "
    + ", ".join(f"entities.{c}" for c in (*ENTITY_COLUMNS, "mutation", "hub_known", "rowid"))
    + " FROM entities"
)
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
    """A payload dict as JSON bytes; InvalidInput for anything else."""
    if not isinstance(payload, dict):
        raise InvalidInput(f"payload must be a JSON object, got {type(payload).__name__}")
    try:
        encoded = _encoder.encode(payload)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"payload is not JSON-serialisable: {exc}") from None
    check_payload_depth(encoded, "payload")
    return encoded


def payload_of(item: SyncItem) -> dict[str, Any]:
    """The payload of an item as a dict."""
    value = msgspec.json.decode(item.payload)
    if not isinstance(value, dict):
        raise InvalidInput(f"payload of {item.entity_id} is not a JSON object")
    return value


def step(item: SyncItem, ref: str | None = None) -> OriginStep:
    """The origin-chain step that names ``item`` as a source of later content."""
    return OriginStep(**origin_step(item.truth_level, item.origin_source, item.last_modified_at, ref))  # type: ignore[arg-type]


#: Later than any real stamp: pulls and imports are not bounded by the hub's skew limit.
_NO_CLOCK_LIMIT = "9999-12-31T23:59:59.999Z-ffff"
#: Pulls and imports take what the hub or the file holds; only pushes are size-limited.
_NO_SIZE_LIMIT = 1 << 62


def check_item(item: SyncItem, where: str, tenant_id: str, max_clock: str = _NO_CLOCK_LIMIT) -> SyncItem:
    """Check an item from outside (a pull, an import) and apply the upgrade rule.

    :func:`truthvault.model.prepare_item` without the device and size limits, which only
    the hub applies to pushes; ``seq`` and ``mutation`` are dropped (not truth fields).
    An import passes ``max_clock``; a pull is bounded by the hub, which refused the push.
    """
    item.seq = item.mutation = None
    item.kept = False
    return prepare_item(
        item,
        where,
        tenant_id=tenant_id,
        device_id=None,
        max_payload_bytes=_NO_SIZE_LIMIT,
        max_clock=max_clock,
    )


def check_items(items: list[SyncItem], where: str, tenant_id: str) -> list[SyncItem]:
    """:func:`check_item` over a batch (a pulled page), checked a field at a time
    (:func:`truthvault.model.prepare_items`); the items must not carry ``seq`` or ``mutation``."""
    return prepare_items(
        items, where, tenant_id=tenant_id, max_payload_bytes=_NO_SIZE_LIMIT, max_clock=_NO_CLOCK_LIMIT
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
    """A SyncItem from the first 16 columns of an :data:`ENTITY_SELECT` row."""
    chain = row[6]
    return SyncItem(
        entity_id=row[0],
        entity_type=row[1],
        tenant_id=row[2],
        payload=msgspec.Raw(bytes(row[3])),
        truth_level=row[4],
        origin_source=row[5],
        origin_chain=() if chain == _EMPTY_CHAIN else _chain_decoder.decode(chain),
        accepted_by_user=bool(row[7]),
        last_modified_by_level=row[8],
        version=row[9],
        base_version=row[10],
        base_clock=row[11],
        last_modified_at=row[12],
        device_id=row[13],
        contract_version=row[14],
        deleted=bool(row[15]),
    )


def current_from_row(row: sqlite3.Row | tuple[Any, ...]) -> Current:
    """A :class:`Current` from a full :data:`ENTITY_SELECT` row."""
    return Current(item_from_row(row), row[16], bool(row[17]), row[18])


def decode_record(row: sqlite3.Row | tuple[Any, ...]) -> VaultRecord:
    """A record from ``SELECT kind, id, entity_id, entity_type, status, item, created_at,
    decided_at, resolution, reason``."""
    return VaultRecord(
        kind=row[0],
        id=row[1],
        entity_id=row[2],
        entity_type=row[3],
        status=row[4],
        item=_item_decoder.decode(row[5]),
        created_at=row[6],
        decided_at=row[7],
        resolution=row[8],
        reason=row[9],
    )
