"""The /v1/audit endpoints: signed checkpoints, proofs a device verifies, device batches, and a
sync push recorded in the log."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from fastapi.testclient import TestClient

from truthvault.crypto import DeviceKeys
from truthvault.hub.app import HubSettings, create_app
from truthvault.hub.store import HubStore
from truthvault.kernel import (
    Actor,
    AuditRecord,
    Checkpoint,
    decode_entry,
    encode_record,
    leaf_hash,
    sign_batch,
    verify_checkpoint,
    verify_consistency,
    verify_inclusion,
)
from truthvault.model import PushRequest, encode

from .test_auth import Signer


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "hub" / "audit.key"


@pytest.fixture
def client(hub_store: HubStore, key_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(hub_store, HubSettings(audit_key_path=str(key_path)))) as c:
        yield c


@pytest.fixture
def dev(client: TestClient, hub_store: HubStore) -> Signer:
    hub_store.add_tenant("alpha", "local_first")
    return Signer(client, hub_store, "alpha", "laptop")


def _entries(dev: Signer, n: int, start: int = 0) -> list[bytes]:
    actor = Actor("user:voice", device_id=dev.id, tenant_id=dev.tenant_id)
    return [
        encode_record(
            AuditRecord(dev.tenant_id, "notes.create", "1.0.0", actor, "allowed", f"t{i}", f"{i:064x}")
        )
        for i in range(start, start + n)
    ]


def _upload(dev: Signer, seq: int, entries: list[bytes], keys: DeviceKeys | None = None) -> object:
    batch = sign_batch((keys or dev.keys).sign, dev.tenant_id, dev.id, seq, entries)
    return dev.call("POST", "/v1/audit/entries", body=msgspec.json.encode(batch))


def test_a_device_uploads_a_signed_batch_and_verifies_what_the_hub_proves(
    dev: Signer, key_path: Path
) -> None:
    entries = _entries(dev, 5)
    r = _upload(dev, 1, entries)
    assert r.status_code == 200 and r.json() == {"first": 0, "count": 5, "appended": True}  # type: ignore[attr-defined]
    assert _upload(dev, 1, entries).json()["appended"] is False  # type: ignore[attr-defined]
    cp = msgspec.convert(dev.call("GET", "/v1/audit/checkpoint").json(), Checkpoint)
    assert cp.size == 5 and cp.tenant == dev.tenant_id and verify_checkpoint(cp)
    # the key is the hub's own, in a file only its owner reads
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    assert cp.key == DeviceKeys.load(key_path).public_bundle()["sign"]
    proof = dev.call("GET", "/v1/audit/proof", "index=3&size=5").json()
    assert proof["entry"].encode() == entries[3]
    path = [bytes.fromhex(h) for h in proof["proof"]]
    assert verify_inclusion(leaf_hash(entries[3]), 3, 5, path, cp.root_hash)
    more = _entries(dev, 4, 5)
    assert _upload(dev, 2, more).status_code == 200  # type: ignore[attr-defined]
    new = msgspec.convert(dev.call("GET", "/v1/audit/checkpoint").json(), Checkpoint)
    c = dev.call("GET", "/v1/audit/consistency", "first=5&second=9").json()
    assert verify_consistency(5, 9, cp.root_hash, new.root_hash, [bytes.fromhex(h) for h in c["proof"]])
    page = dev.call("GET", "/v1/audit/entries", "from=4&limit=2").json()["entries"]
    assert [(e["index"], e["entry"].encode(), e["batch"]) for e in page] == [
        (4, entries[4], 1),
        (5, more[0], 2),
    ]


def test_the_hub_refuses_batches_it_cannot_attribute(
    dev: Signer, client: TestClient, hub_store: HubStore
) -> None:
    forged = _upload(dev, 1, _entries(dev, 2), keys=DeviceKeys.generate())
    assert forged.status_code == 422 and "bad signature" in forged.json()["error"]["message"]  # type: ignore[attr-defined]
    hub_store.add_tenant("beta", "cloud_first")
    other = Signer(client, hub_store, "beta", "phone")
    # a device cannot upload for another device (or tenant), even signed by itself
    batch = sign_batch(other.keys.sign, dev.tenant_id, dev.id, 1, _entries(dev, 1))
    r = other.call("POST", "/v1/audit/entries", body=msgspec.json.encode(batch))
    assert r.status_code == 403
    assert other.call("POST", "/v1/audit/entries", body=b"{}").status_code == 422
    bad = other.call("GET", "/v1/audit/proof", "index=0&size=1")
    assert bad.status_code == 422 and "index" in bad.json()["error"]["message"]
    assert hub_store.audit.head(dev.tenant_id)[0] == 0


def test_each_sync_push_is_one_entry_naming_ids_and_versions(dev: Signer, hub_store: HubStore) -> None:
    items = [dev.item(f"e{i}", "secret text") for i in range(3)]
    body = encode(PushRequest(items=items))
    assert dev.call("POST", "/v1/sync/push", body=body).status_code == 200
    assert dev.call("POST", "/v1/sync/push", body=body).status_code == 200  # a replay: not recorded
    hub_store.audit_queue.flush(dev.tenant_id)  # queued at the push, sequenced in the background
    stored = hub_store.audit.entries(dev.tenant_id)
    assert len(stored) == 1
    entry = decode_entry(stored[0].entry)
    assert (entry.action, entry.device, entry.decision) == ("sync.push", dev.id, "allowed")
    assert entry.targets == [(f"e{i}", items[i].version) for i in range(3)]
    assert b"secret" not in stored[0].entry
    assert hub_store.audit.verify(dev.tenant_id) == 1


def test_a_taken_batch_number_is_a_409_naming_the_next_free_one_and_the_entries_held(
    dev: Signer, hub_store: HubStore
) -> None:
    first = _entries(dev, 3)
    assert _upload(dev, 1, first).status_code == 200  # type: ignore[attr-defined]
    stored = hub_store.audit.entries(dev.tenant_id)
    r = _upload(dev, 1, [first[1], *_entries(dev, 1, 10)])
    assert r.status_code == 409, r.text  # type: ignore[attr-defined]
    error = r.json()["error"]  # type: ignore[attr-defined]
    assert (error["code"], error["next_seq"], error["held"]) == ("audit_batch_taken", 2, [0])
    # the same under a new number: refused alike, nothing appended, nothing changed
    r = _upload(dev, 7, [first[1], *_entries(dev, 1, 10)])
    assert r.status_code == 409 and r.json()["error"]["held"] == [0]  # type: ignore[attr-defined]
    assert hub_store.audit.entries(dev.tenant_id) == stored
    assert _upload(dev, 2, _entries(dev, 1, 10)).status_code == 200  # type: ignore[attr-defined]
