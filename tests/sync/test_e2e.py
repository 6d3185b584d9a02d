"""Sealing a push and opening a pull: payloads round-trip; a moved or tampered one is set aside."""

from __future__ import annotations

import msgspec

from truthvault.crypto import Keyring, is_sealed
from truthvault.model import PullResponse, PushRequest, Record, SyncItem
from truthvault.sync._e2e import open_page, seal_batch

TENANT = "tenant-1"


def _item(n: int, text: str) -> SyncItem:
    return SyncItem(
        entity_type="note",
        entity_id=f"e{n}",
        tenant_id=TENANT,
        truth_level=1,
        origin_source="user:cli",
        last_modified_at=f"2026-01-01T00:00:00.000Z-{n:04d}",
        device_id="dev-1",
        payload=msgspec.Raw(msgspec.json.encode({"text": text})),
        version=n,
    )


def _page(items: list[SyncItem], records: list[Record] | None = None) -> PullResponse:
    return PullResponse(items=items, records=records or [], cursor=9, has_more=False, head=9)


def test_a_sealed_batch_opens_to_the_same_payloads() -> None:
    ring = Keyring.new()
    batch = PushRequest(items=[_item(n, f"secret {n}") for n in range(1, 4)])
    sealed = seal_batch(batch, ring, TENANT)
    assert all(is_sealed(bytes(i.payload)) and b"secret" not in bytes(i.payload) for i in sealed.items)
    assert [bytes(i.payload) for i in batch.items] != [bytes(i.payload) for i in sealed.items]
    record = Record(
        kind="conflict",
        id="r1",
        entity_id="e1",
        entity_type="note",
        status="open",
        item=msgspec.structs.replace(sealed.items[0]),  # a page decoded off the wire shares nothing
        created_at="now",
    )
    opened, failed = open_page(_page(sealed.items, [record]), ring, TENANT)
    assert failed == []
    assert [bytes(i.payload) for i in opened.items] == [bytes(i.payload) for i in batch.items]
    assert bytes(opened.records[0].item.payload) == bytes(batch.items[0].payload)


def test_moved_and_tampered_payloads_are_skipped_and_the_rest_applied() -> None:
    ring = Keyring.new()
    sealed = seal_batch(PushRequest(items=[_item(n, f"secret {n}") for n in range(1, 5)]), ring, TENANT).items
    envelope = msgspec.json.decode(bytes(sealed[1].payload))
    envelope["ct"] = ("A" if envelope["ct"][0] != "A" else "B") + envelope["ct"][1:]
    tampered = msgspec.structs.replace(sealed[1], payload=msgspec.Raw(msgspec.json.encode(envelope)))
    moved = msgspec.structs.replace(sealed[2], payload=sealed[3].payload)
    other_tenant = seal_batch(PushRequest(items=[_item(5, "x")]), ring, "tenant-2").items
    opened, failed = open_page(_page([sealed[0], tampered, moved, sealed[3], *other_tenant]), ring, TENANT)
    assert [i.entity_id for i in opened.items] == ["e1", "e4"]
    assert [(f.entity_id, f.reason) for f in failed] == [
        ("e2", "tampered"),
        ("e3", "tampered"),
        ("e5", "tampered"),
    ]
    assert failed[1].describe() == "note 'e3' v3 (tampered)"
    assert opened.cursor == 9  # the page still moves the cursor on


def test_a_payload_under_a_key_this_device_lacks_is_reported_as_unknown_key() -> None:
    old, new = Keyring.new(), Keyring.new()
    sealed = seal_batch(PushRequest(items=[_item(1, "a")]), new, TENANT).items
    _, failed = open_page(_page(sealed), old, TENANT)
    assert [f.reason for f in failed] == ["unknown_key"]


def test_a_rotated_key_met_mid_page_refreshes_the_keyring_once_and_opens_the_rest() -> None:
    ring = Keyring.new()
    before = Keyring.deserialize(ring.serialize())
    first = seal_batch(PushRequest(items=[_item(1, "old key")]), ring, TENANT).items
    ring.rotate()
    rest = seal_batch(PushRequest(items=[_item(n, f"new key {n}") for n in (2, 3)]), ring, TENANT).items
    calls: list[int] = []

    def refresh() -> Keyring:
        calls.append(1)
        return ring

    opened, failed = open_page(_page([*first, *rest]), before, TENANT, refresh)
    assert failed == [] and calls == [1]
    texts = [msgspec.json.decode(i.payload)["text"] for i in opened.items]
    assert texts == ["old key", "new key 2", "new key 3"]
    # a refresh that finds nothing newer leaves the rest reported, without asking again
    stale = seal_batch(PushRequest(items=[_item(n, "x") for n in (4, 5)]), Keyring.new(), TENANT).items

    def nothing_newer() -> None:
        calls.append(1)

    _, failed = open_page(_page(stale), before, TENANT, nothing_newer)
    assert [f.reason for f in failed] == ["unknown_key", "unknown_key"] and len(calls) == 2
