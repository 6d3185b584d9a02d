"""A hostile review of the governed kernel (issue 11): what a device of the same tenant, an AI
writer or a curious hub operator can get done around it. Each test is one finding."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from truthvault.crypto import DeviceKeys
from truthvault.hub.app import HubSettings, create_app
from truthvault.hub.store import HubStore
from truthvault.kernel import ActionForbidden, Risk, ValidationFailed
from truthvault.vault import Vault

from .hub.test_auth import Signer


@pytest.fixture
def client(hub_store: HubStore) -> Iterator[TestClient]:
    hub_store.add_tenant("alpha", "local_first")
    hub_store.add_tenant("cloud", "cloud_first")
    hub_store.add_tenant("beta", "local_first")
    with TestClient(create_app(hub_store, HubSettings())) as c:
        yield c


def _bearer(client: TestClient, signer: Signer) -> dict[str, str]:
    token = signer.post("/v1/auth/token", {}).json()["token"]
    return {"authorization": f"Bearer {token}", "content-type": "application/json"}


def test_a_bearer_token_cannot_replace_the_devices_signing_key_through_the_action_route(
    client: TestClient, hub_store: HubStore
) -> None:
    """/v1/devices/rotate-key takes only a signed request (a bearer token lives 15 minutes; a
    new signing key is the device for good); POST /v1/actions/device.rotate_key took a token."""
    laptop = Signer(client, hub_store, "alpha", "laptop")
    bearer = _bearer(client, laptop)
    new = DeviceKeys.generate().public_bundle()
    body = {"input": {"sign_public": new["sign"], "box_public": new["box"]}}
    legacy = client.post(
        "/v1/devices/rotate-key", json={"sign_public": new["sign"], "box_public": new["box"]}, headers=bearer
    )
    assert legacy.status_code == 401, legacy.text
    r = client.post("/v1/actions/device.rotate_key", json=body, headers=bearer)
    assert r.status_code == 401, r.text


def test_key_actions_are_refused_for_a_cloud_first_tenant_on_every_route(
    client: TestClient, hub_store: HubStore
) -> None:
    """PUT /v1/keys/wrapped and /v1/keys/recovery refuse a cloud_first tenant (409); the same
    actions through POST /v1/actions/... stored key blobs for it."""
    laptop = Signer(client, hub_store, "cloud", "laptop")
    r = laptop.call("PUT", "/v1/keys/recovery", body=json.dumps({"blob": "x" * 40, "kid": "k1"}).encode())
    assert r.status_code == 409, r.text
    r = laptop.post("/v1/actions/keys.recovery", {"input": {"blob": "x" * 40, "kid": "k1"}})
    assert r.status_code == 409, r.text


@pytest.mark.parametrize(
    "source", ["root:x", " user:cli", "USER:cli", "user:", "user", "ai-cloud:", "x" * 5000, "user:cli\x00"]
)
def test_a_source_naming_no_level_is_a_422_naming_source_and_short(
    client: TestClient, hub_store: HubStore, source: str
) -> None:
    laptop = Signer(client, hub_store, "alpha", "laptop")
    Signer(client, hub_store, "alpha", "phone")
    r = laptop.post("/v1/actions/device.revoke", {"input": {"name": "phone"}, "source": source})
    assert r.status_code < 500, r.text
    assert r.status_code == 422, r.text
    if r.status_code == 422:
        error = r.json()["error"]
        assert error["code"] == "VALIDATION_ERROR" and error["field"] == "source", r.text
        assert error["message"].startswith("source: ") and len(error["message"]) < 200
    assert not any(d.revoked for d in hub_store.list_devices("alpha"))


@pytest.mark.parametrize(
    "source", ["automation:nightly", "ai-local:llama", "ai-lan:x", "ai-cloud:openai/gpt"]
)
def test_no_level_2_to_5_source_does_a_security_action_over_http(
    client: TestClient, hub_store: HubStore, source: str
) -> None:
    laptop = Signer(client, hub_store, "alpha", "laptop")
    Signer(client, hub_store, "alpha", "phone")
    new = DeviceKeys.generate().public_bundle()
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/v1/actions/device.revoke", {"input": {"name": "phone"}, "source": source}),
        ("POST", "/v1/actions/tenant.code", {"input": {}, "source": source}),
        ("POST", "/v1/actions/keys.recovery", {"input": {"blob": "x" * 40, "kid": "k"}, "source": source}),
        ("POST", "/v1/actions/keys.rotate", {"input": {"blobs": {}, "kid": "k"}, "source": source}),
        ("POST", "/v1/actions/device.rotate_key",
         {"input": {"sign_public": new["sign"], "box_public": new["box"]}, "source": source}),
        ("POST", "/v1/actions/policy.set", {"input": {"text": "permit (principal, action, resource);"}, "source": source}),
        ("PUT", "/v1/policy", {"text": "permit (principal, action, resource);", "source": source}),
        ("POST", "/v1/contracts/recipe", {"schema": {"type": "object"}, "source": source}),
        ("POST", "/v1/actions/contract.add", {"input": {"type": "recipe", "schema": {"type": "object"}}, "source": source}),
    ]  # fmt: skip
    for method, path, body in calls:
        r = laptop.call(method, path, body=json.dumps(body).encode())
        assert r.status_code == 403, (path, r.status_code, r.text)
    assert not any(d.revoked for d in hub_store.list_devices("alpha"))


# -- the device's kernel -----------------------------------------------------------------------
@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    v = Vault.open(tmp_path / "vault", source="user:cli")
    try:
        yield v
    finally:
        v.close()


def _suggestion(vault: Vault, by: str) -> str:
    mine = vault.put("note", {"text": "mine"}).item
    vault.edit(mine.entity_id, {"text": "theirs"}, source=by)
    [record] = [r for r in vault.suggestions() if r.item.origin_source == by]
    return record.id


@pytest.mark.parametrize("source", ["automation:nightly", "ai-local:llama", "ai-cloud:openai/gpt"])
def test_only_the_user_rejects_a_suggestion(vault: Vault, source: str) -> None:
    """Accepting a suggestion (and resolving a conflict, confirming truth) takes level 1 in the
    vault; rejecting did not: an AI could clear a rival's (or any) suggestion out of the user's
    review through suggestion.reject."""
    record_id = _suggestion(vault, "ai-lan:other")
    # the same error accept gives (the vault's "only the user decides", an InvalidSource)
    with pytest.raises(ValidationFailed, match="only the user decides"):
        vault.kernel.run("suggestion.reject", {"id": record_id}, actor=vault.actor(source))
    assert vault.get_record(record_id).status == "open"
    vault.kernel.run("suggestion.reject", {"id": record_id}, actor=vault.actor("user:cli"))
    assert vault.get_record(record_id).status == "rejected"


@pytest.mark.parametrize(
    "source", ["automation:nightly", "ai-local:llama", "ai-lan:x", "ai-cloud:openai/gpt"]
)
def test_no_level_2_to_5_source_runs_a_device_security_action(vault: Vault, source: str) -> None:
    broker = vault.broker
    asker = vault.actor("ai-local:asker")
    rid = broker.ask_approval(
        actor=asker, action="entity.delete", risk=Risk.DESTRUCTIVE, kind="approval",
        input_hash="h", targets=(), reason="r",
    )  # fmt: skip
    actor = vault.actor(source)
    for name, params in (
        ("approval.decide", {"id": rid, "decision": "approve"}),
        ("pin.set", {"pin": "123456"}),
    ):
        with pytest.raises(ActionForbidden):
            vault.kernel.run(name, params, actor=actor)
    assert broker.get(rid).status == "pending" and not broker.has_pin()
