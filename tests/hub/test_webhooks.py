"""The hub's webhooks over HTTP, on each backend: a delivery needs its hook's secret (401 the same
for a wrong secret, none, or an unknown hook, and nothing kept); a body is a JSON object within
its limits; a hook holds a bounded number of deliveries; a hook id delivers only into the tenant
that registered it, and a device reads and acks only its own tenant's deliveries; the secret is
nowhere in the hub's database."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from truthvault.hub.app import HubSettings, create_app
from truthvault.hub.store import HubStore
from truthvault.kernel._automation import MAX_DELIVERY_BYTES, new_hook_id

SECRET = "tvwh_" + "s3cr3t-" * 7


@dataclass
class Hub:
    http: TestClient
    store: HubStore
    alpha: dict[str, str]
    beta: dict[str, str]


@pytest.fixture
def hub(hub_store: HubStore) -> Iterator[Hub]:
    hub_store.add_tenant("alpha", "cloud_first")
    hub_store.add_tenant("beta", "cloud_first")
    _, alpha = hub_store.add_device("alpha", "laptop")
    _, beta = hub_store.add_device("beta", "laptop")
    with TestClient(create_app(hub_store, HubSettings(purge_interval_s=3600))) as client:
        yield Hub(
            client, hub_store, {"authorization": f"Bearer {alpha}"}, {"authorization": f"Bearer {beta}"}
        )


def _register(hub: Hub, who: dict[str, str], secret: str = SECRET, hook: str | None = None) -> str:
    hook = hook or new_hook_id()
    body = {"secret_sha256": hashlib.sha256(secret.encode()).hexdigest(), "rule_id": "rule-1"}
    answer = hub.http.put(f"/v1/webhooks/{hook}", json=body, headers=who)
    assert answer.status_code == 200, answer.text
    return hook


def _deliver(hub: Hub, hook: str, body: Any, secret: str | None = SECRET, **kw: Any) -> Any:
    headers = {"authorization": f"Bearer {secret}"} if secret else {}
    return hub.http.post(f"/v1/hooks/{hook}", json=body, headers=headers | kw.pop("headers", {}), **kw)


def _pending(hub: Hub, hook: str, who: dict[str, str]) -> Any:
    return hub.http.get(f"/v1/webhooks/{hook}/deliveries", headers=who)


def test_a_good_secret_delivers_and_the_device_takes_and_acks(hub: Hub) -> None:
    hook = _register(hub, hub.alpha)
    answer = _deliver(hub, hook, {"title": "invoice 42", "from": "billing"})
    assert answer.status_code == 202
    delivery = answer.json()["delivery"]
    # the other header works too
    other = _deliver(hub, hook, {"title": "2"}, secret=None, headers={"x-truthvault-secret": SECRET})
    assert other.status_code == 202
    found = _pending(hub, hook, hub.alpha).json()["deliveries"]
    assert (found[0]["id"], found[0]["body"]) == (delivery, {"title": "invoice 42", "from": "billing"})
    assert len(found) == 2
    acked = hub.http.post(
        "/v1/webhooks/deliveries/ack", json={"ids": [delivery, delivery]}, headers=hub.alpha
    )
    assert acked.json() == {"acked": 1}
    # acked again (late, or twice): nothing more, no error
    again = hub.http.post("/v1/webhooks/deliveries/ack", json={"ids": [delivery]}, headers=hub.alpha)
    assert again.json() == {"acked": 0}
    assert [d["body"] for d in _pending(hub, hook, hub.alpha).json()["deliveries"]] == [{"title": "2"}]
    # the tenant's feed says a delivery arrived, never what it held
    tenant = hub.store.get_tenant("alpha")
    events = hub.store.events(tenant.id, type="WEBHOOK_DELIVERY")
    assert [e.detail["delivery"] for e in events] == [delivery, other.json()["delivery"]]
    assert "invoice" not in json.dumps([e.detail for e in events])


@pytest.mark.parametrize("secret", ["tvwh_wrong", None, SECRET + "x"])
def test_a_bad_or_missing_secret_is_refused_and_nothing_is_kept(
    hub: Hub, secret: str | None, hub_sql: Callable[..., list[Any]]
) -> None:
    hook = _register(hub, hub.alpha)
    refused = _deliver(hub, hook, {"title": "spam"}, secret=secret)
    assert refused.status_code == 401
    error = refused.json()["error"]
    assert error["code"] == "unauthorized" and "secret" in error["message"]
    assert hub_sql("SELECT count(*) FROM webhook_deliveries") == [(0,)]
    # an unknown hook gets the very same answer: a caller learns nothing of which hooks exist
    unknown = _deliver(hub, new_hook_id(), {"title": "spam"}, secret=secret)
    assert (unknown.status_code, unknown.json()) == (401, refused.json())
    # the refusal is the tenant's security event (without the secret offered)
    seen = [e for e in hub.store.security_events("alpha") if e.type == "WEBHOOK_REFUSED"]
    assert [e.detail["hook"] for e in seen] == [hook]
    assert "tvwh_" not in json.dumps([e.detail for e in hub.store.security_events()])


def test_a_body_must_be_a_json_object_within_its_limits(hub: Hub) -> None:
    hook = _register(hub, hub.alpha)
    too_big = {"text": "x" * MAX_DELIVERY_BYTES}
    answer = _deliver(hub, hook, too_big)
    assert answer.status_code == 413 and answer.json()["error"]["message"].startswith("body:")
    for body, why in (([1, 2], "a JSON object, not a list"), ("text", "a JSON object, not a str")):
        answer = _deliver(hub, hook, body)
        assert answer.status_code == 422 and answer.json()["error"]["message"] == f"body: {why}"
    raw = hub.http.post(
        f"/v1/hooks/{hook}", content=b"{not json", headers={"authorization": f"Bearer {SECRET}"}
    )
    assert raw.status_code == 422 and "body: not JSON" in raw.json()["error"]["message"]
    for text in (b'{"n": NaN}', b'{"n": Infinity}'):  # Python's, not JSON's
        answer = hub.http.post(
            f"/v1/hooks/{hook}", content=text, headers={"authorization": f"Bearer {SECRET}"}
        )
        assert answer.status_code == 422, text
    deep: Any = {}
    for _ in range(40):
        deep = {"a": deep}
    answer = _deliver(hub, hook, deep)
    assert answer.status_code == 422 and "nested deeper" in answer.json()["error"]["message"]
    # the secret comes first: a stranger's bad body is told only that it needs the secret
    assert _deliver(hub, hook, [1], secret="wrong").status_code == 401
    assert _pending(hub, hook, hub.alpha).json()["deliveries"] == []


def test_a_hook_holds_a_bounded_number_of_deliveries(hub: Hub) -> None:
    hub.store.webhooks.max_pending = 3
    hook = _register(hub, hub.alpha)
    assert [_deliver(hub, hook, {"n": n}).status_code for n in range(3)] == [202] * 3
    full = _deliver(hub, hook, {"n": 3})
    assert full.status_code == 429 and full.headers["retry-after"]
    ids = [d["id"] for d in _pending(hub, hook, hub.alpha).json()["deliveries"]]
    hub.http.post("/v1/webhooks/deliveries/ack", json={"ids": ids[:1]}, headers=hub.alpha)
    assert _deliver(hub, hook, {"n": 4}).status_code == 202


def test_tenants_are_kept_apart(hub: Hub) -> None:
    hook = _register(hub, hub.alpha)
    # beta cannot take alpha's hook id over, nor give it its own secret
    taken = hub.http.put(
        f"/v1/webhooks/{hook}",
        json={"secret_sha256": hashlib.sha256(b"beta's").hexdigest(), "rule_id": "r"},
        headers=hub.beta,
    )
    assert taken.status_code == 409 and "hook_id" in taken.json()["error"]["message"]
    assert _deliver(hub, hook, {"to": "alpha"}, secret="beta's").status_code == 401
    delivery = _deliver(hub, hook, {"to": "alpha"}).json()["delivery"]
    # beta neither reads alpha's deliveries nor acks them, nor removes alpha's hook
    assert _pending(hub, hook, hub.beta).status_code == 404
    acked = hub.http.post("/v1/webhooks/deliveries/ack", json={"ids": [delivery]}, headers=hub.beta)
    assert acked.json() == {"acked": 0}
    assert hub.http.delete(f"/v1/webhooks/{hook}", headers=hub.beta).status_code == 404
    assert [d["id"] for d in _pending(hub, hook, hub.alpha).json()["deliveries"]] == [delivery]
    # beta's own hook delivers into beta only
    own = _register(hub, hub.beta, secret="tvwh_beta")
    _deliver(hub, own, {"to": "beta"}, secret="tvwh_beta")
    assert [d["body"] for d in _pending(hub, own, hub.beta).json()["deliveries"]] == [{"to": "beta"}]
    assert _pending(hub, own, hub.alpha).status_code == 404
    alpha, beta = hub.store.get_tenant("alpha"), hub.store.get_tenant("beta")
    assert len(hub.store.events(alpha.id, type="WEBHOOK_DELIVERY")) == 1
    assert len(hub.store.events(beta.id, type="WEBHOOK_DELIVERY")) == 1


def test_a_new_secret_replaces_the_old_and_removing_drops_the_hook(hub: Hub) -> None:
    hook = _register(hub, hub.alpha)
    _register(hub, hub.alpha, secret="tvwh_new", hook=hook)
    assert _deliver(hub, hook, {"n": 1}).status_code == 401
    assert _deliver(hub, hook, {"n": 1}, secret="tvwh_new").status_code == 202
    assert hub.http.delete(f"/v1/webhooks/{hook}", headers=hub.alpha).json() == {
        "hook_id": hook,
        "dropped": 1,
    }
    assert _deliver(hub, hook, {"n": 2}, secret="tvwh_new").status_code == 401


def test_the_hub_keeps_no_secret(hub: Hub, hub_sql: Callable[..., list[Any]]) -> None:
    hook = _register(hub, hub.alpha)
    _deliver(hub, hook, {"title": "x"})
    rows = hub_sql("SELECT hook_id, secret_hash, rule_id, device_id FROM webhooks")
    assert rows[0][1] == hashlib.sha256(SECRET.encode()).hexdigest()
    dumped = json.dumps([list(map(str, r)) for r in rows])
    assert SECRET not in dumped
    # nor a registration body that carries one: only its hash is taken
    carried = hub.http.put(f"/v1/webhooks/{hook}", json={"secret": SECRET, "rule_id": "r"}, headers=hub.alpha)
    assert carried.status_code == 422


def test_registering_needs_a_device_and_well_formed_fields(hub: Hub) -> None:
    hook = new_hook_id()
    body = {"secret_sha256": hashlib.sha256(b"x").hexdigest(), "rule_id": "r"}
    assert hub.http.put(f"/v1/webhooks/{hook}", json=body).status_code == 401
    bad = hub.http.put(f"/v1/webhooks/{hook}", json={**body, "secret_sha256": "nothex"}, headers=hub.alpha)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "secret_sha256"
    assert hub.http.put("/v1/webhooks/short", json=body, headers=hub.alpha).status_code == 422


def test_deliveries_at_once_never_pass_the_limit(hub: Hub) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from truthvault.errors import RateLimited

    hub.store.webhooks.max_pending = 5
    hook = _register(hub, hub.alpha)

    def deliver(n: int) -> str:
        try:
            hub.store.webhooks.deliver(hook, SECRET, json.dumps({"n": n}).encode())
        except RateLimited:
            return "full"
        return "taken"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(deliver, range(20)))
    assert outcomes.count("taken") == 5 and outcomes.count("full") == 15
    assert len(_pending(hub, hook, hub.alpha).json()["deliveries"]) == 5


def test_a_sender_is_rate_limited(hub_store: HubStore) -> None:
    hub_store.add_tenant("alpha", "cloud_first")
    _, token = hub_store.add_device("alpha", "laptop")
    settings = HubSettings(purge_interval_s=3600, rate_per_s=0.001, rate_burst=2)
    with TestClient(create_app(hub_store, settings)) as client:
        hub = Hub(client, hub_store, {"authorization": f"Bearer {token}"}, {})
        hook = _register(hub, hub.alpha)
        assert [_deliver(hub, hook, {"n": n}).status_code for n in range(2)] == [202, 202]
        limited = _deliver(hub, new_hook_id(), {"n": 2})  # whichever hook it names
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
