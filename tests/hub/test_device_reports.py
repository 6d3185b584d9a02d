"""What a device reports at sync over HTTP (``PUT /v1/contract-use``), on each backend: its
app version, last sync and unsynced changes are kept per device; an older client's report of
versions alone still works; bad input is a 422 naming the field."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from truthvault.hub import device_risks
from truthvault.hub.app import HubSettings, create_app
from truthvault.hub.store import HubStore


@pytest.fixture
def http(hub_store: HubStore) -> Iterator[tuple[TestClient, dict[str, str], HubStore]]:
    hub_store.add_tenant("alpha", "cloud_first")
    _, token = hub_store.add_device("alpha", "laptop")
    with TestClient(create_app(hub_store, HubSettings(purge_interval_s=3600))) as client:
        yield client, {"authorization": f"Bearer {token}"}, hub_store


def test_a_report_is_kept_per_device(http: tuple[TestClient, dict[str, str], HubStore]) -> None:
    client, auth, store = http
    body = {
        "held": {"note": [1]},
        "app_version": "0.1.0",
        "last_sync_at": "2026-11-01T10:00:00+00:00",
        "pending": 120,
        "parked": 3,
    }
    assert client.put("/v1/contract-use", json=body, headers=auth).json() == {"noted": 1}
    tenant = store.get_tenant("alpha")
    [(report, reported_at)] = store.contracts.reports(tenant.id).values()
    assert (report.app_version, report.previous_sync_at, report.pending, report.parked) == (
        "0.1.0",
        "2026-11-01T10:00:00.000Z",
        120,
        3,
    )
    assert reported_at.endswith("Z")
    [risk] = device_risks(store, "alpha")
    assert str(risk.risk.level) == "high" and risk.risk.reasons == (
        "123 unsynced changes (high threshold: 100)",
    )
    # a report without the new fields (an older client) leaves the last one as it was
    assert client.put("/v1/contract-use", json={"held": {"note": [1]}}, headers=auth).status_code == 200
    assert next(iter(store.contracts.reports(tenant.id).values()))[0].pending == 120


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"pending": -1}, "pending"),
        ({"parked": "many"}, "parked"),
        ({"last_sync_at": "yesterday"}, "last_sync_at"),
        ({"last_sync_at": "2026-11-01T10:00:00"}, "last_sync_at"),  # no zone: ambiguous
        ({"app_version": ""}, "app_version"),
        ({"app_version": "x" * 65}, "app_version"),
        ({"app_version": "0.1\u0000"}, "app_version"),  # no NUL reaches PostgreSQL
        ({"last_sync_at": "0001-01-01T00:00:00+14:00"}, "last_sync_at"),  # year 0 in UTC
        ({"last_sync_at": "1900-01-01T00:00:00Z"}, "last_sync_at"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    http: tuple[TestClient, dict[str, str], HubStore], extra: dict[str, object], field: str
) -> None:
    client, auth, store = http
    answer = client.put("/v1/contract-use", json={"held": {"note": [1]}, **extra}, headers=auth)
    assert answer.status_code == 422
    assert field in answer.json()["error"]["message"]
    assert store.contracts.reports(store.get_tenant("alpha").id) == {}


def test_an_upcaster_is_checked_when_its_version_is_added(
    http: tuple[TestClient, dict[str, str], HubStore],
) -> None:
    client, auth, _ = http
    schema = {"type": "object", "properties": {"body": {"type": "string"}}, "required": ["body"]}
    bad = {**schema, "x-upcast": {"from_major": 1, "rename": {"text": 5}}}
    answer = client.post("/v1/contracts/note", json={"schema": bad, "major": True}, headers=auth)
    assert answer.status_code == 422
    assert answer.json()["error"]["message"].startswith("schema.x-upcast.rename: must map old field names")
    # a compatible version (not a new major one) has nothing to upcast from
    compatible = {
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "title": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "extra": {"type": "string"},
        },
        "x-upcast": {"from_major": 1},
    }
    answer = client.post("/v1/contracts/note", json={"schema": compatible}, headers=auth)
    assert answer.status_code == 422 and "mark it --major" in answer.json()["error"]["message"]
    good = {**schema, "x-upcast": {"from_major": 1, "rename": {"text": "body"}}}
    answer = client.post("/v1/contracts/note", json={"schema": good, "major": True}, headers=auth)
    assert answer.status_code == 201 and answer.json()["schema"]["x-upcast"]["rename"] == {"text": "body"}
