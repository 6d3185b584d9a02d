"""Webhook triggers end to end through a hub app (each backend): a rule added on the laptop gets a
hook and a secret (shown once, the hub keeping its hash), a delivery with the secret reaches the
laptop at its next sync and runs once as ``automation:<rule-id>`` at level 2; against the
user's note it is a suggestion; a delivery taken twice runs once; one that fails for good is a
dead letter; another tenant's device can neither take the hook over nor read its deliveries."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from truthvault.errors import ConflictState, InvalidInput
from truthvault.hub import HubStore
from truthvault.hub.app import HubSettings, create_app
from truthvault.sync import (
    HttpWebhookRemote,
    HubClient,
    connect,
    join_with_token,
    register_webhook,
    sync_webhooks,
    syncer_for,
)
from truthvault.vault import Vault, vault_engine

pytestmark = pytest.mark.timeout(120)

FILE_AS_NOTE = {
    "name": "file incoming items as notes",
    "trigger": {"on": "webhook"},
    "action": {
        "do": "create",
        "type": "note",
        "payload": {"title": "{payload.title}", "text": "{payload.text}", "tags": ["inbox"]},
    },
}


@dataclass
class Device:
    vault: Vault
    client: HubClient

    def sync(self) -> Any:
        return syncer_for(self.vault, self.client).sync()

    def run(self) -> list[dict[str, Any]]:
        with vault_engine(self.vault) as engine:
            return [engine.result(w) for w in self.vault.automations.run_pending(engine)]


@dataclass
class World:
    http: TestClient
    laptop: Device
    phone: Device
    stranger: Device  # a device of another tenant
    store: HubStore


#: the hub's backend is not what these test (each runs on SQLite only; the hub's store is tested on both)
ON_SQLITE = pytest.mark.parametrize("hub_url", ["sqlite"], indirect=True)


@pytest.fixture
def world(hub_store: HubStore, tmp_path: Path) -> Iterator[World]:
    hub_store.add_tenant("home", "cloud_first")
    hub_store.add_tenant("other", "cloud_first")
    with ExitStack() as stack:
        http = stack.enter_context(TestClient(create_app(hub_store, HubSettings())))
        made = []
        for tenant, name in (("home", "laptop"), ("home", "phone"), ("other", "stranger")):
            _, token = hub_store.add_device(tenant, name)
            vault = stack.enter_context(Vault.open(tmp_path / name, source="user:cli"))
            join_with_token(vault, "http://testserver", token, transport=http._transport)
            made.append(Device(vault, stack.enter_context(connect(vault, transport=http._transport))))
        yield World(http, *made, hub_store)


def _post(world: World, url: str, body: Any, secret: str) -> Any:
    path = url.removeprefix("http://testserver")
    return world.http.post(path, json=body, headers={"authorization": f"Bearer {secret}"})


def _made(vault: Vault, rule_id: str) -> list[Any]:
    return [n for n in vault.list("note", limit=None) if n.origin_source == f"automation:{rule_id}"]


def test_a_delivery_becomes_a_note_at_level_two_on_the_device_that_runs_the_rule(
    world: World, hub_url: str
) -> None:
    laptop = world.laptop
    rule = laptop.vault.automations.add(FILE_AS_NOTE)
    hook = rule.rule.trigger.hook  # type: ignore[union-attr]
    made = register_webhook(laptop.vault, rule.id, laptop.client)
    assert made.url == f"http://testserver/v1/hooks/{hook}" and made.secret.startswith("tvwh_")
    assert made.secret not in repr(made)
    assert _post(world, made.url, {"title": "spam"}, "tvwh_guess").status_code == 401
    accepted = _post(world, made.url, {"title": "Invoice 42", "text": "due friday"}, made.secret)
    assert accepted.status_code == 202
    delivery = accepted.json()["delivery"]

    laptop.sync()  # the rule reaches the hub; the phone sees it, but the laptop runs it
    assert world.phone.sync().webhooks is None
    assert laptop.sync().webhooks == 0  # taken at the first sync already
    [outcome] = laptop.run()
    assert outcome["status"] == "completed" and outcome["results"]["act"]["outcome"] == "applied"
    [note] = _made(laptop.vault, rule.id)
    assert note.truth_level == 2 and note.data() == {
        "title": "Invoice 42",
        "text": "due friday",
        "tags": ["inbox"],
    }
    with vault_engine(laptop.vault) as engine:
        [run] = laptop.vault.automations.log(engine, rule.id)
    assert run.id == f"auto:{rule.id}:webhook:{delivery}"
    assert laptop.run() == []  # nothing is left to run
    assert world.http.get(f"/v1/webhooks/{hook}/deliveries", headers=_auth(laptop)).json() == {
        "deliveries": []
    }

    # the secret is in neither the rule (which syncs) nor the vault file nor the hub's database
    assert made.secret not in str(laptop.vault.automations.get(rule.id).item.data())
    laptop.vault.close()
    assert made.secret.encode() not in (Path(laptop.vault.home) / "vault.db").read_bytes()
    if not hub_url.startswith("postgresql"):
        assert made.secret.encode() not in Path(hub_url).read_bytes()


def _auth(device: Device) -> dict[str, str]:
    return {"authorization": f"Bearer {device.vault.replica.hub_token}"}


class _LostAcks(HttpWebhookRemote):
    """A hub link whose acks never arrive (the device crashed, or the network dropped them)."""

    def ack_deliveries(self, ids: list[str]) -> int:
        return 0


@ON_SQLITE
def test_a_delivery_taken_twice_runs_once(world: World) -> None:
    laptop = world.laptop
    rule = laptop.vault.automations.add(FILE_AS_NOTE)
    made = register_webhook(laptop.vault, rule.id, laptop.client)
    _post(world, made.url, {"title": "once"}, made.secret)
    assert sync_webhooks(laptop.vault, _LostAcks(laptop.client)) == 1
    assert [o["status"] for o in laptop.run()] == ["completed"]
    # the hub still holds it: the next sync takes it again (and acks it), the run is not repeated
    assert sync_webhooks(laptop.vault, laptop.client) == 1
    laptop.run()
    assert sync_webhooks(laptop.vault, _LostAcks(laptop.client)) == 0
    assert [n.data()["title"] for n in _made(laptop.vault, rule.id)] == ["once"]
    # taken twice before it ran: kept once
    _post(world, made.url, {"title": "twice"}, made.secret)
    assert sync_webhooks(laptop.vault, _LostAcks(laptop.client)) == 1
    assert sync_webhooks(laptop.vault, laptop.client) == 0
    laptop.run()
    assert sorted(n.data()["title"] for n in _made(laptop.vault, rule.id)) == ["once", "twice"]


@ON_SQLITE
def test_against_the_users_note_a_delivery_is_a_suggestion(world: World) -> None:
    laptop = world.laptop
    mine = laptop.vault.put("note", {"title": "groceries", "text": "milk"}).item
    rule = laptop.vault.automations.add(
        {
            "name": "append what arrives",
            "trigger": {"on": "webhook"},
            "action": {
                "do": "action",
                "name": "entity.edit",
                "input": {"id": "{payload.note}", "changes": {"text": "{payload.text}"}},
            },
        }
    )
    made = register_webhook(laptop.vault, rule.id, laptop.client)
    _post(world, made.url, {"note": mine.entity_id, "text": "milk, eggs"}, made.secret)
    laptop.sync()
    [outcome] = laptop.run()
    assert outcome["results"]["act"]["outcome"] == "suggestion"
    assert laptop.vault.get(mine.entity_id).data()["text"] == "milk"  # the user's stays
    [suggestion] = laptop.vault.records(kind="suggestion", entity_id=mine.entity_id)
    assert suggestion.item.origin_source == f"automation:{rule.id}" and suggestion.item.truth_level == 2


@ON_SQLITE
def test_a_delivery_that_fails_for_good_is_a_dead_letter(world: World) -> None:
    laptop = world.laptop
    rule = laptop.vault.automations.add(
        {
            "name": "broken",
            "trigger": {"on": "webhook"},
            "action": {
                "do": "action",
                "name": "entity.edit",
                "input": {"id": "{payload.id}", "changes": "no"},
            },
        }
    )
    made = register_webhook(laptop.vault, rule.id, laptop.client)
    delivery = _post(world, made.url, {"id": "x", "api_token": "hunter2"}, made.secret).json()["delivery"]
    laptop.sync()
    [outcome] = laptop.run()
    assert outcome["status"] == "compensated"
    [letter] = laptop.vault.dead_letters.list()
    assert (letter.kind, letter.ref) == ("automation", f"auto:{rule.id}:webhook:{delivery}")
    body = letter.input["input"]["delivery"]["body"]  # type: ignore[index]
    assert body["id"] == "x" and body["api_token"] != "hunter2"  # kept, its secrets masked


def test_another_tenants_device_cannot_take_over_a_hook_or_read_it(world: World) -> None:
    laptop, stranger = world.laptop, world.stranger
    rule = laptop.vault.automations.add(FILE_AS_NOTE)
    made = register_webhook(laptop.vault, rule.id, laptop.client)
    # the stranger copies the rule, hook id and all, and tries to register it as its own
    copied = stranger.vault.automations.add(laptop.vault.automations.get(rule.id).item.data())
    assert copied.rule.trigger.hook != made.hook_id  # type: ignore[union-attr]  # a new rule is a new hook
    secret = "tvwh_mine"
    stolen = world.http.put(
        f"/v1/webhooks/{made.hook_id}",
        json={"secret_sha256": hashlib.sha256(secret.encode()).hexdigest(), "rule_id": copied.id},
        headers=_auth(stranger),
    )
    assert stolen.status_code == 409
    assert _post(world, made.url, {"title": "x"}, secret).status_code == 401
    _post(world, made.url, {"title": "for home"}, made.secret)
    assert (
        world.http.get(f"/v1/webhooks/{made.hook_id}/deliveries", headers=_auth(stranger)).status_code == 404
    )
    stranger.sync()
    stranger.run()
    assert _made(stranger.vault, copied.id) == []
    laptop.sync()
    laptop.run()
    assert [n.data()["title"] for n in _made(laptop.vault, rule.id)] == ["for home"]


@ON_SQLITE
def test_only_a_webhook_rule_has_a_hook_and_a_delivery_is_nothing_to_tag(world: World) -> None:
    vault = world.laptop.vault
    with pytest.raises(InvalidInput, match="no entity to tag"):
        vault.automations.add({**FILE_AS_NOTE, "action": {"do": "tag", "tags": ["x"]}})
    dated = vault.automations.add(
        {"name": "d", "trigger": {"on": "write"}, "action": {"do": "tag", "tags": ["x"]}}
    )
    with pytest.raises(InvalidInput, match="not a webhook rule"):
        register_webhook(vault, dated.id, world.laptop.client)


def test_a_vault_not_joined_to_a_hub_cannot_register(tmp_path: Path) -> None:
    with Vault.open(tmp_path / "alone", source="user:cli") as vault:
        rule = vault.automations.add(FILE_AS_NOTE)
        with pytest.raises(ConflictState, match="not joined"):
            register_webhook(vault, rule.id)


@ON_SQLITE
def test_a_deleted_rules_hook_is_dropped_at_the_next_sync(world: World) -> None:
    laptop, phone = world.laptop, world.phone
    rule = laptop.vault.automations.add(FILE_AS_NOTE)
    made = register_webhook(laptop.vault, rule.id, laptop.client)
    _post(world, made.url, {"title": "never filed"}, made.secret)
    [listed] = world.http.get("/v1/webhooks", headers=_auth(phone)).json()["hooks"]
    assert (listed["hook_id"], listed["rule_id"], listed["pending"]) == (made.hook_id, rule.id, 1)
    assert "secret" not in str(listed) and "hash" not in str(listed)
    assert world.http.get("/v1/webhooks", headers=_auth(world.stranger)).json() == {"hooks": []}
    laptop.sync()
    phone.sync()
    phone.vault.delete(rule.id)  # deleted on the phone: the phone's sync drops the hook
    phone.sync()
    assert world.http.get("/v1/webhooks", headers=_auth(phone)).json() == {"hooks": []}
    assert _post(world, made.url, {"title": "late"}, made.secret).status_code == 401
    assert phone.vault.automations.deleted_unhooked() == []  # asked once, not at every sync
    laptop.sync()
    assert laptop.run() == []
