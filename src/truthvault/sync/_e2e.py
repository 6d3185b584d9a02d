"""End-to-end encryption at the sync boundary: seal a push, open a pull (pure, no I/O).

The vault keeps plaintext; only what crosses to the hub is sealed. Each payload is bound to
the tenant, entity type, entity id and version, so the hub can neither read it nor move it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from ..crypto import Keyring, open_sealed, seal
from ..errors import DecryptionFailed
from ..model import PullResponse, PushRequest, SyncItem

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


def _sealed(item: SyncItem, keyring: Keyring, tenant_id: str) -> SyncItem:
    envelope = seal(
        keyring,
        item.payload,  # a Raw is a bytes-like buffer: no copy
        tenant_id=tenant_id,
        entity_type=item.entity_type,
        entity_id=item.entity_id,
        version=item.version,
    )
    return msgspec.structs.replace(item, payload=msgspec.Raw(envelope))


def _open(item: SyncItem, keyring: Keyring, tenant_id: str) -> None:
    """Replace the item's sealed payload by its plaintext, in place."""
    plaintext = open_sealed(
        keyring,
        bytes(item.payload),
        tenant_id=tenant_id,
        entity_type=item.entity_type,
        entity_id=item.entity_id,
        version=item.version,
    )
    item.payload = msgspec.Raw(plaintext)


def seal_batch(batch: PushRequest, keyring: Keyring, tenant_id: str) -> PushRequest:
    """A copy of ``batch`` whose every payload is sealed under the keyring's current key."""
    # The vault's tenant, not the item's field: what is bound in is what this device belongs to.
    items = [_sealed(item, keyring, tenant_id) for item in batch.items]
    return msgspec.structs.replace(batch, items=items)


def open_page(
    page: PullResponse,
    keyring: Keyring,
    tenant_id: str,
    refresh: Callable[[], Keyring | None] | None = None,
) -> tuple[PullResponse, list[Unreadable]]:
    """The page with every payload opened, minus those that did not open, which are listed.

    The page's items and records are opened in place (a page is decoded for this alone). A
    payload sealed with a key this keyring lacks calls ``refresh`` (once) for a newer
    keyring, which then opens the rest.
    """
    failed: list[Unreadable] = []
    ring = keyring

    def opened(item: SyncItem, record_id: str | None) -> bool:
        nonlocal ring, refresh
        try:
            _open(item, ring, tenant_id)
            return True
        except DecryptionFailed as exc:
            if exc.reason == "unknown_key" and refresh is not None:
                newer, refresh = refresh(), None
                if newer is not None:
                    ring = newer
                    return opened(item, record_id)
            failed.append(
                Unreadable(item.entity_type, item.entity_id, item.version, exc.reason, exc.message, record_id)
            )
            return False

    items = [item for item in page.items if opened(item, None)]
    records = [rec for rec in page.records if opened(rec.item, rec.id)]
    # The cursor still moves past what failed: a bad ciphertext does not heal by pulling it again.
    if failed:
        page = msgspec.structs.replace(page, items=items, records=records)
    return page, failed
