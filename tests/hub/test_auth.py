"""Authentication through the hub's HTTP face, on each backend: enrolment, signatures, replays,
revocation, tenant isolation, access tokens, key rotation, rate limits, security events."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import msgspec
import pytest
from fastapi.testclient import TestClient

from truthvault.clock import HybridClock
from truthvault.crypto import DeviceKeys, sign_request
from truthvault.hub.app import HubSettings, create_app
from truthvault.hub.store import HubStore, open_store
from truthvault.model import PushRequest, SyncItem, encode

Sql = Callable[..., list[Any]]
clock = HybridClock()
PAST = "2000-01-01T00:00:00.000Z"


class Signer:
    """An enrolled device of one tenant that signs its requests."""

    def __init__(self, client: TestClient, store: HubStore, tenant: str, name: str) -> None:
        self.client = client
        self.keys = DeviceKeys.generate()
        bundle = self.keys.public_bundle()
        body = {
            "code": store.create_enrol_code(tenant),
            "device_name": name,
            "sign_public": bundle["sign"],
            "box_public": bundle["box"],
        }
        r = client.post("/v1/enroll", json=body)
        assert r.status_code == 200, r.text
        self.id, self.tenant_id, self.name = r.json()["device_id"], r.json()["tenant_id"], name
        self.mutation = 0

    def headers(
        self,
        method: str,
        path: str,
        query: str = "",
        body: bytes = b"",
        now: float | None = None,
        keys: DeviceKeys | None = None,
        device_id: str | None = None,
    ) -> dict[str, str]:
        return sign_request(
            keys or self.keys,
            device_id or self.id,
            method,
            path,
            query,
            body,
            time.time() if now is None else now,
        )

    def call(self, method: str, path: str, query: str = "", body: bytes = b"", **sign: Any) -> Any:
        headers = {"content-type": "application/json", **self.headers(method, path, query, body, **sign)}
        url = f"{path}?{query}" if query else path
        return self.client.request(method, url, content=body, headers=headers)

    def item(self, eid: str, text: str, **over: Any) -> SyncItem:
        self.mutation += 1
        fields: dict[str, Any] = dict(
            entity_type="note",
            entity_id=eid,
            tenant_id=self.tenant_id,
            truth_level=1,
            origin_source="user:cli",
            last_modified_at=clock.now(),
            device_id=self.id,
            payload=msgspec.Raw(encode({"text": text})),
            mutation=self.mutation,
        )
        fields.update(over)
        return SyncItem(**fields)

    def push(self, *items: SyncItem) -> Any:
        return self.call("POST", "/v1/sync/push", body=encode(PushRequest(items=list(items))))

    def get(self, path: str, query: str = "") -> Any:
        return self.call("GET", path, query)

    def post(self, path: str, data: dict[str, Any]) -> Any:
        return self.call("POST", path, body=json.dumps(data).encode())


def _client(store: HubStore, **settings: Any) -> TestClient:
    return TestClient(create_app(store, HubSettings(**settings)))


@pytest.fixture
def client(hub_store: HubStore) -> Iterator[TestClient]:
    hub_store.add_tenant("alpha", "local_first")
    hub_store.add_tenant("beta", "cloud_first")
    with _client(hub_store) as c:
        yield c


@pytest.fixture
def a(client: TestClient, hub_store: HubStore) -> Signer:
    return Signer(client, hub_store, "alpha", "laptop")


@pytest.fixture
def b(client: TestClient, hub_store: HubStore) -> Signer:
    return Signer(client, hub_store, "beta", "laptop")


def refused(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code, r.text


def events(store: HubStore, type: str) -> list[Any]:
    return [e for e in store.security_events(None, 1000) if e.type == type]


def _enrol(client: TestClient, code: str, name: str) -> Any:
    bundle = DeviceKeys.generate().public_bundle()
    body = {"code": code, "device_name": name, "sign_public": bundle["sign"], "box_public": bundle["box"]}
    return client.post("/v1/enroll", json=body)


# -- enrolment ---------------------------------------------------------------------------------
def test_an_enrolment_code_is_single_use_short_lived_and_stored_hashed(
    client: TestClient, hub_store: HubStore, hub_sql: Sql
) -> None:
    code = hub_store.create_enrol_code("alpha")
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}", code)
    assert not [row for row in hub_sql("SELECT * FROM enrol_codes") if code in map(str, row)]
    (expires,) = hub_sql("SELECT expires_at FROM enrol_codes")[0]
    assert expires > time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() + 14 * 60))

    # A taken name does not spend the code; lower case and no dashes are the same code.
    first = _enrol(client, code, "laptop")
    assert first.status_code == 200 and first.json()["tenant_name"] == "alpha"
    refused(_enrol(client, hub_store.create_enrol_code("alpha"), "laptop"), 409, "conflict_state")
    refused(_enrol(client, code, "phone"), 401, "invalid_enrol_code")

    again = hub_store.create_enrol_code("alpha")
    assert _enrol(client, again.lower().replace("-", ""), "phone").status_code == 200
    refused(_enrol(client, again, "tablet"), 401, "invalid_enrol_code")

    expired = hub_store.create_enrol_code("alpha", ttl_s=900)
    hub_sql("UPDATE enrol_codes SET expires_at = ? WHERE used_at IS NULL", (PAST,))
    r = _enrol(client, expired, "tablet")
    refused(r, 401, "invalid_enrol_code")
    assert "expired" in r.json()["error"]["message"]
    refused(_enrol(client, "AAAA-BBBB-CCCC-DDDD", "tablet"), 401, "invalid_enrol_code")

    assert len(events(hub_store, "ENROLL_FAILED")) == 4
    assert [e.detail["device_name"] for e in events(hub_store, "DEVICE_ENROLLED")] == ["phone", "laptop"]
    assert [d.name for d in hub_store.list_devices("alpha")] == ["laptop", "phone"]


def test_enrol_refuses_malformed_keys(client: TestClient, hub_store: HubStore) -> None:
    body = {
        "code": hub_store.create_enrol_code("alpha"),
        "device_name": "x",
        "sign_public": "abc",
        "box_public": "abc",
    }
    refused(client.post("/v1/enroll", json=body), 422, "invalid_input")
    assert hub_store.list_devices("alpha") == []


def test_an_unspent_code_reads_the_recovery_envelope_over_http(
    client: TestClient, hub_store: HubStore, a: Signer
) -> None:
    code = hub_store.create_enrol_code("alpha")
    r = client.post("/v1/enroll/recovery", json={"code": code})
    assert r.status_code == 200 and r.json() == {"tenant_name": "alpha", "blob": None}
    holder = hub_store.device_keys(a.id)
    assert holder is not None
    hub_store.put_recovery_blob(holder.ctx, "scrypt-envelope", "k1")
    assert client.post("/v1/enroll/recovery", json={"code": code}).json()["blob"] == "scrypt-envelope"
    assert _enrol(client, code, "restored").status_code == 200  # the code was not spent
    refused(client.post("/v1/enroll/recovery", json={"code": code}), 401, "invalid_enrol_code")
    refused(
        client.post("/v1/enroll/recovery", json={"code": "AAAA-BBBB-CCCC-DDDD"}), 401, "invalid_enrol_code"
    )
    r = client.post("/v1/enroll/recovery", json={"code": ""})
    refused(r, 422, "invalid_input")
    assert r.json()["error"]["message"].startswith("code:")
    beta = hub_store.create_enrol_code("beta")
    refused(client.post("/v1/enroll/recovery", json={"code": beta}), 409, "conflict_state")
    assert len(events(hub_store, "KEY_RECOVERY_FETCHED")) == 2
    failed = events(hub_store, "ENROLL_FAILED")  # as a refused enrolment is
    assert [e.detail["path"] for e in failed] == ["/v1/enroll/recovery"] * 2


# -- signed requests -------------------------------------------------------------------------
def test_signed_push_and_pull(a: Signer) -> None:
    r = a.push(a.item("n1", "hello"))
    assert r.status_code == 200 and r.json()["results"][0]["outcome"] == "applied"
    page = a.get("/v1/sync/pull", "since=0&limit=10")
    assert [i["entity_id"] for i in page.json()["items"]] == ["n1"]
    me = a.get("/v1/whoami").json()
    assert (me["device_id"], me["tenant_name"], me["auth"]) == (a.id, "alpha", "signature")


def test_forged_and_tampered_requests_are_refused(a: Signer, client: TestClient, hub_store: HubStore) -> None:
    body = encode(PushRequest(items=[a.item("n1", "mine")]))
    other = encode(PushRequest(items=[a.item("n1", "tampered")]))
    cases = [
        # signed by another key, as this device
        (a.headers("POST", "/v1/sync/push", body=body, keys=DeviceKeys.generate()), "/v1/sync/push", body),
        # body swapped after signing
        (a.headers("POST", "/v1/sync/push", body=body), "/v1/sync/push", other),
        # path swapped
        (a.headers("GET", "/v1/conflicts"), "/v1/events", b""),
        # query swapped
        (a.headers("GET", "/v1/sync/pull", "since=0"), "/v1/sync/pull?since=5", b""),
        # method swapped
        (a.headers("GET", "/v1/sync/push", body=body), "/v1/sync/push", body),
    ]
    for headers, url, content in cases:
        r = (
            client.post(url, content=content, headers=headers)
            if content
            else client.get(url, headers=headers)
        )
        refused(r, 401, "bad_signature")
    garbled = {**a.headers("GET", "/v1/whoami"), "X-TV-Signature": "not-base64!"}
    refused(client.get("/v1/whoami", headers=garbled), 401, "bad_signature")
    assert a.get("/v1/sync/pull").json()["items"] == []  # nothing was stored
    found = events(hub_store, "AUTH_BAD_SIGNATURE")
    assert len(found) == 6 and {e.device_id for e in found} == {a.id}
    assert {e.detail["client"] for e in found} == {"testclient"}


def test_a_replayed_request_is_refused_also_by_another_hub_process(
    a: Signer, client: TestClient, hub_store: HubStore, hub_url: str
) -> None:
    headers = a.headers("GET", "/v1/whoami")
    assert client.get("/v1/whoami", headers=headers).status_code == 200
    refused(client.get("/v1/whoami", headers=headers), 401, "replayed_request")

    # A second hub on the same database: nonces live in the database, not in one process.
    fresh = a.headers("GET", "/v1/whoami")
    assert client.get("/v1/whoami", headers=fresh).status_code == 200
    second = open_store(hub_url)
    try:
        with _client(second) as other:
            refused(other.get("/v1/whoami", headers=fresh), 401, "replayed_request")
            assert other.get("/v1/whoami", headers=a.headers("GET", "/v1/whoami")).status_code == 200
    finally:
        second.close()
    assert len(events(hub_store, "AUTH_REPLAY")) == 2


def test_stale_and_future_timestamps_are_refused(a: Signer, hub_store: HubStore) -> None:
    refused(a.call("GET", "/v1/whoami", now=time.time() - 400), 401, "stale_request")
    refused(a.call("GET", "/v1/whoami", now=time.time() + 400), 401, "stale_request")
    assert a.call("GET", "/v1/whoami", now=time.time() - 200).status_code == 200
    assert len(events(hub_store, "AUTH_STALE")) == 2


def test_the_signature_window_is_configurable(hub_store: HubStore) -> None:
    hub_store.add_tenant("alpha", "local_first")
    with _client(hub_store, signature_window_s=30) as c:
        dev = Signer(c, hub_store, "alpha", "laptop")
        refused(dev.call("GET", "/v1/whoami", now=time.time() - 60), 401, "stale_request")
        assert dev.call("GET", "/v1/whoami", now=time.time() - 20).status_code == 200


def test_an_unknown_device_is_refused(a: Signer, client: TestClient, hub_store: HubStore) -> None:
    ghost = str(uuid.uuid4())
    refused(a.call("GET", "/v1/whoami", device_id=ghost), 401, "unknown_device")
    (event,) = events(hub_store, "AUTH_UNKNOWN_DEVICE")
    assert event.device_id is None and event.detail["claimed_device"] == ghost and event.tenant_name is None


def test_missing_credentials_are_refused(client: TestClient, hub_store: HubStore) -> None:
    refused(client.get("/v1/devices"), 401, "missing_credentials")
    refused(client.post("/v1/sync/push", content=b"{}"), 401, "missing_credentials")
    assert len(events(hub_store, "AUTH_MISSING")) == 2
    assert client.get("/healthz").status_code == 200


# -- revocation --------------------------------------------------------------------------------
def test_a_revoked_device_is_refused_on_its_very_next_request(
    a: Signer, client: TestClient, hub_store: HubStore
) -> None:
    phone = Signer(client, hub_store, "alpha", "phone")
    token = phone.post("/v1/auth/token", {}).json()["token"]
    legacy, legacy_token = hub_store.add_device("alpha", "script")
    assert phone.push(phone.item("p1", "from the phone")).status_code == 200

    r = a.post("/v1/devices/revoke", {"name": "phone"})
    assert r.status_code == 200 and r.json()["revoked"] is True
    refused(phone.push(phone.item("p2", "after")), 403, "device_revoked")
    refused(phone.get("/v1/sync/pull"), 403, "device_revoked")
    refused(client.get("/v1/whoami", headers={"authorization": f"Bearer {token}"}), 403, "device_revoked")
    hub_store.revoke_device("alpha", "script")
    refused(
        client.get("/v1/sync/pull", headers={"authorization": f"Bearer {legacy_token}"}),
        403,
        "device_revoked",
    )
    assert a.get("/v1/whoami").status_code == 200

    listed = {d["name"]: d for d in a.get("/v1/devices").json()}
    assert listed["phone"]["revoked"] and listed["script"]["revoked"] and not listed["laptop"]["revoked"]
    assert [e.detail.get("by_device") for e in events(hub_store, "DEVICE_REVOKED")] == [None, a.id]
    assert {e.device_id for e in events(hub_store, "AUTH_REVOKED")} == {phone.id, legacy.id}
    assert [i["entity_id"] for i in a.get("/v1/sync/pull").json()["items"]] == ["p1"]


# -- tenant isolation --------------------------------------------------------------------------
def test_a_device_cannot_read_write_or_learn_of_another_tenants_data(
    a: Signer, b: Signer, client: TestClient, hub_store: HubStore
) -> None:
    # Tenant beta: an entity, a conflict record (two U1 writes), a suggestion, events, two devices.
    b2 = Signer(client, hub_store, "beta", "phone")
    later, earlier = clock.now(), clock.now()
    later, earlier = max(later, earlier), min(later, earlier)
    assert b.push(b.item("secret", "beta's", last_modified_at=later)).status_code == 200
    assert (
        b2.push(b2.item("secret", "beta's other", last_modified_at=earlier)).json()["results"][0]["outcome"]
        == "conflict"
    )
    ai = b.item("secret", "ai", truth_level=5, origin_source="ai-cloud:x/y")
    assert b.push(ai).json()["results"][0]["outcome"] == "suggestion"
    conflict_id = b.get("/v1/conflicts").json()[0]["id"]
    beta_view = b.get("/v1/sync/pull").json()

    # Alpha reads: nothing of beta's anywhere.
    texts = [
        a.get(path, query).text
        for path, query in [
            ("/v1/sync/pull", "since=0"),
            ("/v1/conflicts", "status=all"),
            ("/v1/suggestions", "status=all"),
            ("/v1/events", ""),
            ("/v1/devices", ""),
            ("/v1/whoami", ""),
        ]
    ]
    for text in texts:
        for secret in ("secret", b.id, b2.id, b.tenant_id, "beta", conflict_id):
            assert secret not in text
    assert [d["name"] for d in a.get("/v1/devices").json()] == ["laptop"]

    # Alpha writes: refused, or confined to alpha.
    refused(a.push(a.item("x", "into beta", tenant_id=b.tenant_id)), 403, "forbidden")
    unknown = a.post("/v1/sync/conflict-resolve", {"conflict_id": conflict_id, "resolution": "restore"})
    random = a.post("/v1/sync/conflict-resolve", {"conflict_id": str(uuid.uuid4()), "resolution": "restore"})
    # these routes run kernel actions: their errors carry the kernel's codes
    refused(unknown, 404, "NOT_FOUND")
    refused(random, 404, "NOT_FOUND")
    assert unknown.json()["error"]["message"].replace(conflict_id, "ID") == random.json()["error"][
        "message"
    ].replace(json.loads(random.request.content)["conflict_id"], "ID")
    refused(a.post("/v1/devices/revoke", {"name": "phone"}), 404, "NOT_FOUND")
    assert a.push(a.item("secret", "alpha's own")).json()["results"][0]["outcome"] == "applied"

    # Beta is untouched.
    assert b.get("/v1/sync/pull").json()["items"] == beta_view["items"]
    assert b2.get("/v1/whoami").status_code == 200
    assert b.get("/v1/conflicts").json()[0]["status"] == "open"
    (event,) = events(hub_store, "AUTH_CROSS_TENANT")
    assert (
        event.device_id == a.id and event.tenant_name == "alpha" and event.detail["path"] == "/v1/sync/push"
    )


# -- access tokens -----------------------------------------------------------------------------
def test_access_tokens_are_issued_to_signed_requests_expire_and_refresh(
    a: Signer, client: TestClient, hub_store: HubStore, hub_sql: Sql
) -> None:
    issued = a.post("/v1/auth/token", {}).json()
    token = issued["token"]
    bearer = {"authorization": f"Bearer {token}"}
    me = client.get("/v1/whoami", headers=bearer).json()
    assert (me["device_id"], me["auth"]) == (a.id, "access_token")
    assert issued["expires_at"] > time.strftime("%Y-%m-%dT%H:%M", time.gmtime(time.time() + 14 * 60))
    assert client.get("/v1/sync/pull", headers=bearer).status_code == 200
    # Only the hash is stored; a token cannot refresh itself or rotate the key.
    assert token not in str(hub_sql("SELECT * FROM access_tokens"))
    refused(client.post("/v1/auth/token", headers=bearer), 401, "bad_signature")
    refused(
        client.post("/v1/devices/rotate-key", headers=bearer, json=_rotation(DeviceKeys.generate())),
        401,
        "bad_signature",
    )

    hub_sql("UPDATE access_tokens SET expires_at = ?", (PAST,))
    refused(client.get("/v1/sync/pull", headers=bearer), 401, "token_expired")
    fresh = a.post("/v1/auth/token", {}).json()["token"]
    assert fresh != token
    assert client.get("/v1/sync/pull", headers={"authorization": f"Bearer {fresh}"}).status_code == 200
    assert len(events(hub_store, "AUTH_TOKEN_EXPIRED")) == 1
    assert token not in str(hub_store.security_events(None, 1000))


def test_access_token_ttl_is_a_setting(hub_store: HubStore) -> None:
    hub_store.add_tenant("alpha", "local_first")
    with _client(hub_store, access_token_ttl_s=60) as c:
        dev = Signer(c, hub_store, "alpha", "laptop")
        expires = dev.post("/v1/auth/token", {}).json()["expires_at"]
    assert expires < time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 61))


# -- key rotation ------------------------------------------------------------------------------
def _rotation(keys: DeviceKeys, grace: float = 3600) -> dict[str, Any]:
    bundle = keys.public_bundle()
    return {"sign_public": bundle["sign"], "box_public": bundle["box"], "grace_seconds": grace}


def test_a_rotated_key_works_through_its_grace_and_not_after(
    a: Signer, hub_store: HubStore, hub_sql: Sql
) -> None:
    old, new = a.keys, DeviceKeys.generate()
    r = a.post("/v1/devices/rotate-key", _rotation(new))
    assert r.status_code == 200, r.text
    assert a.call("GET", "/v1/whoami", keys=new).status_code == 200
    assert a.call("GET", "/v1/whoami", keys=old).status_code == 200
    (fp,) = [d["fingerprint"] for d in a.get("/v1/devices").json()]
    assert fp == new.fingerprint()

    hub_sql("UPDATE devices SET prev_valid_until = ?", (PAST,))
    refused(a.call("GET", "/v1/whoami", keys=old), 401, "bad_signature")
    assert a.call("GET", "/v1/whoami", keys=new).status_code == 200
    (event,) = events(hub_store, "KEY_ROTATED")
    assert event.detail["old"] == old.fingerprint() and event.detail["new"] == new.fingerprint()

    # With no grace the old key stops at once.
    newer = DeviceKeys.generate()
    assert (
        a.call(
            "POST", "/v1/devices/rotate-key", body=json.dumps(_rotation(newer, 0)).encode(), keys=new
        ).status_code
        == 200
    )
    refused(a.call("GET", "/v1/whoami", keys=new), 401, "bad_signature")
    assert a.call("GET", "/v1/whoami", keys=newer).status_code == 200


# -- rate limit --------------------------------------------------------------------------------
def test_a_device_over_its_rate_gets_429_with_retry_after(hub_store: HubStore) -> None:
    hub_store.add_tenant("alpha", "local_first")
    with _client(hub_store, rate_per_s=0.5, rate_burst=3) as c:
        dev, other = Signer(c, hub_store, "alpha", "laptop"), Signer(c, hub_store, "alpha", "phone")
        assert [dev.get("/v1/whoami").status_code for _ in range(3)] == [200, 200, 200]
        r = dev.get("/v1/whoami")
        refused(r, 429, "rate_limited")
        assert 1 <= int(r.headers["retry-after"]) <= 2
        refused(dev.get("/v1/sync/pull"), 429, "rate_limited")
        assert other.get("/v1/whoami").status_code == 200  # per device
    (event,) = events(hub_store, "AUTH_RATE_LIMITED")  # once per minute, not per request
    assert event.device_id == dev.id


def test_security_events_never_hold_credentials(a: Signer, client: TestClient, hub_store: HubStore) -> None:
    headers = a.headers("GET", "/v1/whoami")
    client.get("/v1/whoami", headers=headers)
    client.get("/v1/whoami", headers=headers)  # a replay
    _, token = hub_store.add_device("alpha", "script")
    hub_store.revoke_device("alpha", "script")
    client.get("/v1/whoami", headers={"authorization": f"Bearer {token}"})
    client.get("/v1/whoami", headers={"authorization": "Bearer guessed-token"})
    dump = str(hub_store.security_events(None, 1000))
    for secret in (headers["X-TV-Signature"], token, "guessed-token"):
        assert secret not in dump
    assert {"AUTH_REPLAY", "AUTH_REVOKED", "AUTH_UNKNOWN_DEVICE"} <= {
        e.type for e in hub_store.security_events()
    }
    assert [e.tenant_name for e in hub_store.security_events("alpha") if e.type == "AUTH_REVOKED"] == [
        "alpha"
    ]
