"""The hub's contract endpoints over HTTP, on each backend: authenticated, tenant-scoped,
errors naming the field, a breaking change answered 409 with what breaks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from truthvault.hub.app import HubSettings, create_app
from truthvault.hub.store import HubStore

STR = {"type": "string"}
NOTE_V2 = {
    "type": "object",
    "properties": {"text": STR, "title": STR, "tags": {"type": "array", "items": STR}, "due": STR},
}


@pytest.fixture
def http(hub_store: HubStore) -> Iterator[tuple[TestClient, dict[str, str], dict[str, str]]]:
    hub_store.add_tenant("alpha", "cloud_first")
    hub_store.add_tenant("beta", "cloud_first")
    _, alpha = hub_store.add_device("alpha", "laptop")
    _, beta = hub_store.add_device("beta", "laptop")
    with TestClient(create_app(hub_store, HubSettings(purge_interval_s=3600))) as client:
        yield client, {"authorization": f"Bearer {alpha}"}, {"authorization": f"Bearer {beta}"}


def test_add_list_and_report_use(http: tuple[TestClient, dict[str, str], dict[str, str]]) -> None:
    client, alpha, beta = http
    assert client.get("/v1/contracts", headers=alpha).json() == {"contracts": [], "marker": 0, "in_use": {}}
    added = client.post("/v1/contracts/note", json={"schema": NOTE_V2}, headers=alpha)
    assert added.status_code == 201
    body = added.json()
    assert (body["entity_type"], body["version"], body["major"]) == ("note", 2, 1)
    assert body["schema"]["properties"]["due"] == STR and body["marker"] > 0
    listed = client.get("/v1/contracts", headers=alpha).json()
    assert [c["version"] for c in listed["contracts"]] == [2] and listed["marker"] == body["marker"]
    assert (
        client.get("/v1/contracts", params={"since": body["marker"]}, headers=alpha).json()["contracts"] == []
    )
    # another tenant sees none of it
    assert client.get("/v1/contracts", headers=beta).json()["contracts"] == []
    assert client.put(
        "/v1/contract-use", json={"held": {"note": [2], "task": [1]}}, headers=alpha
    ).json() == {"noted": 2}
    assert client.get("/v1/contracts", headers=alpha).json()["in_use"] == {"note": {"2": 1}, "task": {"1": 1}}


def test_a_breaking_change_is_answered_409_listing_what_breaks(
    http: tuple[TestClient, dict[str, str], dict[str, str]],
) -> None:
    client, alpha, _ = http
    narrowed = {"type": "object", "properties": {"text": {"type": "integer"}}, "required": ["text"]}
    refused = client.post("/v1/contracts/note", json={"schema": narrowed}, headers=alpha)
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "CONFLICT" and error["cause"] == "breaking_change"  # the kernel's code, and why
    for said in (
        "tags: field removed",
        "text: type changed from string to integer",
        "text: new required field",
    ):
        assert said in error["message"]
    assert "--major" in error["hint"]
    major = client.post("/v1/contracts/note", json={"schema": narrowed, "major": True}, headers=alpha)
    assert (major.status_code, major.json()["major"]) == (201, 2)


@pytest.mark.parametrize(
    ("path", "body", "status", "said"),
    [
        (
            "/v1/contracts/note",
            {"schema": {"type": "object", "properties": {"a": {"type": "strng"}}}},
            422,
            "schema.properties.a.type",
        ),
        ("/v1/contracts/note", {"schema": {"type": "array"}}, 422, "schema.type"),
        ("/v1/contracts/note", {}, 422, "schema"),
        ("/v1/contracts/Not%20A%20Type", {"schema": NOTE_V2}, 422, "entity_type"),
        (
            "/v1/contracts/note",
            {"schema": NOTE_V2, "source": "ai-cloud:acme/m"},
            403,
            "may not run contract.add",
        ),
    ],
)
def test_bad_requests_name_the_field(
    http: tuple[TestClient, dict[str, str], dict[str, str]],
    path: str,
    body: dict[str, object],
    status: int,
    said: str,
) -> None:
    client, alpha, _ = http
    answer = client.post(path, json=body, headers=alpha)
    assert answer.status_code == status, answer.text
    assert said in answer.json()["error"]["message"]


def test_a_bad_report_names_the_field_and_no_token_is_refused(
    http: tuple[TestClient, dict[str, str], dict[str, str]],
) -> None:
    client, alpha, _ = http
    answer = client.put("/v1/contract-use", json={"held": {"note": [0]}}, headers=alpha)
    assert answer.status_code == 422 and "held.note" in answer.json()["error"]["message"]
    answer = client.put("/v1/contract-use", json={"held": {"Bad Type": [1]}}, headers=alpha)
    assert answer.status_code == 422 and "held.Bad Type" in answer.json()["error"]["message"]
    assert client.get("/v1/contracts").status_code == 401
    assert client.post("/v1/contracts/note", json={"schema": NOTE_V2}).status_code == 401


def test_the_routes_are_in_the_openapi_document(
    http: tuple[TestClient, dict[str, str], dict[str, str]],
) -> None:
    client, _, _ = http
    paths = client.get("/openapi.json").json()["paths"]
    assert {"get"} <= set(paths["/v1/contracts"]) and {"post"} <= set(paths["/v1/contracts/{entity_type}"])
    assert "put" in paths["/v1/contract-use"]
