"""The hub's sync events, on both backends: newest first on request, with the device's name,
and an unknown type refused naming the known ones."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from truthvault.errors import InvalidInput
from truthvault.hub.app import create_app
from truthvault.hub.store import SYNC_EVENT_TYPES, HubStore

from .test_store_contract import Dev, _device, at


@pytest.fixture
def devices(hub_store: HubStore) -> tuple[Dev, Dev]:
    hub_store.add_tenant("acme", "cloud_first")
    laptop, phone = _device(hub_store, "acme", "laptop"), _device(hub_store, "acme", "phone")
    laptop.push(laptop.item("n1", at(0)))  # SYNC_PUSH by the laptop
    phone.push(phone.item("n1", at(1)))  # SYNC_PUSH, CONFLICT_DETECTED by the phone
    phone.push(phone.item("n2", at(2)))  # SYNC_PUSH by the phone
    return laptop, phone


def test_events_newest_first_keep_since_and_name_the_device(
    hub_store: HubStore, devices: tuple[Dev, Dev]
) -> None:
    laptop, _ = devices
    tenant = laptop.ctx.tenant_id
    oldest = hub_store.events(tenant)
    newest = hub_store.events(tenant, newest_first=True)
    assert newest == oldest[::-1]
    assert [(e.type, e.device_name) for e in oldest] == [
        ("SYNC_PUSH", "laptop"),
        ("SYNC_PUSH", "phone"),
        ("CONFLICT_DETECTED", "phone"),
        ("SYNC_PUSH", "phone"),
    ]
    # a limit takes the newest N, not the oldest N
    assert hub_store.events(tenant, limit=2, newest_first=True) == oldest[:1:-1]
    # since still means "after this id", whichever way they are listed
    assert hub_store.events(tenant, since=oldest[1].id, newest_first=True) == oldest[:1:-1]
    assert hub_store.events(tenant, since=oldest[1].id, limit=1) == oldest[2:3]


def test_event_types_are_case_insensitive_and_an_unknown_one_is_refused(
    hub_store: HubStore, devices: tuple[Dev, Dev]
) -> None:
    tenant = devices[0].ctx.tenant_id
    assert [e.type for e in hub_store.events(tenant, type="conflict_detected")] == ["CONFLICT_DETECTED"]
    with pytest.raises(InvalidInput, match="type: unknown event type 'BOGUS'") as refused:
        hub_store.events(tenant, type="BOGUS")
    assert all(name in refused.value.message for name in SYNC_EVENT_TYPES)


def test_events_over_http_newest_first_with_device_names(
    hub_store: HubStore, devices: tuple[Dev, Dev]
) -> None:
    laptop, _ = devices
    headers = {"authorization": f"Bearer {laptop.token}"}
    with TestClient(create_app(hub_store)) as client:
        newest = client.get("/v1/events", params={"limit": 1, "order": "newest"}, headers=headers).json()
        assert [(e["type"], e["device_name"]) for e in newest] == [("SYNC_PUSH", "phone")]
        oldest = client.get("/v1/events", params={"limit": 1}, headers=headers).json()
        assert [(e["type"], e["device_name"]) for e in oldest] == [("SYNC_PUSH", "laptop")]
        bogus = client.get("/v1/events", params={"type": "BOGUS"}, headers=headers)
        assert bogus.status_code == 422
        assert bogus.json()["error"]["message"].startswith("type: unknown event type 'BOGUS'")
        assert client.get("/v1/events", params={"order": "sideways"}, headers=headers).status_code == 422
