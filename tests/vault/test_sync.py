"""Sync plumbing: the push queue, acks, applying pulls, checksums and re-sync."""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec
import pytest

from truthvault.errors import ConflictState
from truthvault.model import PullResponse, Record
from truthvault.vault import RESYNC_REASON, Vault, payload_of
from truthvault.vault._search import SEARCH_TEXT_SQL

from .conftest import as_pull, deliver, hub_ack

AI = "ai-cloud:openai/gpt-4o"


def test_pending_batch_orders_by_mutation_and_limits(vault: Vault) -> None:
    assert vault.replica.pending_batch() is None and vault.replica.pending_count() == 0
    a = vault.put("note", {"n": 1}).item
    b = vault.put("note", {"n": 2}).item
    vault.edit(a.entity_id, {"n": 3})  # collapses into a's row with a new number
    batch = vault.replica.pending_batch()
    assert batch is not None
    assert [(i.entity_id, i.mutation) for i in batch.items] == [(b.entity_id, 2), (a.entity_id, 3)]
    assert batch.cursor == 0 and batch.decisions == []
    assert payload_of(batch.items[1]) == {"n": 3} and batch.items[1].version == 2
    small = vault.replica.pending_batch(limit=1)
    assert small is not None and [i.entity_id for i in small.items] == [b.entity_id]
    assert vault.replica.pending_count() == 2


def test_ack_clears_queue_and_base_moves(vault: Vault) -> None:
    eid = vault.put("note", {"n": 1}).item.entity_id
    batch = vault.replica.pending_batch()
    assert batch is not None
    vault.replica.ack(batch, hub_ack(batch))
    assert vault.replica.pending_batch() is None
    pushed = vault.get(eid)
    edited = vault.edit(eid, {"n": 2}).item
    # the hub now knows version 1, so the edit names it as its base
    assert (edited.base_version, edited.base_clock) == (1, pushed.last_modified_at)


def test_edit_during_push_stays_queued_and_ack_is_idempotent(vault: Vault) -> None:
    eid = vault.put("note", {"n": 1}).item.entity_id
    other = vault.put("note", {"n": 9}).item.entity_id
    batch = vault.replica.pending_batch()
    assert batch is not None
    vault.edit(eid, {"n": 2})  # made while the push is in flight
    vault.replica.ack(batch, hub_ack(batch))
    vault.replica.ack(batch, hub_ack(batch))
    again = vault.replica.pending_batch()
    assert again is not None
    assert [(i.entity_id, payload_of(i)) for i in again.items] == [(eid, {"n": 2})]
    assert all(i.entity_id != other for i in again.items)
    vault.replica.ack(again, hub_ack(again))
    assert vault.replica.pending_batch() is None and vault.replica.pending_count() == 0


def test_suggestion_items_and_decisions_are_queued(vault: Vault) -> None:
    eid = vault.put("note", {"t": "mine"}).item.entity_id
    first = vault.replica.pending_batch()
    assert first is not None
    vault.replica.ack(first, hub_ack(first))
    rid = vault.edit(eid, {"t": "ai"}, source=AI).record_id
    batch = vault.replica.pending_batch()
    assert batch is not None
    assert [(i.origin_source, i.mutation is not None) for i in batch.items] == [(AI, True)]
    vault.reject(rid or "")
    batch = vault.replica.pending_batch()
    assert batch is not None
    assert [d.id for d in batch.decisions] == [rid] and batch.decisions[0].status == "rejected"
    assert len(batch.items) == 1  # the item still travels, before its decision
    vault.replica.ack(batch, hub_ack(batch))
    assert vault.replica.pending_batch() is None


def test_decision_waits_for_its_record_item(vault: Vault) -> None:
    eid = vault.put("note", {"t": "mine"}).item.entity_id
    rid = vault.edit(eid, {"t": "ai"}, source=AI).record_id
    vault.reject(rid or "")
    batch = vault.replica.pending_batch(limit=1)  # only the entity (older) fits, not the suggestion item
    assert batch is not None and len(batch.items) == 1 and batch.decisions == []
    full = vault.replica.pending_batch()
    assert full is not None and [d.id for d in full.decisions] == [rid]


def test_apply_pull_applies_and_is_clean(make_vault: Callable[[str], Vault]) -> None:
    a, b = make_vault("a"), make_vault("b")
    item = a.put("note", {"t": "hello"}).item
    stats = deliver(a, b)
    assert stats is not None and stats.applied == 1
    assert b.get(item.entity_id) == item
    assert b.replica.pending_batch() is None  # pulled versions are not pushed back
    assert [i.entity_id for i in b.search("hello")] == [item.entity_id]
    assert b.replica.clock.last >= item.last_modified_at
    assert a.replica.checksum() == b.replica.checksum()
    # re-applying the same page changes nothing
    request = a.replica.pending_batch()
    assert request is None


def test_pulled_changes_keep_the_search_index_in_step(make_vault: Callable[[str], Vault]) -> None:
    # A pulled page is indexed a statement at a time: new rows, changed rows (their old words
    # gone), tombstones (gone from search), and an untouched row all come out right.
    a, b = make_vault("a"), make_vault("b")
    ids = {word: a.put("note", {"t": f"{word} apple"}).item.entity_id for word in ("one", "two", "three")}
    deliver(a, b)
    a.edit(ids["one"], {"t": "one banana"})
    a.delete(ids["two"])
    a.put("note", {"t": "four cherry"})
    deliver(a, b)
    assert {i.entity_id for i in b.search("apple")} == {ids["three"]}
    assert [i.entity_id for i in b.search("banana")] == [ids["one"]]
    assert b.search("two") == [] and len(b.search("cherry")) == 1
    # and the index matches one rebuilt from scratch
    conn = b._db.conn
    words = ("apple", "banana", "cherry", "one", "two", "three", "four", "note")
    before = {w: sorted(r[0] for r in conn.execute("SELECT rowid FROM entities_fts(?)", (w,))) for w in words}
    conn.execute("INSERT INTO entities_fts (entities_fts) VALUES ('delete-all')")
    conn.execute(
        f"INSERT INTO entities_fts (rowid, body) SELECT rowid, {SEARCH_TEXT_SQL} FROM entities WHERE deleted = 0"
    )
    after = {w: sorted(r[0] for r in conn.execute("SELECT rowid FROM entities_fts(?)", (w,))) for w in words}
    assert before == after


def test_apply_pull_sets_cursor_and_refuses_other_tenants(
    vault: Vault, make_vault: Callable[[str], Vault]
) -> None:
    other = make_vault("other")
    other.replica.join("http://hub", "t", "tenant-x", "x", "dev-x", "local_first")
    other.put("note", {"t": "secret"})
    batch = other.replica.pending_batch()
    assert batch is not None
    # another tenant's item is kept aside, never applied, and the pull goes on past it
    stats = vault.replica.apply_pull(as_pull(batch, 5))
    assert vault.count() == 0 and vault.replica.cursor == 5
    [refused] = stats.refused
    assert refused.kind == "item" and "tenant_id" in refused.reason
    [kept] = vault.replica.refusals()
    assert kept.direction == "pull" and kept.entity_id == batch.items[0].entity_id
    assert [e.entity_id for e in vault.events(type="PULL_REFUSED")] == [batch.items[0].entity_id]
    vault.replica.apply_pull(PullResponse(items=[], records=[], cursor=12, has_more=False, head=12))
    assert vault.replica.cursor == 12


@pytest.mark.parametrize(
    "bad",
    [
        {"last_modified_at": "yesterday"},
        {"last_modified_at": "2026-11-32T00:00:00.000Z-0000"},  # the right shape, no real date
        {"payload": msgspec.Raw(b'{"n":1e99999}')},
        {"payload": msgspec.Raw(b'{"t":"\xff"}')},
        {"payload": msgspec.Raw(b'{"n":99999999999999999999}')},
        {"truth_level": 5, "origin_source": AI, "accepted_by_user": True},
    ],
)
def test_a_pulled_item_this_vault_cannot_take_in_is_kept_aside(
    bad: dict[str, object], vault: Vault, make_vault: Callable[[str], Vault]
) -> None:
    """One bad item (a broken or hostile hub) never stops a pull: it is kept aside, reported and
    recorded, and the rest of the page is applied."""
    a = make_vault("a")
    good = a.put("note", {"t": "fine"}).item
    a.put("note", {"t": "x"})
    batch = a.replica.pending_batch()
    assert batch is not None
    for field, value in bad.items():
        setattr(batch.items[1], field, value)
    stats = vault.replica.apply_pull(as_pull(batch, 7))
    assert [i.entity_id for i in vault.list()] == [good.entity_id] and vault.replica.cursor == 7
    [refused] = stats.refused
    assert refused.entity_id == batch.items[1].entity_id and refused.reason.startswith("items[1].")
    assert [r.entity_id for r in vault.replica.refusals("pull")] == [batch.items[1].entity_id]
    assert len(vault.events(type="PULL_REFUSED")) == 1
    vault.list(limit=10)  # and every listing still works


def test_local_queued_version_wins_and_stays_queued(make_vault: Callable[[str], Vault]) -> None:
    a, b = make_vault("a"), make_vault("b")
    eid = a.put("note", {"t": "base"}).item.entity_id
    deliver(a, b)
    b.edit(eid, {"t": "b early"}, source="ai-local:llama3")  # below U1: a suggestion on b
    a_pushed = a.edit(eid, {"t": "a"}).item
    b_batch = b.replica.pending_batch()
    assert b_batch is not None
    # b's AI edit lost locally already (U1 current): it travels as a suggestion item. Against a's
    # unpushed U1 it loses again; a keeps nothing of it: the hub decides when a's edit reaches
    # it (it keeps b's item as a record, which its feed brings to every device).
    stats = a.replica.apply_pull(as_pull(b_batch))
    assert stats.suggestions == 0 and stats.applied == 0 and a.suggestions() == []
    assert a.get(eid) == a_pushed
    queued = a.replica.pending_batch()
    assert queued is not None and [i.last_modified_at for i in queued.items] == [a_pushed.last_modified_at]


def test_local_u1_beats_pulled_lower_level(make_vault: Callable[[str], Vault]) -> None:
    a, b = make_vault("a"), make_vault("b")
    eid = a.put("note", {"t": "ai"}, source=AI).item.entity_id
    deliver(a, b)
    b_user = b.edit(eid, {"t": "user"}).item  # U1 queued on b
    a.edit(eid, {"t": "ai 2"}, source=AI)  # later, but lower level
    stats = deliver(a, b, ack=False)
    assert stats is not None and stats.suggestions == 0
    assert b.get(eid) == b_user  # local won
    queued = b.replica.pending_batch()
    assert queued is not None and [i.last_modified_at for i in queued.items] == [b_user.last_modified_at]
    # the pulled AI version is the hub's to keep (as a suggestion, once b's edit reaches it): a
    # record kept here could be one no other replica keeps (tests/test_convergence.py)
    assert b.suggestions() == []
    assert b.replica.pending_count() == 1  # the hub's version is not pushed back


def test_local_queued_version_that_loses_is_kept_and_pushed(make_vault: Callable[[str], Vault]) -> None:
    a, b = make_vault("a"), make_vault("b")
    eid = a.put("note", {"t": "base"}).item.entity_id
    deliver(a, b)
    mine = a.edit(eid, {"t": "a"}).item
    time.sleep(0.003)
    theirs = b.edit(eid, {"t": "b"}).item
    stats = deliver(b, a)
    assert stats is not None and stats.conflicts == 1
    assert a.get(eid) == theirs
    [rec] = a.conflicts()
    assert rec.item.last_modified_at == mine.last_modified_at
    batch = a.replica.pending_batch()
    assert batch is not None and [i.last_modified_at for i in batch.items] == [mine.last_modified_at]
    # the loser reaches b as a kept item, which a hub keeps as a record (with the same id) and
    # sends b in its feed; b itself keeps nothing of a version that lost to the one it holds
    deliver(a, b)
    assert b.conflicts() == []
    assert a.replica.pending_batch() is None
    assert a.replica.checksum() == b.replica.checksum()


def test_pulled_echo_of_queued_version_clears_it(make_vault: Callable[[str], Vault]) -> None:
    a = make_vault("a")
    a.put("note", {"t": "x"})
    batch = a.replica.pending_batch()
    assert batch is not None
    stats = a.replica.apply_pull(as_pull(batch, 3))  # the hub sends our own push back before the ack came
    assert stats.applied == 0
    assert a.replica.pending_batch() is None and a.replica.cursor == 3


def _record(item_vault: Vault, status: str) -> Record:
    eid = item_vault.put("note", {"t": "mine"}).item.entity_id
    res = item_vault.edit(eid, {"t": "ai"}, source=AI)
    rec = item_vault.get_record(res.record_id or "")
    return Record(
        kind="suggestion",
        id=rec.id,
        entity_id=rec.entity_id,
        entity_type=rec.entity_type,
        status=status,  # type: ignore[arg-type]
        item=rec.item,
        created_at=rec.created_at,
        decided_at="2026-11-22T00:00:00.000Z-0000" if status != "open" else None,
        seq=4,
    )


def test_pulled_records_are_upserted_status_only_forward(make_vault: Callable[[str], Vault]) -> None:
    a, b = make_vault("a"), make_vault("b")
    open_rec = _record(a, "open")
    empty = PullResponse(items=[], records=[open_rec], cursor=4, has_more=False, head=4)
    stats = b.replica.apply_pull(empty)
    assert stats.records == 1
    assert b.get_record(open_rec.id).status == "open"
    assert b.replica.pending_batch() is None  # the hub has it
    assert len(b.events(type="AI_SUGGESTION_GENERATED")) == 1
    rejected = msgspec.structs.replace(
        open_rec, status="rejected", decided_at="2026-11-22T00:00:01.000Z-0000"
    )
    b.replica.apply_pull(PullResponse(items=[], records=[rejected], cursor=5, has_more=False, head=5))
    assert b.get_record(open_rec.id).status == "rejected"
    b.replica.apply_pull(empty)  # an old copy never moves it back
    assert b.get_record(open_rec.id).status == "rejected"


def test_the_hubs_decision_wins_over_a_different_one_made_here(make_vault: Callable[[str], Vault]) -> None:
    # Another device accepted the suggestion first; the rejection made here meanwhile gives
    # way, so every replica ends with the one decision the hub took first.
    a = make_vault("a")
    rec = _record(a, "open")
    first = a.replica.pending_batch()
    assert first is not None
    a.replica.ack(first, hub_ack(first))
    a.reject(rec.id)
    batch = a.replica.pending_batch()
    assert batch is not None and [d.status for d in batch.decisions] == ["rejected"]
    accepted = msgspec.structs.replace(rec, status="accepted", decided_at="2026-11-22T00:00:01.000Z-0000")
    a.replica.apply_pull(PullResponse(items=[], records=[accepted], cursor=6, has_more=False, head=6))
    assert a.get_record(rec.id).status == "accepted"
    assert a.replica.pending_batch() is None and a.replica.pending_count() == 0


def test_pulled_record_of_queued_item_unqueues_it(make_vault: Callable[[str], Vault]) -> None:
    a = make_vault("a")
    rec = _record(a, "open")
    # the entity is still queued; the suggestion item too
    assert a.replica.pending_count() == 2
    a.replica.apply_pull(PullResponse(items=[], records=[rec], cursor=1, has_more=False, head=1))
    assert a.replica.pending_count() == 1


def test_checksum_matches_across_devices(make_vault: Callable[[str], Vault]) -> None:
    a, b = make_vault("a"), make_vault("b")
    assert a.replica.checksum() == b.replica.checksum() == "0000000000000000"
    for n in range(5):
        a.put("note", {"n": n})
    gone = a.put("note", {"n": "x"}).item.entity_id
    a.delete(gone)
    deliver(a, b)
    assert a.replica.checksum() == b.replica.checksum() != "0000000000000000"
    b.put("note", {"n": "only b"})
    assert a.replica.checksum() != b.replica.checksum()


def test_resync_drops_entities_purged_on_the_hub(make_vault: Callable[[str], Vault]) -> None:
    hub_side, dev = make_vault("peer"), make_vault("dev")
    kept = hub_side.put("note", {"t": "kept"}).item.entity_id
    purged = hub_side.put("note", {"t": "purged"}).item.entity_id
    edited = hub_side.put("note", {"t": "edited offline"}).item.entity_id
    snapshot = hub_side.replica.pending_batch()
    assert snapshot is not None
    dev.replica.apply_pull(as_pull(snapshot, 3))
    local_only = dev.put("note", {"t": "never pushed"}).item.entity_id
    dev.edit(edited, {"t": "my offline edit"})
    # the hub purged `purged` and `edited`; a full re-pull brings only `kept`
    dev.replica.begin_resync()
    assert dev.replica.resyncing and dev.replica.cursor == 0
    full = [i for i in snapshot.items if i.entity_id == kept]
    dev.replica.apply_pull(PullResponse(items=full, records=[], cursor=9, has_more=False, head=9))
    assert dev.replica.finish_resync() == 2
    assert not dev.replica.resyncing and dev.replica.cursor == 9
    assert {i.entity_id for i in dev.list(include_deleted=True)} == {kept, local_only}
    assert purged not in {i.entity_id for i in dev.list(include_deleted=True)}
    assert dev.search("purged") == [] and dev.search("offline") == []
    [rec] = dev.conflicts()
    assert rec.entity_id == edited and rec.reason == RESYNC_REASON
    assert payload_of(rec.item) == {"t": "my offline edit"}
    batch = dev.replica.pending_batch()
    assert batch is not None
    assert [i.entity_id for i in batch.items] == [local_only]  # nothing deleted comes back
    with pytest.raises(ConflictState):
        dev.replica.finish_resync()


def test_finish_resync_accepts_seen_ids(make_vault: Callable[[str], Vault]) -> None:
    a, b = make_vault("a"), make_vault("b")
    eid = a.put("note", {"t": "x"}).item.entity_id
    deliver(a, b)
    b.replica.begin_resync()
    assert b.replica.finish_resync([eid]) == 0
    assert b.get(eid).entity_id == eid
