"""Schemathesis over the hub's OpenAPI spec with signed requests, on each backend: no input makes a
5xx, every error has the JSON error shape, and stored data is intact afterwards."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from truthvault.clock import HybridClock
from truthvault.crypto import DeviceKeys
from truthvault.errors import InvalidInput
from truthvault.hub.app import HubSettings, create_app
from truthvault.hub.store import HubStore, Limits
from truthvault.model import PullResponse, PushRequest, SyncItem, encode
from truthvault.sync import SigningAuth

from .test_store_contract import live_checksum

clock = HybridClock()
#: per operation and generation mode: with the kernel's routes (about 40 operations), 20 takes ~25 s a
#: backend; the action routes share one dispatcher (TV_FUZZ_EXAMPLES=200 to dig deeper)
EXAMPLES = int(os.environ.get("TV_FUZZ_EXAMPLES", "20"))
_pull = msgspec.json.Decoder(PullResponse)


@dataclass
class Device:
    """An enrolled device of one tenant; signs every request it sends."""

    client: TestClient
    id: str
    tenant_id: str
    keys: DeviceKeys
    mutation: int = 0

    @classmethod
    def enrol(cls, client: TestClient, store: HubStore, tenant: str) -> Device:
        keys = DeviceKeys.generate()
        bundle = keys.public_bundle()
        body = {
            "code": store.create_enrol_code(tenant),
            # never a name the fuzzer would guess, so a generated revoke cannot hit it
            "device_name": f"dev-{uuid.uuid4()}",
            "sign_public": bundle["sign"],
            "box_public": bundle["box"],
        }
        r = client.post("/v1/enroll", json=body)
        assert r.status_code == 200, r.text
        return cls(client, r.json()["device_id"], r.json()["tenant_id"], keys)

    def send(self, **kwargs: Any) -> httpx.Response:
        return self.client.request(**kwargs, auth=SigningAuth(self.keys, self.id))

    def push(self, *texts: str, level: int = 1, source: str = "user:cli", deleted: bool = False) -> None:
        items = []
        for text in texts:
            self.mutation += 1
            items.append(
                SyncItem(
                    entity_type="note",
                    entity_id=text,
                    tenant_id=self.tenant_id,
                    truth_level=level,
                    origin_source=source,
                    last_modified_at=clock.now(),
                    device_id=self.id,
                    payload=msgspec.Raw(encode({"text": text})),
                    deleted=deleted,
                    mutation=self.mutation,
                )
            )
        r = self.send(method="POST", url="/v1/sync/push", content=encode(PushRequest(items=items)))
        assert r.status_code == 200, r.text

    def pull_all(self) -> tuple[dict[str, SyncItem], dict[str, Any], str | None]:
        """The tenant's current items and records by id, and the checksum at the head."""
        items: dict[str, SyncItem] = {}
        records: dict[str, Any] = {}
        since, checksum = 0, None
        while True:
            r = self.send(method="GET", url="/v1/sync/pull", params={"since": since, "limit": 1000})
            assert r.status_code == 200, r.text
            page = _pull.decode(r.content)
            items.update((i.entity_id, i) for i in page.items)
            records.update((rec.id, encode(rec)) for rec in page.records)
            since, checksum = page.cursor, page.checksum
            if not page.has_more:
                return items, records, checksum


@pytest.fixture
def client(hub_store: HubStore) -> Iterator[TestClient]:
    hub_store.add_tenant("alpha", "local_first")
    hub_store.add_tenant("beta", "cloud_first")
    # No rate limit: the fuzzer is one device sending hundreds of requests a second; long-polls
    # (?wait=) still wait, but a twentieth of a second, not up to a minute each.
    settings_ = HubSettings(limits=Limits(max_payload_bytes=4096), rate_per_s=0, max_wait_s=0.05)
    with TestClient(create_app(hub_store, settings_), raise_server_exceptions=False) as c:
        yield c


def _seed(a: Device, other: Device, b: Device) -> None:
    """Versions, a tombstone, a suggestion and a conflict in tenant alpha; a note in beta."""
    a.push("kept", "edited", "gone")
    a.push("gone", deleted=True)
    other.push("kept", level=5, source="ai-cloud:acme/model")  # a suggestion
    other.push("edited")  # a U1-vs-U1 race: a conflict record
    b.push("betas-own")


def _check_error_shape(r: httpx.Response, what: str) -> None:
    try:
        body = r.json()
    except ValueError:
        pytest.fail(f"{what}: {r.status_code} without a JSON body: {r.text[:200]}")
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict), f"{what}: {r.status_code} body {body!r}"
    assert isinstance(error.get("code"), str) and isinstance(error.get("message"), str), f"{what}: {body!r}"


def _as_httpx(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Schemathesis's requests-style arguments as httpx's (the body as the exact bytes signed)."""
    out: dict[str, Any] = {
        "method": kwargs["method"],
        "url": kwargs["url"],
        "params": kwargs.get("params") or None,
        "headers": {k: v for k, v in kwargs.get("headers", {}).items() if k.lower() != "connection"},
    }
    if "json" in kwargs:
        out["content"] = json.dumps(kwargs["json"]).encode()
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        out["content"] = data if isinstance(data, bytes) else str(data).encode()
    return out


def _fuzz(
    operation: Any,
    mode: GenerationMode,
    device: Device,
    fresh: Callable[[], Device],
    touched: set[str],
    seen: dict[str, set[int]],
) -> None:
    """Send one operation's generated requests, signed; note the statuses and what was written."""
    label = f"{operation.method.upper()} {operation.path}"
    # A rotation or revocation may end a device: those run as a fresh device each time.
    dangerous = operation.path in ("/v1/devices/rotate-key", "/v1/devices/revoke")

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        signer = fresh() if dangerous else device
        request = _as_httpx(case.as_transport_kwargs(base_url="http://testserver"))
        try:
            r = signer.send(**request)
        except InvalidInput as exc:
            # a path parameter with a control character: the client refuses to sign it (as
            # HubClient does), so no such request reaches the hub
            assert "control characters" in exc.message, exc.message
            return
        seen.setdefault(label, set()).add(r.status_code)
        assert r.status_code < 500, f"{label}: {r.status_code} {r.text[:300]}\n{request}"
        if r.status_code >= 400:
            _check_error_shape(r, label)
        elif operation.path == "/v1/sync/push":
            touched.update(str(x.get("entity_id")) for x in json.loads(request["content"]).get("items", []))
        elif operation.path == "/v1/sync/conflict-resolve":
            touched.add(r.json()["record"]["entity_id"])

    try:
        run()
    except Unsatisfiable:
        # an operation without parameters or body has no invalid input to make
        assert mode is GenerationMode.NEGATIVE, label


def test_no_input_makes_a_server_error_or_harms_stored_data(client: TestClient, hub_store: HubStore) -> None:
    a = Device.enrol(client, hub_store, "alpha")
    other = Device.enrol(client, hub_store, "alpha")
    b = Device.enrol(client, hub_store, "beta")
    _seed(a, other, b)
    before_items, before_records, before_sum = a.pull_all()
    beta_before = b.pull_all()
    assert before_records and before_sum == live_checksum(list(before_items.values()))

    schema = schemathesis.openapi.from_dict(client.app.openapi())  # type: ignore[attr-defined]
    touched: set[str] = set()  # entities a request the hub accepted may legitimately have changed
    seen: dict[str, set[int]] = {}
    for result in schema.get_all_operations():
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(result.ok(), mode, a, lambda: Device.enrol(client, hub_store, "alpha"), touched, seen)

    assert len(seen) >= 13 and all(seen.values())
    after_items, after_records, after_sum = a.pull_all()
    for eid, item in before_items.items():
        if eid not in touched:
            assert after_items.get(eid) == item, f"{eid} changed without an accepted write"
    for rid, record in before_records.items():
        assert rid in after_records, f"record {rid} disappeared"
        if json.loads(record)["entity_id"] not in touched:
            assert after_records[rid] == record
    assert after_sum == live_checksum(list(after_items.values()))
    assert b.pull_all() == beta_before  # the other tenant is untouched
