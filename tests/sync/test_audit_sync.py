"""A device's audit log: its outbox goes up as signed batches at each sync, and the hub's new
checkpoint is accepted only when it extends the one the device kept."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from truthvault.crypto import DeviceKeys
from truthvault.hub.app import HubSettings, create_app
from truthvault.hub.store import HubStore
from truthvault.kernel import (
    Actor,
    AuditBatchTaken,
    AuditInconsistent,
    AuditRecord,
    AuditTampered,
    DeviceBatch,
    decode_entry,
    encode_record,
)
from truthvault.sync import AuditStep, HubClient, Syncer
from truthvault.vault import Vault


def _record(i: int) -> AuditRecord:
    # as the device's kernel makes them: the vault fills in the ids it has when they go up
    return AuditRecord("", "notes.create", "1.0.0", Actor("user:voice"), "allowed", f"t{i}", f"{i:064x}")


class Device:
    """An enrolled device's vault and syncer, talking to an in-process hub app."""

    def __init__(self, http: TestClient, store: HubStore, home: Path) -> None:
        self.keys = DeviceKeys.generate()
        bundle = self.keys.public_bundle()
        code = store.create_enrol_code("fam")
        r = http.post(
            "/v1/enroll",
            json={
                "code": code,
                "device_name": home.name,
                "sign_public": bundle["sign"],
                "box_public": bundle["box"],
            },
        )
        joined = r.json()
        self.vault = Vault.open(home, source="user:cli")
        key_file = home.parent / f"{home.name}.key"
        self.keys.save(key_file)
        self.vault.replica.join(
            hub_url="http://testserver", token=None, tenant_id=joined["tenant_id"], tenant_name="fam",
            device_id=joined["device_id"], vault_mode="cloud_first", key_path=str(key_file),
        )  # fmt: skip
        self.connect(http)

    def connect(self, http: TestClient) -> None:
        client = HubClient(
            "http://testserver", keys=self.keys, device_id=self.vault.device_id, transport=http._transport
        )
        self.syncer = Syncer(self.vault, client, device_keys=self.keys)
        self.step = AuditStep(self.vault, client, self.keys)


@pytest.fixture
def hub(hub_store: HubStore, tmp_path: Path) -> Iterator[TestClient]:
    hub_store.add_tenant("fam", "cloud_first")
    settings = HubSettings(audit_key_path=str(tmp_path / "audit.key"))
    with TestClient(create_app(hub_store, settings)) as http:
        yield http


@pytest.fixture
def device(hub: TestClient, hub_store: HubStore, tmp_path: Path) -> Iterator[Device]:
    d = Device(hub, hub_store, tmp_path / "laptop")
    yield d
    d.vault.close()


def test_entries_go_up_signed_and_the_checkpoint_is_kept(device: Device, hub_store: HubStore) -> None:
    for i in range(3):
        device.vault.audit.append(_record(i))
    with pytest.raises(RuntimeError), device.vault._db.tx():  # an action that fails keeps no entry
        device.vault.audit.append(_record(99))
        raise RuntimeError("the action failed")
    assert device.vault.audit.pending() == 3
    device.vault.put("note", {"text": "hello"})
    device.syncer.sync()
    assert device.vault.audit.pending() == 0
    kept = device.vault.audit.checkpoint()
    assert kept is not None and kept == device.syncer.checkpoint
    stored = hub_store.audit.entries(device.vault.tenant_id)
    assert kept.size == len(stored) == 4  # the push's own entry and the device's three
    mine = [e for e in stored if e.batch_seq is not None]
    assert [e.device_id for e in mine] == [device.vault.device_id] * 3
    assert b'"t1"' in mine[1].entry and device.vault.device_id.encode() in mine[1].entry
    result = device.step.proof(mine[2].index)
    assert result.entry["at"] == "t2" and result.checkpoint.size == 4
    checked, start, at = device.step.verify()
    assert (checked, start, at.size, at.root) == (4, 0, 4, result.checkpoint.root)
    device.vault.audit.append(_record(3))
    device.syncer.sync()
    assert device.step.verify()[:2] == (1, 4)  # only what was appended since
    assert device.step.verify(full=True)[:2] == (5, 0)


def test_a_device_refuses_a_hub_whose_history_was_rewritten(device: Device, hub_store: HubStore) -> None:
    for i in range(5):
        device.vault.audit.append(_record(i))
    device.syncer.sync()
    kept = device.vault.audit.checkpoint()
    assert kept is not None and kept.size == 5
    # the hub's operator rewrites the log: drop it and write another, longer history
    tid = device.vault.tenant_id
    db = hub_store.audit.database
    with db.write() as conn:
        for table in ("audit_entries", "audit_nodes", "audit_heads", "audit_batches"):
            conn.execute(f"DELETE FROM {table} WHERE tenant_pk = ?", (db.tenant_pk(tid),))
    forged = [encode_record(_record(100 + i)) for i in range(7)]
    hub_store.audit.append(tid, forged)
    with pytest.raises(AuditInconsistent) as caught:
        device.syncer.sync()
    _, new_root = hub_store.audit.head(tid)
    assert kept.root in caught.value.message and new_root.hex() in caught.value.message
    assert "rewritten" in caught.value.message
    assert device.vault.audit.checkpoint() == kept  # nothing kept changed
    with pytest.raises(AuditInconsistent):
        device.step.proof(0)


def test_a_device_refuses_a_checkpoint_under_another_key_or_a_shrunk_log(
    device: Device, hub_store: HubStore, tmp_path: Path
) -> None:
    device.vault.audit.append(_record(0))
    device.syncer.sync()
    kept = device.vault.audit.checkpoint()
    other = HubSettings(audit_key_path=str(tmp_path / "other.key"))
    with TestClient(create_app(hub_store, other)) as http:
        device.connect(http)
        with pytest.raises(AuditInconsistent, match="another key"):
            device.syncer.sync()
    assert device.vault.audit.checkpoint() == kept


def test_verify_names_an_entry_the_hub_changed(device: Device, hub_store: HubStore, hub_sql: object) -> None:
    for i in range(6):
        device.vault.audit.append(_record(i))
    device.syncer.sync()
    tid = device.vault.tenant_id
    db = hub_store.audit.database
    with db.write() as conn:
        conn.execute(
            "UPDATE audit_entries SET entry = ? WHERE tenant_pk = ? AND idx = 3",
            (encode_record(_record(42)), db.tenant_pk(tid)),
        )
    with pytest.raises(AuditTampered, match="do not hash to the checkpoint"):
        device.step.verify(full=True)


def _restore(vault: Vault, backup: Path) -> None:
    with closing(sqlite3.connect(backup)) as copy:
        copy.backup(vault._db.conn)


def _backup(vault: Vault, backup: Path) -> None:
    with closing(sqlite3.connect(backup)) as copy:
        vault._db.conn.backup(copy)


def test_a_restored_vault_sends_each_entry_once(device: Device, hub_store: HubStore, tmp_path: Path) -> None:
    """A backup taken with entries not yet sent: they went up after it (in a batch whose number
    the restored vault gives to other entries). After the restore the hub refuses the reused
    number and names the entries it holds; the device leaves those out, numbers the rest from
    the hub's next free number, and every entry is in the log exactly once."""
    vault = device.vault
    vault.audit.append(_record(0))
    device.syncer.sync()  # batch 1
    vault.audit.append(_record(1))
    vault.audit.append(_record(2))
    _backup(vault, tmp_path / "backup.db")  # 1 and 2 unsent
    device.syncer.sync()  # batch 2: entries 1, 2
    vault.audit.append(_record(3))
    device.syncer.sync()  # batch 3: entry 3
    tid = vault.tenant_id
    before = hub_store.audit.entries(tid)
    _restore(vault, tmp_path / "backup.db")
    vault.audit.append(_record(4))
    device.syncer.sync()  # batch 2 again (1, 2, 4): refused, then 4 alone as batch 4
    assert vault.audit.pending() == 0
    stored = hub_store.audit.entries(tid)
    assert stored[: len(before)] == before  # what the hub held is unchanged
    ats = [decode_entry(e.entry).at for e in stored if e.batch_seq is not None]
    assert sorted(ats) == ["t0", "t1", "t2", "t3", "t4"]
    assert [e.batch_seq for e in stored if e.batch_seq is not None] == [1, 2, 2, 3, 4]
    assert hub_store.audit.verify(tid) == len(stored)
    vault.audit.append(_record(5))
    device.syncer.sync()  # and later batches go on from there
    assert vault.audit.pending() == 0 and hub_store.audit.batch(tid, vault.device_id, 5) is not None


def test_a_hub_that_refuses_the_renumbered_batch_too_fails_the_sync_once(
    device: Device, hub_store: HubStore, tmp_path: Path
) -> None:
    """The device renumbers once per refused batch: a hub that refuses again (or names no free
    number) ends the upload with its error, the outbox kept, never a loop."""
    vault = device.vault
    vault.audit.append(_record(0))
    device.syncer.sync()
    tid, dev = vault.tenant_id, vault.device_id
    taken: list[int] = []
    real = hub_store.audit.append_batch

    def refuse(batch: DeviceBatch, sign_public: str) -> tuple[int, bool]:
        taken.append(batch.seq)
        raise AuditBatchTaken("taken", next_seq=batch.seq + 10)

    hub_store.audit.append_batch = refuse  # type: ignore[method-assign]
    try:
        vault.audit.append(_record(1))
        with pytest.raises(AuditBatchTaken):
            device.step.upload()
    finally:
        hub_store.audit.append_batch = real  # type: ignore[method-assign]
    assert taken == [2, 12] and vault.audit.pending() == 1
    assert device.step.upload() == 1  # the next sync sends it, under the number it has now
    assert hub_store.audit.batch(tid, dev, 12) is not None


def test_a_restored_vault_whose_batches_are_packed_otherwise_syncs_at_once(
    device: Device, hub_store: HubStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup holding unsent entries that went up after it, in batches packed otherwise than
    the restored vault packs them (another batch size, a second restore): more than one batch in
    a row is refused. Each refusal that drops entries the hub holds is progress, so the first
    sync succeeds and every entry is in the log once (a refusal that drops nothing ends it)."""
    from truthvault.vault import _audit as vault_audit

    vault = device.vault
    vault.audit.append(_record(0))
    device.syncer.sync()  # batch 1
    for i in range(1, 6):
        vault.audit.append(_record(i))
    _backup(vault, tmp_path / "backup.db")  # 1..5 unsent
    monkeypatch.setattr(vault_audit, "BATCH_ENTRIES", 3)
    device.syncer.sync()  # batches 2: 1..3, 3: 4..5
    tid = vault.tenant_id
    _restore(vault, tmp_path / "backup.db")
    monkeypatch.setattr(vault_audit, "BATCH_ENTRIES", 2)
    vault.audit.append(_record(6))
    device.syncer.sync()  # 2: 1,2 refused (taken, both held); 4: 3,4 refused (both held); 4: 5,6 ...
    assert vault.audit.pending() == 0
    stored = hub_store.audit.entries(tid)
    ats = sorted(decode_entry(e.entry).at for e in stored if e.batch_seq is not None)
    assert ats == [f"t{i}" for i in range(7)]
    assert hub_store.audit.verify(tid) == len(stored)
