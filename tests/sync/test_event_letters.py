"""A pulled change that does not open is kept as a dead letter of kind ``event``, still sealed,
and ``dlq retry`` applies it once the key it was sealed under is here (each hub backend)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from fastapi.testclient import TestClient

from truthvault.crypto import Keyring
from truthvault.errors import ConflictState, DecryptionFailed, NotFound
from truthvault.hub.app import HubSettings, create_app
from truthvault.hub.store import HubStore
from truthvault.model import PullResponse, PushRequest, SyncItem
from truthvault.sync import device_engine
from truthvault.sync._e2e import open_page, seal_batch
from truthvault.sync._event_letters import keep_unreadable
from truthvault.vault import new_id

from .test_input_hash_sync import LocalFirstDevice

#: the hub's backend is not what these test (each runs on SQLite only; the hub's store is tested on both)
ON_SQLITE = pytest.mark.parametrize("hub_url", ["sqlite"], indirect=True)


@pytest.fixture
def phone(hub_store: HubStore, tmp_path: Path) -> Iterator[LocalFirstDevice]:
    hub_store.add_tenant("fam", "local_first")
    settings = HubSettings(audit_key_path=str(tmp_path / "audit.key"))
    with TestClient(create_app(hub_store, settings)) as http:
        device = LocalFirstDevice(http, hub_store, tmp_path / "phone")
        device.sync()  # the tenant's first keyring
        yield device
        device.vault.close()


def _sealed_elsewhere(device: LocalFirstDevice, ring: Keyring, text: str) -> PullResponse:
    item = SyncItem(
        entity_type="note",
        entity_id=new_id(),
        tenant_id=device.vault.tenant_id,
        truth_level=1,
        origin_source="user:cli",
        last_modified_at="2026-01-01T00:00:00.000Z-0001",
        device_id="another-device",
        payload=msgspec.Raw(msgspec.json.encode({"text": text})),
        version=1,
    )
    sealed = seal_batch(PushRequest(items=[item]), ring, device.vault.tenant_id)
    cursor = device.vault.replica.cursor
    return PullResponse(items=sealed.items, records=[], cursor=cursor, has_more=False, head=cursor)


def test_a_change_sealed_under_a_key_this_device_lacks_is_applied_by_a_retry_once_the_key_is_here(
    phone: LocalFirstDevice,
) -> None:
    mine = phone.vault.replica.keyring()
    assert mine is not None
    other = Keyring.new()  # a key another device sealed with, that never reached this one
    page = _sealed_elsewhere(phone, other, "sealed elsewhere")
    opened, failed = open_page(page, mine, phone.vault.tenant_id)
    assert opened.items == [] and [f.reason for f in failed] == ["unknown_key"]
    keep_unreadable(phone.vault, failed)
    keep_unreadable(phone.vault, failed)  # pulled again: the same letter
    [letter] = phone.vault.dead_letters.list(kind="event")
    entity_id = page.items[0].entity_id
    assert letter.status == "open" and entity_id in letter.ref and "unknown_key" in letter.error
    assert b"sealed elsewhere" not in letter.input["sealed"].encode()  # kept sealed
    device_engine(phone.vault)  # what registers the retry of an event's dead letter

    with pytest.raises(DecryptionFailed, match="still does not open"):
        phone.vault.dead_letters.retry(letter.id, by="user:cli")
    assert phone.vault.dead_letters.get(letter.id).status == "open"  # nothing lost by trying
    with pytest.raises(NotFound):
        phone.vault.get(entity_id)

    # the key arrives (a share, or a recovery): the retry opens it and applies it
    keys = {kid: k for ring in (mine, other) for kid in ring.kids if (k := ring.key(kid))}
    phone.vault.replica.set_keyring(Keyring(keys, mine.current))
    cursor = phone.vault.replica.cursor
    retried = phone.vault.dead_letters.retry(letter.id, by="user:cli")
    assert retried.status == "retried" and "applied 1" in (retried.retried_as or "")
    assert phone.vault.get(entity_id).data() == {"text": "sealed elsewhere"}
    assert phone.vault.replica.cursor == cursor  # the retry does not move the cursor


@ON_SQLITE
def test_a_tampered_change_stays_a_dead_letter_to_discard(phone: LocalFirstDevice) -> None:
    mine = phone.vault.replica.keyring()
    assert mine is not None
    page = _sealed_elsewhere(phone, mine, "to be tampered with")
    envelope = msgspec.json.decode(bytes(page.items[0].payload))
    envelope["ct"] = ("A" if envelope["ct"][0] != "A" else "B") + envelope["ct"][1:]
    page.items[0].payload = msgspec.Raw(msgspec.json.encode(envelope))
    _, failed = open_page(page, mine, phone.vault.tenant_id)
    keep_unreadable(phone.vault, failed)
    [letter] = phone.vault.dead_letters.list(kind="event")
    device_engine(phone.vault)
    with pytest.raises(DecryptionFailed, match="tampered"):
        phone.vault.dead_letters.retry(letter.id, by="user:cli")
    assert phone.vault.dead_letters.move(letter.id, "discarded", "user:cli").status == "discarded"


@ON_SQLITE
def test_past_a_thousand_open_letters_a_letter_keeps_no_sealed_copy(
    phone: LocalFirstDevice, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A device pushing garbage by the thousand does not make every other device keep it all."""
    from truthvault.sync import _event_letters

    monkeypatch.setattr(_event_letters, "MAX_SEALED", 2)
    mine = phone.vault.replica.keyring()
    assert mine is not None
    other = Keyring.new()
    failed = [
        f
        for n in range(3)
        for f in open_page(_sealed_elsewhere(phone, other, f"x{n}"), mine, phone.vault.tenant_id)[1]
    ]
    keep_unreadable(phone.vault, failed)
    letters = phone.vault.dead_letters.list(kind="event")
    assert len(letters) == 3 and sum(1 for x in letters if x.input["sealed"] is None) == 1
    # counted by kind, without reading the letters' sealed copies
    assert phone.vault.dead_letters.counts(kind="event")["open"] == 3
    assert phone.vault.dead_letters.counts(kind="workflow")["open"] == 0
    device_engine(phone.vault)
    bare = next(x for x in letters if x.input["sealed"] is None)
    with pytest.raises(ConflictState, match="keeps no copy"):
        phone.vault.dead_letters.retry(bare.id, by="user:cli")


def _version(device: LocalFirstDevice, eid: str, n: int, writer: str, text: str) -> SyncItem:
    return SyncItem(
        entity_type="note",
        entity_id=eid,
        tenant_id=device.vault.tenant_id,
        truth_level=1,
        origin_source="user:cli",
        last_modified_at=f"2026-01-01T00:00:0{n}.000Z-0001",
        device_id=writer,
        payload=msgspec.Raw(msgspec.json.encode({"text": text})),
        version=n,
        base_version=n - 1,
        base_clock=None if n == 1 else f"2026-01-01T00:00:0{n - 1}.000Z-0001",
    )


@ON_SQLITE
def test_a_retried_change_older_than_what_came_after_it_changes_nothing(phone: LocalFirstDevice) -> None:
    """v1 did not open; v2 (on v1) and v3 (on v2), by other devices, did. Retrying v1 must not
    make it a conflict, nor queue v3 again as if the hub had lost it, nor move the cursor."""
    mine = phone.vault.replica.keyring()
    assert mine is not None
    other = Keyring.new()
    eid = new_id()
    first = _version(phone, eid, 1, "device-a", "first")
    sealed = seal_batch(PushRequest(items=[first]), other, phone.vault.tenant_id)
    cursor = phone.vault.replica.cursor
    page = PullResponse(items=sealed.items, records=[], cursor=cursor, has_more=False, head=cursor)
    _, failed = open_page(page, mine, phone.vault.tenant_id)
    keep_unreadable(phone.vault, failed)
    later = [_version(phone, eid, 2, "device-b", "second"), _version(phone, eid, 3, "device-c", "third")]
    phone.vault.replica.apply_pull(PullResponse(later, [], cursor, False, cursor))
    [letter] = phone.vault.dead_letters.list(kind="event")
    device_engine(phone.vault)
    keys = {kid: k for ring in (mine, other) for kid in ring.kids if (k := ring.key(kid))}
    phone.vault.replica.set_keyring(Keyring(keys, mine.current))
    phone.vault.dead_letters.retry(letter.id, by="user:cli")
    assert phone.vault.get(eid).data() == {"text": "third"}
    assert phone.vault.replica.pending_count() == 0  # nothing queued for the hub
    assert phone.vault.records(status=None, entity_id=eid) == []
    assert phone.vault.replica.cursor == cursor


@ON_SQLITE
def test_two_versions_of_one_number_that_do_not_open_are_two_letters(phone: LocalFirstDevice) -> None:
    """Two devices edit one note at once (both v2; the later wins at the hub, and both come in
    the feed) under a key this device lacks: each is kept, and the winner applies when retried.
    One kept in place of the other would lose it (or a change made up to look like it: a hub
    that puts garbage of the same number first)."""
    mine = phone.vault.replica.keyring()
    assert mine is not None
    other = Keyring.new()
    eid = new_id()
    base = _version(phone, eid, 1, "device-a", "first")
    phone.vault.replica.apply_pull(PullResponse([base], [], 0, False, 0))
    a = _version(phone, eid, 2, "device-a", "from a")
    b = msgspec.structs.replace(
        _version(phone, eid, 2, "device-b", "from b"), last_modified_at="2026-01-01T00:00:03.000Z-0001"
    )
    sealed = seal_batch(PushRequest(items=[a, b]), other, phone.vault.tenant_id)
    cursor = phone.vault.replica.cursor
    page = PullResponse(items=sealed.items, records=[], cursor=cursor, has_more=False, head=cursor)
    _, failed = open_page(page, mine, phone.vault.tenant_id)
    keep_unreadable(phone.vault, failed)
    letters = phone.vault.dead_letters.list(kind="event")
    assert len(letters) == 2
    device_engine(phone.vault)
    keys = {kid: k for ring in (mine, other) for kid in ring.kids if (k := ring.key(kid))}
    phone.vault.replica.set_keyring(Keyring(keys, mine.current))
    for letter in reversed(letters):
        phone.vault.dead_letters.retry(letter.id, by="user:cli")
    assert phone.vault.get(eid).data() == {"text": "from b"}
