"""Approvals between two devices of one user through a hub app (each backend): asked on the
laptop, decided on the phone, redeemed on the laptop; the first decision at the hub wins; the
hub's broker routes are tenant-scoped and refuse what they must."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from truthvault.hub import HubStore
from truthvault.hub.app import HubSettings, create_app
from truthvault.kernel import ActionForbidden, Actor, Risk
from truthvault.sync import HubClient, connect, join_with_token, syncer_for
from truthvault.vault import Vault

from ..kernel.conftest import Backend
from ..kernel.test_broker import dump


@dataclass
class Device:
    vault: Vault
    client: HubClient
    token: str

    @property
    def ai(self) -> Actor:
        return Actor("ai-local:llama3", self.vault.device_id, self.vault.tenant_id)

    @property
    def me(self) -> Actor:
        return Actor("user:cli", self.vault.device_id, self.vault.tenant_id)

    def sync(self) -> object:
        stats = syncer_for(self.vault, self.client).sync()
        assert stats.approvals is not None
        return stats.approvals

    def ask(self, h: str = "h1") -> str:
        return self.vault.broker.ask_approval(
            actor=self.ai, action="notes.delete", risk=Risk.DESTRUCTIVE, kind="approve",
            input_hash=h, targets=(), reason="an AI deletes a note you wrote",
        )  # fmt: skip


@dataclass
class World:
    http: TestClient
    laptop: Device
    phone: Device
    store: HubStore


@pytest.fixture
def world(hub_store: HubStore, tmp_path: Path) -> Iterator[World]:
    hub_store.add_tenant("home", "cloud_first")
    with ExitStack() as stack:
        http = stack.enter_context(TestClient(create_app(hub_store, HubSettings())))
        devices = []
        for name in ("laptop", "phone"):
            _, token = hub_store.add_device("home", name)
            vault = stack.enter_context(Vault.open(tmp_path / name, source="user:cli"))
            join_with_token(vault, "http://testserver", token, transport=http._transport)
            client = stack.enter_context(connect(vault, transport=http._transport))
            devices.append(Device(vault, client, token))
        yield World(http, devices[0], devices[1], hub_store)


def test_asked_on_one_device_decided_on_another_redeemed_where_asked(world: World) -> None:
    laptop, phone = world.laptop, world.phone
    rid = laptop.ask()
    assert laptop.sync().sent == 1  # type: ignore[attr-defined]
    assert phone.sync().received == 1  # type: ignore[attr-defined]
    seen = phone.vault.broker.get(rid)
    assert (seen.status, seen.source, seen.device_id) == (
        "pending",
        "ai-local:llama3",
        laptop.vault.device_id,
    )

    phone.vault.broker.approve(rid, actor=phone.me)
    assert phone.sync().decided == 1  # type: ignore[attr-defined]
    hub = world.store.broker.store(laptop.vault.tenant_id).get(rid)  # type: ignore[attr-defined]
    assert (hub.status, hub.decided_by, hub.decided_device) == ("approved", "user:cli", phone.vault.device_id)

    laptop.sync()
    assert (
        laptop.vault.broker.redeem(rid, actor=laptop.ai, action="notes.delete", input_hash="h1") == "user:cli"
    )
    with pytest.raises(ActionForbidden):
        laptop.vault.broker.redeem(rid, actor=laptop.ai, action="notes.delete", input_hash="h1")
    laptop.sync()
    assert world.store.broker.store(laptop.vault.tenant_id).get(rid).status == "used"  # type: ignore[attr-defined]
    phone.sync()
    assert phone.vault.broker.get(rid).status == "used"
    # the phone cannot redeem it: it was not asked there
    with pytest.raises(ActionForbidden, match="another action, input or actor"):
        phone.vault.broker.redeem(rid, actor=phone.ai, action="notes.delete", input_hash="h1")


def test_the_first_decision_at_the_hub_wins(world: World) -> None:
    laptop, phone = world.laptop, world.phone
    rid = laptop.ask()
    laptop.sync()
    phone.sync()
    phone.vault.broker.approve(rid, actor=phone.me)  # offline for now
    laptop.vault.broker.deny(rid, actor=laptop.me, reason="not that note")
    laptop.sync()
    stats = phone.sync()
    assert stats.overruled == 1 and stats.decided == 0  # type: ignore[attr-defined]
    mine = phone.vault.broker.get(rid)
    assert (mine.status, mine.deny_reason) == ("denied", "not that note")


def test_a_request_approved_and_used_before_any_sync_reaches_the_hub_whole(world: World) -> None:
    laptop = world.laptop
    rid = laptop.ask()
    laptop.vault.broker.approve(rid, actor=laptop.me)
    laptop.vault.broker.redeem(rid, actor=laptop.ai, action="notes.delete", input_hash="h1")
    laptop.sync()
    hub = world.store.broker.store(laptop.vault.tenant_id).get(rid)  # type: ignore[attr-defined]
    assert (hub.status, hub.decided_by, hub.decided_device) == ("used", "user:cli", laptop.vault.device_id)


def headers(device: Device) -> dict[str, str]:
    return {"authorization": f"Bearer {device.token}"}


def test_deciding_at_the_hub_takes_a_level_1_source(world: World) -> None:
    rid = world.laptop.ask()
    world.laptop.sync()
    url = "/v1/approvals/decide"
    refused = world.http.post(
        url,
        json={"request_id": rid, "decision": "approve", "source": "ai-cloud:openai/gpt"},
        headers=headers(world.phone),
    )
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "FORBIDDEN"
    bad = world.http.post(
        url, json={"request_id": rid, "decision": "maybe", "source": "user:cli"}, headers=headers(world.phone)
    )
    assert bad.status_code == 422 and "decision" in bad.json()["error"]["message"]
    nameless = world.http.post(
        url, json={"request_id": rid, "decision": "deny", "source": "user:cli"}, headers=headers(world.phone)
    )
    assert nameless.status_code == 422 and "reason" in nameless.json()["error"]["message"]
    ok = world.http.post(
        url,
        json={"request_id": rid, "decision": "approve", "source": "user:web"},
        headers=headers(world.phone),
    )
    assert ok.status_code == 200 and ok.json()["request"]["decided_device"] == world.phone.vault.device_id
    again = world.http.post(
        url,
        json={"request_id": rid, "decision": "approve", "source": "user:web"},
        headers=headers(world.phone),
    )
    assert again.status_code == 409
    assert (
        world.http.post(
            url, json={"request_id": rid, "decision": "approve", "source": "user:web"}
        ).status_code
        == 401
    )


def test_the_routes_are_tenant_scoped_and_take_no_values(world: World) -> None:
    rid = world.laptop.ask()
    world.laptop.sync()
    world.store.add_tenant("other", "cloud_first")
    _, stranger = world.store.add_device("other", "eve")
    them = {"authorization": f"Bearer {stranger}"}
    assert world.http.get("/v1/approvals", headers=them).json()["requests"] == []
    decided = world.http.post(
        f"/v1/approvals/{rid}/decide",
        json={"request_id": rid, "decision": "approve", "source": "user:cli"},
        headers=them,
    )
    assert decided.status_code == 404
    wire = world.laptop.vault.broker.get(rid).to_wire()
    # a device posts only what it asked, and never a value
    stolen = world.http.post(
        "/v1/approvals", json={"requests": [{**wire, "id": "x1"}]}, headers=headers(world.phone)
    )
    assert stolen.status_code == 403
    valued = world.http.post(
        "/v1/approvals", json={"requests": [{**wire, "values": {"k": "v"}}]}, headers=headers(world.laptop)
    )
    assert valued.status_code == 422 and "values" in valued.json()["error"]["message"]
    changed = world.http.post(
        "/v1/approvals", json={"requests": [{**wire, "input_hash": "other"}]}, headers=headers(world.laptop)
    )
    assert changed.status_code == 409 and "input_hash" in changed.json()["error"]["message"]


def test_a_secret_never_reaches_the_hub_the_files_or_the_events(world: World, hub_url: str) -> None:
    laptop, phone = world.laptop, world.phone
    secret = "pw-Zq81-7Hh2-Kx90-unique"
    broker = laptop.vault.broker
    rid = broker.ask_input(actor=laptop.ai, kind="secret", fields=("password",), reason="the mail account")
    laptop.sync()
    broker.provide(rid, {"password": secret}, actor=laptop.me)
    laptop.sync()
    phone.sync()
    assert broker.take_input(rid, actor=laptop.ai) == {"password": secret}
    laptop.sync()
    phone.sync()
    seen = phone.vault.broker.get(rid)
    assert (seen.status, seen.provided) == ("used", True)
    events = [*laptop.vault.events(limit=1000), *phone.vault.events(limit=1000)]
    assert {e.type for e in events} >= {"INPUT_REQUESTED", "INPUT_PROVIDED"}
    assert secret not in repr(events)
    tenant = laptop.vault.tenant_id
    assert secret not in repr(world.store.events(tenant, limit=10_000))
    for device in (laptop, phone):
        assert secret.encode() not in dump(
            Backend("vault", device.vault.broker.store, tenant, vault=device.vault)
        )
    assert secret.encode() not in dump(
        Backend("hub", world.store.broker.store(tenant), tenant, hub_url=hub_url)
    )  # type: ignore[attr-defined]


def test_the_fetch_pages_through_every_change(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from truthvault.sync import _approvals

    monkeypatch.setattr(_approvals, "PAGE", 2)
    asked = {world.laptop.ask(f"h{n}") for n in range(5)}
    world.laptop.sync()
    assert world.phone.sync().received == 5  # type: ignore[attr-defined]
    assert {r.id for r in world.phone.vault.broker.pending()} == asked
    pending = world.http.get(
        "/v1/approvals", params={"status": "pending", "since": 0}, headers=headers(world.phone)
    )
    assert {r["id"] for r in pending.json()["requests"]} == asked
    assert world.phone.sync().received == 0  # nothing new since its cursor
