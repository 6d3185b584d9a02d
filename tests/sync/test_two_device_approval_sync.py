"""An action that needs approvals from two devices, through a hub (each backend), for a
local-first tenant of three devices: the laptop's AI asks under a policy with
``@approval("two-devices")``; the phone approves (the hub holds 1 of 2); the tablet approves; only
then does the action run on the laptop. The hub cannot add the missing approval itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from truthvault.errors import ConflictState, NotFound
from truthvault.hub.app import HubSettings, create_app
from truthvault.hub.store import HubStore
from truthvault.kernel import ActionForbidden, Approval, ApprovalRequired, BrokerRequest
from truthvault.sync import push_policy
from truthvault.vault import vault_policies

from .test_input_hash_sync import LocalFirstDevice

Three = tuple[LocalFirstDevice, LocalFirstDevice, LocalFirstDevice]

#: the default roles, plus: an AI's delete needs your approval on two devices
POLICY = """\
@id("owner")
permit (principal in Role::"owner", action, resource);

@id("assistant.reads")
permit (principal in Role::"assistant", action, resource) when { context.risk == "read" };

@id("assistant.writes")
permit (principal in Role::"assistant", action, resource) when { context.risk == "write" };

@id("assistant.delete-on-two-devices")
@approval("two-devices")
@reason("an AI's delete needs your approval on two of your devices")
permit (principal in Role::"assistant", action, resource) when { context.risk == "destructive" };
"""


#: the hub's backend is not what these test (each runs on SQLite only; the hub's store is tested on both)
ON_SQLITE = pytest.mark.parametrize("hub_url", ["sqlite"], indirect=True)


@pytest.fixture
def three(hub_store: HubStore, tmp_path: Path) -> Iterator[Three]:
    hub_store.add_tenant("fam", "local_first")
    settings = HubSettings(audit_key_path=str(tmp_path / "audit.key"))
    with TestClient(create_app(hub_store, settings)) as http:
        laptop, phone, tablet = (
            LocalFirstDevice(http, hub_store, tmp_path / n) for n in ("laptop", "phone", "tablet")
        )
        laptop.sync()  # the tenant's first keyring, wrapped to the others too
        push_policy(laptop.syncer.client, POLICY, "user:cli")  # type: ignore[arg-type]
        for device in (laptop, phone, tablet):
            device.sync()
            assert vault_policies(device.vault).current().text == POLICY
        yield laptop, phone, tablet
        for device in (laptop, phone, tablet):
            device.vault.close()


def _held(store: HubStore, device: LocalFirstDevice, rid: str) -> BrokerRequest:
    held: BrokerRequest | None = store.broker.store(device.vault.tenant_id).get(rid)  # type: ignore[attr-defined]
    assert held is not None
    return held


def _delete(laptop: LocalFirstDevice, note_id: str, approval: str | None = None) -> object:
    actor = laptop.vault.actor("ai-local:llama3")
    return laptop.vault.kernel.run("entity.delete", {"id": note_id}, actor=actor, approval=approval)


def _ask(laptop: LocalFirstDevice) -> tuple[str, str]:
    note = laptop.vault.put("note", {"text": "an old note"}, source="ai-local:llama3").item
    with pytest.raises(ApprovalRequired, match="on two of your devices") as asked:
        _delete(laptop, note.entity_id)
    rid = asked.value.request_id
    assert rid is not None
    return note.entity_id, rid


def test_the_action_runs_only_after_two_devices_approved(three: Three, hub_store: HubStore) -> None:
    laptop, phone, tablet = three
    note, rid = _ask(laptop)
    laptop.sync()
    phone.sync()
    assert phone.vault.broker.get(rid).needed == 2

    phone.vault.broker.approve(rid, actor=phone.vault.actor("user:cli"))
    with pytest.raises(ConflictState, match="already approved on this device"):
        phone.vault.broker.approve(rid, actor=phone.vault.actor("user:mobile"))
    phone.sync()
    partial = _held(hub_store, laptop, rid)
    # the hub holds 1 of 2: the phone's approval, its seal and its name
    assert partial.status == "pending"
    assert [(a.device, a.name) for a in partial.approvals] == [(phone.vault.device_id, "phone")]
    assert partial.approvals[0].seal is not None

    laptop.sync()
    with pytest.raises(ApprovalRequired, match="1 of 2"):
        _delete(laptop, note, rid)
    assert laptop.vault.get(note) is not None  # it did not run

    tablet.sync()
    assert [a.name for a in tablet.vault.broker.counted(tablet.vault.broker.get(rid))] == ["phone"]
    done = tablet.vault.broker.approve(rid, actor=tablet.vault.actor("user:mobile"))
    assert done.status == "approved"
    tablet.sync()
    assert _held(hub_store, laptop, rid).status == "approved"

    laptop.sync()
    _delete(laptop, note, rid)
    assert laptop.vault.broker.get(rid).status == "used"
    with pytest.raises(NotFound, match="was deleted"):
        laptop.vault.get(note)
    laptop.sync()
    assert _held(hub_store, laptop, rid).status == "used"
    phone.sync()
    assert phone.vault.broker.get(rid).status == "used"


@ON_SQLITE
def test_the_asking_device_may_give_one_of_the_two(three: Three, hub_store: HubStore) -> None:
    laptop, phone, _ = three
    note, rid = _ask(laptop)
    laptop.vault.broker.approve(rid, actor=laptop.vault.actor("user:cli"))
    laptop.sync()
    assert [a.device for a in _held(hub_store, laptop, rid).approvals] == [laptop.vault.device_id]
    phone.sync()
    phone.vault.broker.approve(rid, actor=phone.vault.actor("user:cli"))
    phone.sync()
    laptop.sync()
    _delete(laptop, note, rid)
    assert laptop.vault.broker.get(rid).status == "used"
    assert laptop.vault.get(note, include_deleted=True).deleted


def test_the_hub_cannot_give_the_second_approval(three: Three, hub_store: HubStore) -> None:
    laptop, phone, tablet = three
    note, rid = _ask(laptop)
    laptop.sync()
    phone.sync()
    phone.vault.broker.approve(rid, actor=phone.vault.actor("user:cli"))
    phone.sync()
    held = _held(hub_store, laptop, rid)
    (first,) = held.approvals
    # the operator replays the phone's approval as the tablet's, and calls it approved
    replayed = Approval(first.by, tablet.vault.device_id, first.at, first.seal, "tablet")
    forged = held.with_(status="approved", decided_by="user:cli", approvals=(first, replayed))
    store = hub_store.broker.store(laptop.vault.tenant_id)  # type: ignore[attr-defined]
    assert store.update(forged, expect="pending")
    laptop.sync()
    with pytest.raises(ActionForbidden, match="no seal that checks here"):
        _delete(laptop, note, rid)
    assert laptop.vault.get(note) is not None
    assert len(laptop.vault.broker.counted(forged)) == 1


@ON_SQLITE
def test_one_denial_on_any_device_denies_it(three: Three) -> None:
    laptop, phone, tablet = three
    note, rid = _ask(laptop)
    laptop.sync()
    phone.sync()
    tablet.sync()
    phone.vault.broker.approve(rid, actor=phone.vault.actor("user:cli"))
    phone.sync()
    tablet.vault.broker.deny(rid, actor=tablet.vault.actor("user:cli"), reason="keep it")
    tablet.sync()
    laptop.sync()
    with pytest.raises(ActionForbidden, match="denied: keep it"):
        _delete(laptop, note, rid)
