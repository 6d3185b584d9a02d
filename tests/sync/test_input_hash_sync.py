"""The input hash of a local-first tenant through a hub (each backend): both devices key it
alike under the tenant keyring, the hub keeps no plain hash of a device's input, and an
approval asked before a key rotation is redeemed after it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from truthvault.hub.app import HubSettings, create_app
from truthvault.hub.store import HubStore
from truthvault.kernel import ApprovalRequired, decode_entry, hash_key_id, input_hash

from .test_audit_sync import Device


class LocalFirstDevice(Device):
    """An enrolled device of the local-first tenant "fam"."""

    def __init__(self, http: TestClient, store: HubStore, home: Path) -> None:
        super().__init__(http, store, home)
        link = self.vault.replica
        link.join(
            hub_url="http://testserver", token=None, tenant_id=self.vault.tenant_id, tenant_name="fam",
            device_id=self.vault.device_id, vault_mode="local_first", key_path=link.key_path,
        )  # fmt: skip
        self.http = http

    def sync(self) -> None:
        self.connect(self.http)  # a new syncer, as each 'truthvault sync' is: it reads the keyring anew
        self.syncer.sync()


@pytest.fixture
def pair(hub_store: HubStore, tmp_path: Path) -> Iterator[tuple[LocalFirstDevice, LocalFirstDevice]]:
    hub_store.add_tenant("fam", "local_first")
    settings = HubSettings(audit_key_path=str(tmp_path / "audit.key"))
    with TestClient(create_app(hub_store, settings)) as http:
        laptop = LocalFirstDevice(http, hub_store, tmp_path / "laptop")
        phone = LocalFirstDevice(http, hub_store, tmp_path / "phone")
        laptop.sync()  # the tenant's first keyring, wrapped to the phone too
        phone.sync()
        yield laptop, phone
        laptop.vault.close(), phone.vault.close()


def test_an_approval_asked_before_a_rotation_is_redeemed_after_it_and_the_hub_keeps_no_plain_hash(
    pair: tuple[LocalFirstDevice, LocalFirstDevice], hub_store: HubStore
) -> None:
    laptop, phone = pair
    ring = laptop.vault.replica.keyring()
    assert ring is not None and ring.current == phone.vault.replica.keyring().current  # type: ignore[union-attr]
    note = laptop.vault.put("note", {"text": "meet Bob at 5"}).item
    laptop.sync()
    phone.sync()
    ai = laptop.vault.actor("ai-local:llama3")
    params = {"id": note.entity_id}
    with pytest.raises(ApprovalRequired) as asked:
        laptop.vault.kernel.run("entity.delete", params, actor=ai)
    rid = asked.value.request_id
    assert rid is not None
    spec = laptop.vault.kernel.spec("entity.delete")
    model = spec.input.model_validate(params)
    request = laptop.vault.broker.get(rid)
    # every device of the tenant takes the same hash of the same input; it is not the plain one
    assert request.input_hash == phone.vault.kernel.hasher(model) != input_hash(model)
    assert hash_key_id(request.input_hash) == ring.current
    laptop.sync()

    phone.syncer.keys.rotate()  # the phone rotates the tenant's key, then approves
    rotated = phone.vault.replica.keyring()
    assert rotated is not None and rotated.current != ring.current
    phone.sync()
    phone.vault.broker.approve(rid, actor=phone.vault.actor("user:cli"))
    phone.sync()
    laptop.sync()
    assert laptop.vault.replica.keyring().current == rotated.current  # type: ignore[union-attr]
    assert hash_key_id(laptop.vault.kernel.hasher(model)) == rotated.current  # new hashes: the new key

    out = laptop.vault.kernel.run("entity.delete", params, actor=ai, approval=rid)  # asked under the old key
    assert out.outcome == "suggestion"  # type: ignore[attr-defined]  # an AI's delete of your note
    assert laptop.vault.broker.get(rid).status == "used"
    laptop.sync()

    tenant = laptop.vault.tenant_id
    at_hub = hub_store.broker.store(tenant).get(rid)  # type: ignore[attr-defined]
    assert at_hub.input_hash == request.input_hash
    mine = [decode_entry(e.entry) for e in hub_store.audit.entries(tenant) if e.batch_seq is not None]
    assert {e.action for e in mine} >= {"entity.delete"}
    assert all(hash_key_id(e.input_hash) in (ring.current, rotated.current) for e in mine), mine
    [deleted] = [e for e in mine if e.action == "entity.delete" and e.decision == "approved"]
    assert hash_key_id(deleted.input_hash) == rotated.current
