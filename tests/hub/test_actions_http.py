"""``POST /v1/actions/{name}``: a device runs the hub's actions through the kernel, each in the
OpenAPI document with its schema; errors are structured; tenants stay apart."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from truthvault.hub import HUB_ACTIONS, run_as_admin
from truthvault.hub.app import HubSettings, create_app
from truthvault.hub.store import HubStore

from .test_auth import Signer


@pytest.fixture
def client(hub_store: HubStore) -> Iterator[TestClient]:
    hub_store.add_tenant("alpha", "cloud_first")
    hub_store.add_tenant("beta", "cloud_first")
    with TestClient(create_app(hub_store, HubSettings())) as c:
        yield c


def test_every_hub_action_is_in_the_openapi_document_with_its_schemas(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for spec in HUB_ACTIONS:
        op = doc["paths"][f"/v1/actions/{spec.name}"]["post"]
        body = op["requestBody"]["content"]["application/json"]["schema"]
        assert body["required"] == ["input"] and body["properties"]["input"]["type"] == "object"
        assert spec.version in op["description"] and str(spec.risk) in op["description"]
        assert "200" in op["responses"]
    listed = client.get("/v1/actions").json()
    assert {a["name"] for a in listed} == {s.name for s in HUB_ACTIONS}


def test_a_device_runs_an_action_and_gets_its_typed_result(client: TestClient, hub_store: HubStore) -> None:
    laptop = Signer(client, hub_store, "alpha", "laptop")
    Signer(client, hub_store, "alpha", "phone")
    r = laptop.post("/v1/actions/tenant.code", {"input": {"ttl_s": 60}})
    assert r.status_code == 200, r.text
    assert r.json()["tenant"] == "alpha" and len(r.json()["code"]) > 10
    r = laptop.post("/v1/actions/device.revoke", {"input": {"name": "phone"}, "source": "user:cli"})
    assert r.status_code == 200 and r.json()["revoked"] is True
    assert [d.revoked for d in hub_store.list_devices("alpha") if d.name == "phone"] == [True]


def test_bad_input_is_422_naming_the_field_and_changes_nothing(
    client: TestClient, hub_store: HubStore
) -> None:
    laptop = Signer(client, hub_store, "alpha", "laptop")
    Signer(client, hub_store, "alpha", "phone")
    for body, field in (
        ({"input": {"nom": "phone"}}, "name"),
        ({"input": {"name": ""}}, "name"),
        ({"input": {"name": "phone"}, "extra": 1}, "extra"),
        ({"input": {"name": "phone"}, "source": 7}, "source"),
    ):
        r = laptop.post("/v1/actions/device.revoke", body)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "VALIDATION_ERROR" and r.json()["error"]["field"] == field
    assert not any(d.revoked for d in hub_store.list_devices("alpha"))


def test_ai_may_not_revoke_a_device_and_the_refusal_is_403(client: TestClient, hub_store: HubStore) -> None:
    laptop = Signer(client, hub_store, "alpha", "laptop")
    Signer(client, hub_store, "alpha", "phone")
    body = {"input": {"name": "phone"}, "source": "ai-cloud:openai/gpt"}
    r = laptop.post("/v1/actions/device.revoke", body)
    assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN", r.text
    assert "builtin." in r.json()["error"]["policies"]
    assert not any(d.revoked for d in hub_store.list_devices("alpha"))


def test_an_action_never_reaches_another_tenant(client: TestClient, hub_store: HubStore) -> None:
    laptop = Signer(client, hub_store, "alpha", "laptop")
    Signer(client, hub_store, "beta", "phone")
    r = laptop.post("/v1/actions/device.revoke", {"input": {"name": "phone"}})
    assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
    assert not any(d.revoked for d in hub_store.list_devices("beta"))


def test_an_unknown_action_is_404_and_no_device_means_401(client: TestClient, hub_store: HubStore) -> None:
    laptop = Signer(client, hub_store, "alpha", "laptop")
    assert laptop.post("/v1/actions/device.nope", {"input": {}}).status_code == 404
    assert client.post("/v1/actions/tenant.code", json={"input": {}}).status_code == 401


def test_the_admin_runs_the_same_actions_on_the_hub_machine(hub_store: HubStore) -> None:
    hub_store.add_tenant("alpha", "cloud_first")
    hub_store.add_device("alpha", "phone")
    code = run_as_admin(hub_store, "alpha", "tenant.code", {"ttl_s": 60})["code"]
    assert isinstance(code, str) and code
    assert run_as_admin(hub_store, "alpha", "device.revoke", {"name": "phone"})["revoked"] is True
