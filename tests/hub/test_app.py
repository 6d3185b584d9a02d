"""The hub's HTTP face, over a real store on each backend."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
from fastapi.testclient import TestClient

from truthvault.clock import HybridClock
from truthvault.hub.app import HubSettings, create_app
from truthvault.hub.store import HubStore, Limits, open_store
from truthvault.model import Decision, OriginStep, PushRequest, SyncItem, encode

clock = HybridClock()


class Dev:
    """One device of one tenant, talking HTTP."""

    def __init__(self, client: TestClient, store: HubStore, tenant: str, name: str) -> None:
        device, self.token = store.add_device(tenant, name)
        self.id, self.tenant_id = device.id, device.tenant_id
        self.client = client
        self.mutation = 0

    @property
    def headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token}"}

    def item(self, eid: str, text: str, level: int = 1, source: str = "user:cli", **over: Any) -> SyncItem:
        self.mutation += 1
        fields: dict[str, Any] = dict(
            entity_type="note",
            entity_id=eid,
            tenant_id=self.tenant_id,
            truth_level=level,
            origin_source=source,
            last_modified_at=clock.now(),
            device_id=self.id,
            payload=msgspec.Raw(encode({"text": text})),
            mutation=self.mutation,
        )
        fields.update(over)
        return SyncItem(**fields)

    def push(self, *items: SyncItem, raw: bytes | None = None) -> Any:
        body = raw if raw is not None else encode(PushRequest(items=list(items)))
        return self.client.post("/v1/sync/push", content=body, headers=self.headers)

    def pull(self, since: int = 0, **params: Any) -> Any:
        return self.client.get("/v1/sync/pull", params={"since": since, **params}, headers=self.headers)


@pytest.fixture
def client(hub_store: HubStore) -> Iterator[TestClient]:
    settings = HubSettings(limits=Limits(max_payload_bytes=4096), purge_interval_s=3600)
    with TestClient(create_app(hub_store, settings)) as c:
        yield c


@pytest.fixture
def a(client: TestClient, hub_store: HubStore) -> Dev:
    hub_store.add_tenant("alpha", "local_first")
    return Dev(client, hub_store, "alpha", "laptop")


@pytest.fixture
def b(client: TestClient, hub_store: HubStore) -> Dev:
    hub_store.add_tenant("beta", "cloud_first")
    return Dev(client, hub_store, "beta", "laptop")


def test_health_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    spec = client.get("/openapi.json").json()
    assert {
        "/v1/sync/push",
        "/v1/sync/pull",
        "/v1/sync/conflict-resolve",
        "/v1/conflicts",
        "/v1/events",
    } <= set(spec["paths"])
    assert "SyncItem" in spec["components"]["schemas"]
    assert spec["paths"]["/v1/sync/push"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PushRequest"
    }


def test_requests_without_a_valid_token_are_refused(client: TestClient, a: Dev) -> None:
    # The error code says why: no credentials at all, or a token no device has.
    for headers, code in (
        ({}, "missing_credentials"),
        ({"authorization": "Bearer nope"}, "unknown_device"),
        ({"authorization": "Basic abc"}, "missing_credentials"),
    ):
        r = client.get("/v1/sync/pull", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == code
        assert "nope" not in r.text


def test_push_then_pull(a: Dev) -> None:
    r = a.push(a.item("n1", "hello"), a.item("n2", "world"))
    assert r.status_code == 200, r.text
    assert [x["outcome"] for x in r.json()["results"]] == ["applied", "applied"]
    page = a.pull().json()
    assert [i["entity_id"] for i in page["items"]] == ["n1", "n2"]
    assert page["has_more"] is False and page["checksum"] and page["cursor"] == page["head"]
    assert a.pull(page["cursor"]).json()["items"] == []


def test_malformed_batch_is_refused_whole_with_the_field_named(a: Dev) -> None:
    good = a.item("n1", "fine")
    bad = encode(PushRequest(items=[good, a.item("n2", "x")])).replace(
        b'"truth_level":1', b'"truth_level":7', 2
    )
    r = a.push(raw=bad)
    assert r.status_code == 422 and "items[0].truth_level" in r.json()["error"]["message"]
    r = a.push(good, a.item("n3", "x", level=1, source="ai-cloud:x"))
    assert r.status_code == 422 and "items[1].origin_source" in r.json()["error"]["message"]
    r = a.push(a.item("n4", "x" * 5000))
    assert r.status_code == 413 and "items[0].payload" in r.json()["error"]["message"]
    r = a.push(a.item("n5", "x", last_modified_at="2999-01-01T00:00:00.000Z-0000"))
    assert r.status_code == 422 and "future" in r.json()["error"]["message"]
    r = a.push(raw=b"{not json")
    assert r.status_code == 422
    assert a.pull().json()["items"] == []


def test_tenants_never_see_each_other(a: Dev, b: Dev) -> None:
    assert a.push(a.item("secret", "alpha only")).status_code == 200
    foreign = b.item("x", "hi", tenant_id=a.tenant_id)
    r = b.push(foreign)
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert b.pull().json()["items"] == []
    assert b.client.get("/v1/events", headers=b.headers).json() == []
    assert b.client.get("/v1/conflicts", headers=b.headers).json() == []
    assert "secret" not in b.pull().text


def test_long_poll_wakes_on_a_push(a: Dev) -> None:
    a.push(a.item("n1", "first"))
    head = a.pull().json()["cursor"]
    result: dict[str, Any] = {}

    def waiter() -> None:
        t0 = time.monotonic()
        result["page"] = a.pull(head, wait=10).json()
        result["took"] = time.monotonic() - t0

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.3)
    a.push(a.item("n2", "second"))
    thread.join(15)
    assert [i["entity_id"] for i in result["page"]["items"]] == ["n2"]
    assert 0.2 < result["took"] < 5


@pytest.mark.postgres
def test_a_push_to_one_hub_wakes_a_long_poll_on_another(pg_dsn: str) -> None:
    """Two hub processes on one PostgreSQL: LISTEN/NOTIFY carries the news between them."""
    first, second = open_store(pg_dsn), open_store(pg_dsn)
    result: dict[str, Any] = {}
    try:
        first.add_tenant("alpha", "local_first")
        with TestClient(create_app(first)) as one, TestClient(create_app(second)) as two:
            dev = Dev(one, first, "alpha", "laptop")
            dev.push(dev.item("n1", "first"))
            head = dev.pull().json()["cursor"]

            def waiter() -> None:
                t0 = time.monotonic()
                r = two.get("/v1/sync/pull", params={"since": head, "wait": 20}, headers=dev.headers)
                result["page"], result["took"] = r.json(), time.monotonic() - t0

            thread = threading.Thread(target=waiter)
            thread.start()
            time.sleep(0.5)
            dev.push(dev.item("n2", "second"))
            thread.join(25)
    finally:
        first.close()
        second.close()
    assert [i["entity_id"] for i in result["page"]["items"]] == ["n2"]
    # woken at once by the notification; the safety-net re-read would come only after 5 s
    assert result["took"] < 3


def test_long_poll_is_woken_by_a_push_that_commits_just_after_its_first_read(
    a: Dev, hub_store: HubStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race: the first (empty) read is done, and a push commits before the pull starts
    # waiting. It must be seen at once, not at the next re-read of the head seconds later.
    a.push(a.item("n1", "first"))
    head = a.pull().json()["cursor"]
    first_read = hub_store.pull_raw
    late = a.item("n2", "committed in the gap")
    calls = []

    def read_then_push(
        ctx: Any, since: int, limit: int, tag: str | None = None, tag_seq: int | None = None
    ) -> bytes:
        body = first_read(ctx, since, limit, tag, tag_seq)
        if not calls:
            # straight into the store: no in-process wake-up, as from another hub process
            hub_store.push(ctx, PushRequest(items=[late]), Limits(), time.time_ns() // 1_000_000)
        calls.append(since)
        return body

    monkeypatch.setattr(hub_store, "pull_raw", read_then_push)
    t0 = time.monotonic()
    page = a.pull(head, wait=10).json()
    assert [i["entity_id"] for i in page["items"]] == ["n2"]
    assert time.monotonic() - t0 < 4  # the safety-net re-read comes after 5 s


def test_long_poll_times_out_empty(a: Dev) -> None:
    t0 = time.monotonic()
    page = a.pull(0, wait=0.5).json()
    assert page["items"] == [] and time.monotonic() - t0 >= 0.45


def test_conflict_resolve_restores_the_loser(client: TestClient, b: Dev, hub_store: HubStore) -> None:
    a = b  # a cloud_first tenant: the hub holds plaintext it may write back
    phone = Dev(client, hub_store, "beta", "phone")
    first = a.item("n1", "base")
    a.push(first)
    a.push(a.item("n1", "laptop edit", base_version=1, base_clock=first.last_modified_at))
    r = phone.push(phone.item("n1", "phone edit", base_version=1, base_clock=first.last_modified_at))
    assert r.json()["results"][0]["outcome"] == "applied"
    conflicts = client.get("/v1/conflicts", headers=a.headers).json()
    assert [c["item"]["payload"]["text"] for c in conflicts] == ["laptop edit"]
    r = client.post(
        "/v1/sync/conflict-resolve",
        json={"conflict_id": conflicts[0]["id"], "resolution": "restore"},
        headers=a.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["item"]["payload"]["text"] == "laptop edit" and r.json()["record"]["status"] == "resolved"
    items = {i["entity_id"]: i for i in a.pull().json()["items"]}
    assert items["n1"]["payload"]["text"] == "laptop edit"
    assert client.get("/v1/conflicts", headers=a.headers).json() == []
    r = client.post(
        "/v1/sync/conflict-resolve", json={"conflict_id": "nope", "resolution": "keep"}, headers=a.headers
    )
    assert r.status_code == 404
    r = client.post(
        "/v1/sync/conflict-resolve", json={"conflict_id": "x", "resolution": "maybe"}, headers=a.headers
    )
    assert r.status_code == 422 and "resolution" in r.json()["error"]["message"]
    events = client.get("/v1/events", params={"type": "CONFLICT_DETECTED"}, headers=a.headers).json()
    assert [e["entity_id"] for e in events] == ["n1"]


def test_a_local_first_conflict_is_restored_on_a_device_not_the_hub(
    client: TestClient, a: Dev, hub_store: HubStore
) -> None:
    phone = Dev(client, hub_store, "alpha", "phone")
    first = a.item("n1", "base")
    a.push(first)
    a.push(a.item("n1", "laptop edit", base_version=1, base_clock=first.last_modified_at))
    phone.push(phone.item("n1", "phone edit", base_version=1, base_clock=first.last_modified_at))
    (conflict,) = client.get("/v1/conflicts", headers=a.headers).json()
    r = client.post(
        "/v1/sync/conflict-resolve",
        json={"conflict_id": conflict["id"], "resolution": "restore"},
        headers=a.headers,
    )
    assert r.status_code == 409 and "on a device" in r.json()["error"]["message"]
    assert len(client.get("/v1/conflicts", headers=a.headers).json()) == 1  # still open, nothing written


def test_a_body_fastapi_cannot_parse_gets_the_error_shape(client: TestClient) -> None:
    # Invalid UTF-8 in a JSON body: FastAPI refuses it with 400 before the hub's code runs.
    r = client.post(
        "/v1/sync/conflict-resolve", content=b"\xb4", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert r.json() == {"error": {"code": "bad_request", "message": "There was an error parsing the body"}}
    assert client.get("/v1/nowhere").json()["error"]["code"] == "not_found"


def test_what_the_databases_cannot_hold_is_refused_at_the_edge(client: TestClient, a: Dev) -> None:
    # Found by the schemathesis test: each was a 500 (integer overflow; PostgreSQL and NUL).
    huge = str(2**64)
    assert client.get(f"/v1/events?since={huge}", headers=a.headers).status_code == 422
    assert a.pull(since=2**63).status_code == 422
    r = client.post("/v1/devices/revoke", json={"name": "lap\x00top"}, headers=a.headers)
    assert r.status_code == 422 and "NUL" in r.json()["error"]["message"]
    assert client.get("/v1/events?type=a%00b", headers=a.headers).status_code == 422
    assert a.push(a.item("n1", "x", mutation=2**63)).status_code == 422
    assert a.push(a.item("n1", "x", device_id="d\x00")).status_code == 422
    assert a.pull().json()["items"] == []


def test_nul_is_refused_in_every_text_field_of_a_batch_but_kept_in_payloads(a: Dev) -> None:
    # Decoding leaves NUL to a scan of the bodies that can hold one: each text field is covered.
    step = OriginStep(level=3, source="ai-local:x", at="2026-01-01T00:00:00.000Z-0000", ref="r\x00")
    bad = PushRequest(items=[a.item("n1", "x"), a.item("n2", "y", origin_chain=(step,))])
    r = a.push(raw=encode(bad))
    assert r.status_code == 422
    assert r.json()["error"]["message"] == (
        "malformed batch: items[1].origin_chain[0].ref: text must not contain NUL characters (note 'n2')"
    )
    assert r.json()["error"]["item"] == 1
    decision = Decision(id="d\x00", status="rejected", at="2026-01-01T00:00:00.000Z-0000")
    r = a.push(raw=encode(PushRequest(decisions=[decision])))
    assert r.status_code == 422 and "decisions[0].id" in r.json()["error"]["message"]
    assert a.pull().json()["items"] == []
    # a payload is opaque bytes to the hub (ciphertext for local-first tenants): NUL is fine there
    assert a.push(a.item("n3", "nul \x00 inside")).status_code == 200
    assert a.pull().json()["items"][0]["payload"] == {"text": "nul \x00 inside"}


def test_a_batch_refused_with_422_stores_nothing(a: Dev) -> None:
    """A clock of the right shape but no real date, deep in a batch: the hub used to store the
    other items, answer 422 for the batch, and every later push of that device failed on it."""
    items = [a.item(f"n{i}", f"text {i}") for i in range(1000)]
    items[500] = msgspec.structs.replace(items[500], last_modified_at="2026-11-32T00:00:00.000Z-0000")
    r = a.push(*items)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["item"] == 500
    assert error["message"].startswith("items[500].last_modified_at") and "(note 'n500')" in error["message"]
    assert a.pull().json()["items"] == [] and a.pull().json()["head"] == 0


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ((b'{"text":"x"}', b'{"text":"\xff"}'), "items[0].payload"),  # not UTF-8
        ((b'{"text":"x"}', b'{"n":1e99999}'), "items[0].payload"),  # no double holds it
        ((b'{"text":"x"}', b'{"n":18446744073709551616}'), "items[0].payload"),  # beyond 64 bits
        ((b'{"text":"x"}', b'{"t":"\\ud800"}'), "surrogate"),  # half a surrogate pair
        ((b'"version":1', b'"version":9223372036854775807'), "items[0].version"),  # no room to grow
        ((b'{"text":"x"}', b'{"a":' + b"[" * 1000 + b"]" * 1000 + b"}"), "nested"),  # was a 500
    ],
)
def test_what_would_break_another_device_is_refused_with_422(
    a: Dev, patch: tuple[bytes, bytes], field: str
) -> None:
    body = encode(PushRequest(items=[a.item("n1", "x", version=1)])).replace(
        b'"mutation"', b'"version":1,"mutation"', 1
    )
    assert patch[0] in body
    r = a.push(raw=body.replace(*patch))
    assert r.status_code == 422, r.text
    assert field in r.json()["error"]["message"]
    assert a.pull().json()["items"] == []
