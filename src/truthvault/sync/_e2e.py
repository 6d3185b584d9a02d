"""End-to-end encryption at the sync boundary: seal a push, open a pull (pure, no I/O).

The vault keeps plaintext; only what crosses to the hub is sealed. Each payload is bound to
the tenant and every truth field of its version, so the hub can neither read it nor move it,
nor pass one version's payload off as another's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from ..crypto import Keyring, opener, sealer
from ..errors import DecryptionFailed
from ..model import PullResponse, PushRequest, Record, SyncItem, seal_context

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
    #: the item (or the record) as it was pulled, still sealed: kept as a dead letter, so that
    #: it is applied once it opens (a key this device lacked arrives); None for a suggestion's
    #: base (only a help to accepting it)
    wire: bytes | None = None

    def describe(self) -> str:
        """``note 'id' (tampered)``: how one line names it."""
        where = f" in record {self.record_id!r}" if self.record_id else ""
        return f"{self.entity_type} {self.entity_id!r} v{self.version}{where} ({self.reason})"


def seal_batch(batch: PushRequest, keyring: Keyring, tenant_id: str) -> PushRequest:
    """A copy of ``batch`` whose every payload is sealed under the keyring's current key."""
    # The vault's tenant, not the item's field: what is bound in is what this device belongs to.
    seal = sealer(keyring, tenant_id)
    replace, raw = msgspec.structs.replace, msgspec.Raw

    def sealed(item: SyncItem) -> SyncItem:
        if item.last_modified_by_level is None:
            # as the hub fills it in, so that the bound field is the one every reader sees
            item = replace(item, last_modified_by_level=item.truth_level)
        return replace(item, payload=raw(seal(item.payload, seal_context(item))))

    return replace(batch, items=list(map(sealed, batch.items)), bases=list(map(sealed, batch.bases)))


def open_page(
    page: PullResponse,
    keyring: Keyring,
    tenant_id: str,
    refresh: Callable[[], Keyring | None] | None = None,
) -> tuple[PullResponse, list[Unreadable]]:
    """The page with every payload opened, minus those that did not open, which are listed.

    The page's items and records are opened in place (a page is decoded for this alone). A
    payload sealed with a key this keyring lacks calls ``refresh`` (once) for a newer
    keyring, which then opens the rest. A suggestion's base that does not open is dropped (it
    is only a help to accepting it) and listed too.
    """
    failed: list[Unreadable] = []
    open_one = opener(keyring, tenant_id)

    def opened(item: SyncItem, record_id: str | None, whole: SyncItem | Record | None = None) -> bool:
        nonlocal open_one, refresh
        try:
            item.payload = msgspec.Raw(open_one(item.payload, seal_context(item)))
            return True
        except DecryptionFailed as exc:
            if exc.reason == "unknown_key" and refresh is not None:
                newer, refresh = refresh(), None
                if newer is not None:
                    open_one = opener(newer, tenant_id)
                    return opened(item, record_id, whole)
            wire = None if whole is None else msgspec.json.encode(whole)
            failed.append(
                Unreadable(
                    item.entity_type, item.entity_id, item.version, exc.reason, exc.message, record_id, wire
                )
            )
            return False

    items = [item for item in page.items if opened(item, None, item)]
    records = [rec for rec in page.records if opened(rec.item, rec.id, rec)]
    for rec in records:
        if rec.base is not None and not opened(rec.base, rec.id):
            rec.base = None
    # The cursor still moves past what failed: a bad ciphertext does not heal by pulling it again.
    if failed:
        page = msgspec.structs.replace(page, items=items, records=records)
    return page, failed
