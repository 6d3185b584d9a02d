"""The sync client against a real hub store on both backends: numbering, purges, cursors."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from truthvault.errors import HubReset
from truthvault.hub.store import Limits, open_store
from truthvault.model import PushRequest, PushResponse
from truthvault.vault import Vault, payload_of

from ..test_resync import StoreClient
from ..test_resync import join_store as _join


def test_a_vault_whose_numbers_fell_behind_the_hubs_loses_nothing(hub_url: str, tmp_path: Path) -> None:
    # A new vault given an old device's token (or a restored copy of the vault file) numbers
    # its changes from 1 again, numbers the hub has already seen from that device.
    store = open_store(hub_url)
    try:
        store.add_tenant("t", "cloud_first")
        _, token = store.add_device("t", "laptop")
        with Vault.open(tmp_path / "old", source="user:cli") as old:
            sync = _join(old, store, token)
            for n in range(5):
                old.put("note", {"text": f"old {n}"})
            sync.sync()
        with Vault.open(tmp_path / "new", source="user:cli") as new:
            sync = _join(new, store, token)
            ids = [new.put("note", {"text": f"new {n}"}).item.entity_id for n in range(3)]
            stats = sync.sync()
            assert stats.push_outcomes == {"applied": 3}
            assert new.replica.pending_count() == 0
            assert new.count() == 8  # the old five came down too
            hub_ids = {i.entity_id for i in store.pull(StoreClient(store, token).ctx, 0, 100).items}
            assert set(ids) <= hub_ids
            assert sync.check().in_sync
            # and numbering goes on from above the hub's
            new.put("note", {"text": "one more"})
            assert sync.push().push_outcomes == {"applied": 1}
    finally:
        store.close()


def _copy_db(src: Path, dst: Path) -> None:
    """A consistent copy of a SQLite database, as a backup tool takes one."""
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)


def test_a_hub_restored_from_a_backup_gets_back_what_it_lost(tmp_path: Path) -> None:
    live, backup = tmp_path / "hub.db", tmp_path / "backup.db"
    store = open_store(str(live))
    store.add_tenant("t", "cloud_first")
    tokens = [store.add_device("t", name)[1] for name in ("laptop", "phone")]
    with (
        Vault.open(tmp_path / "laptop", source="user:cli") as laptop,
        Vault.open(tmp_path / "phone", source="user:cli") as phone,
    ):
        a = laptop.put("note", {"text": "before the backup"}).item.entity_id
        syncs = [_join(laptop, store, tokens[0]), _join(phone, store, tokens[1])]
        for s in syncs:
            s.sync()
        _copy_db(live, backup)

        # After the backup: an edit, a new note, a suggestion and a deletion reach the hub.
        laptop.edit(a, {"text": "after the backup"})
        b = laptop.put("note", {"text": "new after the backup"}).item.entity_id
        gone = phone.put("note", {"text": "deleted after the backup"}).item.entity_id
        syncs[1].sync()
        syncs[0].sync()
        rid = phone.edit(a, {"text": "an AI's idea"}, source="ai-cloud:x/y").record_id
        phone.delete(gone)
        syncs[1].sync()
        syncs[0].sync()
        assert laptop.replica.pending_count() == phone.replica.pending_count() == 0

        # The hub's database is restored from the backup: it lost all of that.
        store.close()
        _copy_db(backup, live)
        store = open_store(str(live))
        syncs = [_join(laptop, store, tokens[0]), _join(phone, store, tokens[1])]
        first = syncs[1].sync()  # the phone's cursor is ahead of the hub: it sends it all again
        assert first.resynced
        for s in [*syncs, *syncs]:
            s.sync()

        hub = {i.entity_id: i for i in store.pull(syncs[0].client.ctx, 0, 100).items}  # type: ignore[attr-defined]
        assert payload_of(hub[a]) == {"text": "after the backup"} and b in hub and hub[gone].deleted
        assert rid in {r.id for r in store.list_records(syncs[0].client.ctx, status=None)}  # type: ignore[attr-defined]
        for vault, s in zip((laptop, phone), syncs, strict=True):
            assert vault.replica.pending_count() == 0 and s.check().in_sync
            assert payload_of(vault.get(a)) == {"text": "after the backup"} and vault.get(b)
            assert [r.id for r in vault.suggestions()] == [rid]
    store.close()


def test_a_cursor_ahead_of_the_hub_is_answered_hub_reset(hub_url: str, tmp_path: Path) -> None:
    store = open_store(hub_url)
    try:
        store.add_tenant("t", "cloud_first")
        _, token = store.add_device("t", "laptop")
        ctx = StoreClient(store, token).ctx
        assert store.pull(ctx, 0, 10).head == 0
        with pytest.raises(HubReset, match="ahead of the hub"):
            store.pull(ctx, 5, 10)
        with pytest.raises(HubReset):
            store.push(ctx, PushRequest(items=[], cursor=5), Limits(), time.time_ns() // 1_000_000)
    finally:
        store.close()


def test_after_a_purge_a_lower_level_write_cannot_bring_a_deleted_entity_back(
    hub_url: str, tmp_path: Path
) -> None:
    store = open_store(hub_url)
    try:
        store.add_tenant("t", "cloud_first")
        tokens = [store.add_device("t", name)[1] for name in ("laptop", "phone")]
        with (
            Vault.open(tmp_path / "laptop", source="user:cli") as laptop,
            Vault.open(tmp_path / "phone", source="user:cli") as phone,
        ):
            syncs = [_join(laptop, store, tokens[0]), _join(phone, store, tokens[1])]
            eid = laptop.put("note", {"text": "mine"}).item.entity_id
            for s in syncs:
                s.sync()
            laptop.delete(eid)
            for s in syncs:
                s.sync()
            assert store.purge_tombstones(time.time_ns() // 1_000_000 + 60_000) == 1
            # The phone still holds the user's tombstone: an AI's write is only a suggestion.
            result = phone.put("note", {"text": "an AI brings it back"}, entity_id=eid, source="ai-local:m")
            assert result.record_id is not None
            for s in [*syncs, *syncs]:
                s.sync()
            ctx = syncs[0].client.ctx  # type: ignore[attr-defined]
            assert eid not in {i.entity_id for i in store.pull(ctx, 0, 100).items}
            assert [r.id for r in store.list_records(ctx, status=None)] == [result.record_id]
            for vault, s in zip((laptop, phone), syncs, strict=True):
                assert vault.get(eid, include_deleted=True).deleted and [
                    r.id for r in vault.suggestions()
                ] == [result.record_id]
                assert s.check().in_sync
    finally:
        store.close()


def test_a_rejoined_vault_pushes_its_queue_as_the_new_device_and_nothing_twice(
    hub_url: str, tmp_path: Path
) -> None:
    # A revoked device enrolled again: a new device of the same tenant, whose numbering at the
    # hub starts afresh, pushing what the old one queued, including a batch the hub applied
    # but whose answer never came back.
    store = open_store(hub_url)
    try:
        store.add_tenant("t", "cloud_first")
        _, old_token = store.add_device("t", "laptop")
        with Vault.open(tmp_path / "laptop", source="user:cli") as laptop:
            sync = _join(laptop, store, old_token)
            synced = laptop.put("note", {"text": "synced"}).item.entity_id
            sync.sync()
            laptop.put("note", {"text": "applied, answer lost"})
            laptop.put("note", {"text": "ai draft"}, entity_id=synced, source="ai-local:llama3")
            batch = laptop.replica.pending_batch()
            assert batch is not None
            StoreClient(store, old_token).push(batch)  # never acknowledged here
            laptop.edit(synced, {"text": "synced, then edited"})
            laptop.put("note", {"text": "never pushed"})
            store.revoke_device("t", "laptop")

            _, new_token = store.add_device("t", "laptop-2")
            sync = _join(laptop, store, new_token)
            stats = sync.sync()
            assert stats.push_outcomes == {"duplicate": 1, "applied": 2, "suggestion": 1}
            assert laptop.replica.pending_count() == 0
            ctx = StoreClient(store, new_token).ctx
            assert store.list_records(ctx, "conflict", None, 100) == []  # nothing taken for another's
            assert len(store.list_records(ctx, "suggestion", None, 100)) == 1  # kept once
            texts = sorted(payload_of(i)["text"] for i in store.pull(ctx, 0, 100).items)
            assert texts == ["applied, answer lost", "never pushed", "synced, then edited"]
            assert sync.check().in_sync
    finally:
        store.close()


def test_the_next_batch_goes_while_the_last_is_acknowledged_and_an_edit_in_flight_stays_queued(
    hub_url: str, tmp_path: Path
) -> None:
    # A push of several batches sends the next one before acknowledging the one answered; a
    # version edited while the batch holding it is at the hub is pushed again, never lost.
    store = open_store(hub_url)
    try:
        store.add_tenant("t", "cloud_first")
        _, token = store.add_device("t", "laptop")
        with Vault.open(tmp_path / "laptop", source="user:test") as laptop:
            sync = _join(laptop, store, token)
            sync.batch = 4
            ids = [laptop.put("note", {"text": f"note {n}"}).item.entity_id for n in range(10)]
            client, ack = sync.client, laptop.replica.ack
            started: list[list[str]] = []
            second_started = threading.Event()
            overlapped: list[bool] = []

            def push(batch: PushRequest) -> PushResponse:
                started.append([i.entity_id for i in batch.items])
                if len(started) == 2:
                    second_started.set()
                    # an edit of a version in this batch, made while the hub holds the batch
                    laptop.edit(ids[5], {"text": "edited in flight"})
                return StoreClient.push(client, batch)  # type: ignore[arg-type]

            def acknowledge(request: PushRequest, response: PushResponse) -> None:
                if not overlapped:
                    overlapped.append(second_started.wait(10))
                ack(request, response)

            sync.client.push = push  # type: ignore[method-assign]
            laptop.replica.ack = acknowledge  # type: ignore[method-assign]
            stats = sync.push()
            assert overlapped == [True]  # the second batch was sent before the first was acknowledged
            assert started[:2] == [ids[0:4], ids[4:8]] and started[2][:2] == ids[8:10]
            # the edit, queued again with a new number: read ahead with the third batch, or after it
            assert [eid for batch in started[2:] for eid in batch] == [*ids[8:10], ids[5]]
            assert stats.pushed == 11 and stats.push_outcomes == {"applied": 11}
            assert laptop.replica.pending_count() == 0
            ctx = StoreClient(store, token).ctx
            texts = {i.entity_id: payload_of(i)["text"] for i in store.pull(ctx, 0, 100).items}
            assert texts[ids[5]] == "edited in flight" and len(texts) == 10
            assert sync.check().in_sync
    finally:
        store.close()
