"""No silent divergence, no poisoned queue: the faults of issue 9, against a real hub store on
both backends (a restored hub, records that diverged, accepting across devices, a decision that
lost, an item the hub refuses)."""

from __future__ import annotations

import time
from collections.abc import Callable

from truthvault.hub.store import Limits
from truthvault.vault import payload_of

from ..stores import Devices, backup, records

AI = "ai-cloud:openai/gpt-4o"


# -- 1. a hub restored from a backup ---------------------------------------------------------
def test_a_device_whose_cursor_points_into_a_lost_history_gets_it_again(
    devices: Callable[..., Devices],
) -> None:
    """The hub is restored from a backup, then takes new changes that reuse the sequence numbers
    it lost: a device whose cursor was past the backup must learn that its cursor points into
    another history (it used to skip b's note and report success)."""
    d = devices("a", "b")
    a, b = d.vaults["a"], d.vaults["b"]
    a.put("note", {"text": "before the backup"})
    d.syncers["a"].sync()
    d.syncers["b"].sync()
    with backup(d.url) as restore:
        lost = a.put("note", {"text": "after the backup"}).item.entity_id
        d.syncers["a"].sync()
        d.syncers["b"].sync()
        d.store.close()
        restore()
        d.reopen()
    new = b.put("note", {"text": "b, after the restore"}).item.entity_id
    outcomes = [d.syncers[n].sync() for n in ("b", "a", "b", "a")]
    assert outcomes[0].resync_reason == "reset"  # b's cursor was past the restored head
    assert outcomes[1].resync_reason == "reset"  # a's was not: the tag of its history told it
    for vault in (a, b):
        assert payload_of(vault.get(new)) == {"text": "b, after the restore"}
        assert payload_of(vault.get(lost)) == {"text": "after the backup"}
    assert a.replica.checksum() == b.replica.checksum()
    for name in ("a", "b"):
        assert d.syncers[name].check().in_sync
        assert d.syncers[name].sync().diverged == []


def test_a_sync_says_when_this_device_and_the_hub_differ(
    devices: Callable[..., Devices], hub_sql: Callable[..., list[object]]
) -> None:
    d = devices("a")
    a, sync = d.vaults["a"], d.syncers["a"]
    eid = a.put("note", {"t": "mine"}).item.entity_id
    a.edit(eid, {"t": "ai"}, source=AI)  # a suggestion record too
    assert sync.sync().diverged == []
    hub_sql("UPDATE tenants SET checksum = checksum + 1")
    assert sync.sync().diverged == ["entities"]
    hub_sql("UPDATE tenants SET checksum = checksum - 1, records_checksum = records_checksum + 1")
    assert sync.sync().diverged == ["records"]
    result = sync.check()
    assert not result.in_sync and result.differs == ["records"]


# -- 2. records converge, and sync check covers them ----------------------------------------
def test_a_pull_while_changes_wait_keeps_no_record_no_one_else_has(devices: Callable[..., Devices]) -> None:
    """d2 pulls the AI draft while its own U1 version of the same entity waits to be pushed. It
    used to keep the draft as a suggestion that no other replica and not the hub had, while
    'sync check' said in sync."""
    d = devices("d0", "d1", "d2")
    d0, d1, d2 = (d.vaults[n] for n in ("d0", "d1", "d2"))
    d0.put("note", {"text": "AI draft"}, entity_id="e2", source=AI)
    d.syncers["d0"].sync()
    d2.put("note", {"text": "d2's own"}, entity_id="e2")
    d.syncers["d2"].pull()  # while its change is queued
    d.syncers["d1"].sync()
    d1.edit("e2", {"text": "d1 edits the AI draft"})
    for _ in range(2):
        for name in ("d0", "d1", "d2"):
            d.syncers[name].sync()
    hub = d.hub_records()
    for name, vault in d.vaults.items():
        assert records(vault) == hub, name
        check = d.syncers[name].check()
        assert check.in_sync and check.hub_records == check.local_records, name


def test_sync_check_compares_records_too(devices: Callable[..., Devices]) -> None:
    d = devices("a")
    a, sync = d.vaults["a"], d.syncers["a"]
    eid = a.put("note", {"t": "mine"}).item.entity_id
    rid = a.edit(eid, {"t": "ai"}, source=AI).record_id
    sync.sync()
    assert sync.check().in_sync
    # a record whose status differs here (written behind the vault's back) is a divergence
    a._db.conn.execute("UPDATE records SET status = 'rejected' WHERE id = ?", (rid,))
    result = sync.check()
    assert not result.in_sync and result.differs == ["records"]
    assert result.local == result.hub  # the entities agree


# -- 3. accepting across devices ------------------------------------------------------------
def test_a_suggestion_made_on_another_device_is_accepted_over_later_edits(
    devices: Callable[..., Devices],
) -> None:
    """An AI on b suggests against a version a holds too; a edits another field, then accepts:
    the suggestion's change is applied over the edit, without --force."""
    d = devices("a", "b")
    a, b = d.vaults["a"], d.vaults["b"]
    eid = a.put("note", {"text": "draft", "title": "orig"}).item.entity_id
    d.syncers["a"].sync()
    d.syncers["b"].sync()
    suggestion = b.edit(eid, {"text": "the AI's text"}, source=AI)
    assert suggestion.record_id is not None
    d.syncers["b"].sync()
    a.edit(eid, {"title": "mine"})
    d.syncers["a"].sync()
    [sug] = a.suggestions()
    accepted = a.accept(sug.id)
    assert payload_of(accepted) == {"text": "the AI's text", "title": "mine"}
    # and on a third device, which never held the version it was made on either
    d.syncers["a"].sync()
    d.syncers["b"].sync()
    assert payload_of(b.get(eid)) == {"text": "the AI's text", "title": "mine"}
    assert b.get_record(sug.id).status == "accepted"


# -- 18. a decision that lost --------------------------------------------------------------
def test_a_decision_that_another_device_made_first_is_reported(devices: Callable[..., Devices]) -> None:
    d = devices("laptop", "phone")
    laptop, phone = d.vaults["laptop"], d.vaults["phone"]
    eid = laptop.put("note", {"t": "base"}).item.entity_id
    d.syncers["laptop"].sync()
    d.syncers["phone"].sync()
    laptop.edit(eid, {"t": "laptop"})
    time.sleep(0.002)
    phone.edit(eid, {"t": "phone"})
    for name in ("laptop", "phone", "laptop", "phone"):
        d.syncers[name].sync()
    [conflict] = laptop.conflicts()
    assert [c.id for c in phone.conflicts()] == [conflict.id]
    phone.resolve_conflict(conflict.id, "restore")
    assert d.syncers["phone"].sync().overruled == []
    laptop.resolve_conflict(conflict.id, "keep")
    stats = d.syncers["laptop"].sync()
    [overruled] = stats.overruled
    assert (overruled.record_id, overruled.my_resolution, overruled.resolution) == (
        conflict.id,
        "keep",
        "restore",
    )
    assert "another device's decision came first" in overruled.describe()
    assert laptop.get_record(conflict.id).resolution == "restore"
    assert [e.entity_id for e in laptop.events(type="DECISION_OVERRULED")] == [eid]
    d.syncers["phone"].sync()
    assert payload_of(laptop.get(eid)) == payload_of(phone.get(eid))
    assert records(laptop) == records(phone) == d.hub_records()


# -- 4. one item the hub refuses never jams the queue ---------------------------------------
def test_an_item_the_hub_refuses_is_kept_aside_and_the_rest_is_pushed(
    devices: Callable[..., Devices],
) -> None:
    d = devices("a", "b", limits=Limits(max_payload_bytes=300))
    a, b = d.vaults["a"], d.vaults["b"]
    first = a.put("note", {"t": "first"}).item.entity_id
    big = a.put("note", {"t": "x" * 400}).item.entity_id
    last = a.put("note", {"t": "last"}).item.entity_id
    stats = d.syncers["a"].sync()
    assert [eid for eid, _ in stats.refused_pushes] == [big]
    assert "over the limit of 300" in stats.refused_pushes[0][1]
    assert a.replica.pending_count() == 0 and payload_of(a.get(big)) == {"t": "x" * 400}  # kept here
    [refusal] = a.replica.refusals()
    assert (refusal.direction, refusal.entity_id) == ("push", big)
    assert len(a.events(type="PUSH_REFUSED")) == 1
    # the queue is not jammed: later writes go, and the other device syncs as usual
    later = a.put("note", {"t": "later"}).item.entity_id
    assert d.syncers["a"].sync().refused_pushes == []
    d.syncers["b"].sync()
    assert {i.entity_id for i in b.list()} == {first, last, later}
    # the hub's limit is raised: retry sends it
    d.limits = Limits()
    d._connect()
    assert a.replica.retry_refused(refusal.id) and a.replica.refusals() == []
    d.syncers["a"].sync()
    d.syncers["b"].sync()
    assert payload_of(b.get(big)) == {"t": "x" * 400}
    assert d.syncers["a"].check().in_sync and d.syncers["b"].check().in_sync


def test_a_base_the_hub_would_refuse_is_dropped_not_the_batch(devices: Callable[..., Devices]) -> None:
    d = devices("a")
    a = d.vaults["a"]
    eid = a.put("note", {"t": "mine"}).item.entity_id
    d.syncers["a"].sync()
    rid = a.edit(eid, {"t": "ai"}, source=AI).record_id
    batch = a.replica.pending_batch()
    assert batch is not None and [b.entity_id for b in batch.bases] == [eid]
    batch.bases[0].last_modified_at = "2026-11-32T00:00:00.000Z-0000"
    response = d.syncers["a"].client.push(batch)
    assert [r.outcome for r in response.results] == ["suggestion"]
    ctx = d.syncers["a"].client.ctx  # type: ignore[attr-defined]
    [record] = d.store.list_records(ctx)
    # the bad copy is dropped; the hub keeps its own current version, which is the one it was made on
    assert record.id == rid and record.base is not None
    assert record.base.last_modified_at == a.get(eid).last_modified_at
