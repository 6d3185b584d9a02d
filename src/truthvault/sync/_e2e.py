"""End-to-end encryption at the sync boundary: seal a push, open a pull (pure, no I/O).

The vault keeps plaintext; only what crosses to the hub is sealed. Each payload is bound to
the tenant, entity type, entity id and version, so the hub can neither read it nor move it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from ..crypto import Keyring, open_sealed, seal
from ..errors import DecryptionFailed
from ..model import PullResponse, PushRequest, Record, SyncItem

__all__ = ["Unreadable", "open_page", "seal_batch"]


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A pulled payload that did not open: which entity, why (``reason``), and the message."""

    entity_type: str
    entity_id: str
    version: int
    reason: str
    message: str
    record_id: str | None = None

    def describe(self) -> str:
        """``note 'id' (tampered)``: how one line names it."""
        where = f" in record {self.record_id!r}" if self.record_id else ""
        return f"{self.entity_type} {self.entity_id!r} v{self.version}{where} ({self.reason})"


def _bound_to(item: SyncItem, tenant_id: str) -> dict[str, Any]:
    """What a sealed payload is bound to: its tenant, entity and version."""
    return {
        "tenant_id": tenant_id,
        "entity_type": item.entity_type,
        "entity_id": item.entity_id,
        "version": item.version,
    }


def _sealed(item: SyncItem, keyring: Keyring, tenant_id: str) -> SyncItem:
    envelope = seal(keyring, bytes(item.payload), **_bound_to(item, tenant_id))
    return msgspec.structs.replace(item, payload=msgspec.Raw(envelope))


def _opened(item: SyncItem, keyring: Keyring, tenant_id: str) -> SyncItem:
    plaintext = open_sealed(keyring, bytes(item.payload), **_bound_to(item, tenant_id))
    return msgspec.structs.replace(item, payload=msgspec.Raw(plaintext))


def seal_batch(batch: PushRequest, keyring: Keyring, tenant_id: str) -> PushRequest:
    """A copy of ``batch`` whose every payload is sealed under the keyring's current key."""
    # The vault's tenant, not the item's field: what is bound in is what this device belongs to.
    items = [_sealed(item, keyring, tenant_id) for item in batch.items]
    return msgspec.structs.replace(batch, items=items)


def open_page(page: PullResponse, keyring: Keyring, tenant_id: str) -> tuple[PullResponse, list[Unreadable]]:
    """The page with every payload opened, minus those that did not open, which are listed."""
    failed: list[Unreadable] = []
    items: list[SyncItem] = []
    for item in page.items:
        try:
            items.append(_opened(item, keyring, tenant_id))
        except DecryptionFailed as exc:
            failed.append(Unreadable(item.entity_type, item.entity_id, item.version, exc.reason, exc.message))
    records: list[Record] = []
    for rec in page.records:
        try:
            records.append(msgspec.structs.replace(rec, item=_opened(rec.item, keyring, tenant_id)))
        except DecryptionFailed as exc:
            it = rec.item
            failed.append(
                Unreadable(it.entity_type, it.entity_id, it.version, exc.reason, exc.message, rec.id)
            )
    # The cursor still moves past what failed: a bad ciphertext does not heal by pulling it again.
    return msgspec.structs.replace(page, items=items, records=records), failed
