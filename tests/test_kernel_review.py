"""A hostile review of the governed kernel (issue 11): what a device of the same tenant, an AI
writer or a curious hub operator can get done around it. Each test is one finding."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from truthvault.crypto import DeviceKeys
from truthvault.hub.app import HubSettings, create_app
from truthvault.hub.store import HubStore
from truthvault.kernel import (
    ActionForbidden,
    ApprovalRequired,
    BrokerRequest,
    BrokerSettings,
    Risk,
    ValidationFailed,
    input_hash,
)
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
        ("POST", "/v1/actions/keys.share", {"input": {"blobs": {}, "kid": "k"}, "source": source}),
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


# -- what a hub (its operator) can make a device believe about approvals -------------------------
def _voice_delete(vault: Vault) -> tuple[str, dict[str, str], str]:
    """A note of the user's, the input deleting it, and that input's hash."""
    note = vault.put("note", {"text": "keep me"}).item
    params = {"id": note.entity_id}
    spec = vault.kernel.spec("entity.delete")
    return note.entity_id, params, vault.kernel.hasher(spec.input.model_validate(params))


def test_a_hub_cannot_hand_a_device_an_approval_for_a_request_it_never_asked(vault: Vault) -> None:
    """The device took in any request the hub sent, one "asked" by this device and already
    approved included: a hub (its operator) could let a user:voice actor delete without the
    PIN (or an AI without the user) by inventing the approved request. A device knows every
    request it asked; one it never asked is not taken in."""
    entity_id, params, digest = _voice_delete(vault)
    voice = vault.actor("user:voice")
    now = time.time()
    forged = BrokerRequest(
        id="forged-1", kind="pin", action="entity.delete", risk="destructive", source=voice.source,
        device_id=vault.device_id, tenant_id=vault.tenant_id, reason="", input_hash=digest,
        created_at=now, expires_at=now + 3600, status="approved", decided_by="user:cli",
        decided_device="other-device", decided_at=now,
    )  # fmt: skip
    vault.broker.store.take_in([forged])
    with pytest.raises(ActionForbidden):
        vault.kernel.run("entity.delete", params, actor=voice, approval="forged-1")
    assert vault.get(entity_id).payload  # still there


def test_a_hub_cannot_change_what_a_request_asked_for(vault: Vault) -> None:
    """The hub refuses a device that changes a request's kind, action, risk, asker or input hash
    (409); the device took such a change from the hub without a look: a hub could turn the
    approval of one harmless action into the approval of another."""
    _, _, digest = _voice_delete(vault)
    ai = vault.actor("ai-local:llama")
    rid = vault.broker.ask_approval(
        actor=ai, action="notes.create", risk=Risk.WRITE, kind="approval", input_hash="harmless",
        targets=(), reason="a note",
    )  # fmt: skip
    asked = vault.broker.get(rid)
    # the device sent it (not dirty any more), then the hub answers with another request
    vault._db.conn.execute("UPDATE broker_requests SET dirty = 0 WHERE id = ?", (rid,))
    swapped = asked.with_(
        action="entity.delete", risk="destructive", input_hash=digest, status="approved",
        decided_by="user:cli", decided_at=time.time(),
    )  # fmt: skip
    vault.broker.store.take_in([swapped])
    held = vault.broker.get(rid)
    assert (held.action, held.input_hash) == ("notes.create", "harmless")


def test_a_hub_cannot_approve_a_request_the_user_never_decided(vault: Vault) -> None:
    """A device took the hub's word that a request it asked was approved (and that a PIN was
    checked): a hub operator could approve an AI's or a voice actor's destructive action. A
    decision is sealed by the deciding device (see docs/kernel-approvals.md): one without a
    seal that checks is no decision."""
    entity_id, params, _ = _voice_delete(vault)
    voice = vault.actor("user:voice")
    with pytest.raises(ApprovalRequired) as asked:
        vault.kernel.run("entity.delete", params, actor=voice)
    rid = asked.value.request_id
    assert rid is not None
    vault._db.conn.execute("UPDATE broker_requests SET dirty = 0 WHERE id = ?", (rid,))
    forged = vault.broker.get(rid).with_(
        status="approved", decided_by="user:cli", decided_device="nobody", decided_at=time.time()
    )
    vault.broker.store.take_in([forged])
    with pytest.raises(ActionForbidden):
        vault.kernel.run("entity.delete", params, actor=voice, approval=rid)
    assert vault.get(entity_id).payload


def test_a_device_cannot_post_an_approval_that_never_expires(client: TestClient, hub_store: HubStore) -> None:
    """An approved request must be used within approved_ttl_s (1 h; a confirmation within 60 s),
    but POST /v1/approvals took the expiry the posting device named along with its decision."""
    laptop = Signer(client, hub_store, "alpha", "laptop")
    now = time.time()
    asked = BrokerRequest(
        id="req-forever", kind="confirm", action="entity.delete", risk="destructive", source="user:mobile",
        device_id=laptop.id, tenant_id=laptop.tenant_id, reason="", input_hash="h",
        created_at=now, expires_at=now + 60,
    )  # fmt: skip
    r = laptop.post("/v1/approvals", {"requests": [asked.to_wire()]})
    assert r.status_code == 200, r.text
    decided = asked.with_(
        status="approved", decided_by="user:mobile", decided_at=now, expires_at=now + 10 * 365 * 86400
    )
    r = laptop.post("/v1/approvals", {"requests": [decided.to_wire()]})
    assert r.status_code == 200, r.text
    [held] = r.json()["requests"]
    assert held["status"] == "approved"
    assert held["expires_at"] <= time.time() + BrokerSettings().confirm_window_s + 1, held


# -- one bad item must not stop a device's sync for good ------------------------------------------
def test_a_vault_restored_from_a_backup_still_syncs_its_audit_entries(
    hub_store: HubStore, tmp_path: Path
) -> None:
    """A vault file restored from a backup numbers its next audit batch as it did before; the hub
    has that number already (with other entries) and refuses it, and the device sent the same
    batch at every later sync: every 'sync now' failed, for good, and no later entry went up."""
    from .sync.test_audit_sync import Device

    hub_store.add_tenant("fam", "cloud_first")
    with TestClient(create_app(hub_store, HubSettings(audit_key_path=str(tmp_path / "audit.key")))) as http:
        d = Device(http, hub_store, tmp_path / "laptop")
        me = d.vault.actor("user:cli")
        d.vault.kernel.run("notes.create", {"text": "one"}, actor=me)
        d.syncer.sync()
        backup = tmp_path / "backup.db"
        with closing(sqlite3.connect(backup)) as copy:
            d.vault._db.conn.backup(copy)
        d.vault.kernel.run("notes.create", {"text": "two"}, actor=me)
        d.syncer.sync()
        with closing(sqlite3.connect(backup)) as copy:
            copy.backup(d.vault._db.conn)
        d.vault.kernel.run("notes.create", {"text": "three, after the restore"}, actor=me)
        d.syncer.sync()
        assert d.vault.audit.pending() == 0
        d.vault.close()


# -- a bad policy must not stop a tenant --------------------------------------------------------
@pytest.mark.parametrize(
    "rule",
    [
        "permit (principal, action, resource) when { principal.level.foo == 1 };",
        "permit (principal, action, resource) when { context.nope == 1 };",
        'permit (principal, action, resource) when { principal.level == "1" || resource.count.x };',
    ],
)
def test_a_policy_cedar_cannot_evaluate_is_refused_when_set(
    client: TestClient, hub_store: HubStore, rule: str
) -> None:
    """Cedar parses a rule that reads an attribute no request has (or compares across types),
    and the hub stored it: from then on its only permit erred on every request and every action
    of the tenant but setting the policy was FORBIDDEN ("1 policies could not be evaluated")."""
    laptop = Signer(client, hub_store, "alpha", "laptop")
    r = laptop.post("/v1/actions/policy.set", {"input": {"text": rule}})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "text" and "cannot be evaluated" in r.json()["error"]["message"]
    r = laptop.post("/v1/actions/tenant.code", {"input": {}})
    assert r.status_code == 200, r.text


# -- no payload content in the audit log ----------------------------------------------------------
def test_a_refused_payload_does_not_reach_the_audit_log(vault: Vault) -> None:
    """An action that fails is audited with its error as the reason; a contract refusal's error
    is jsonschema's message, which quotes the payload ("{'pin': 'hunter2'} is not of type
    'string'"). The audit log goes to the hub, and for local_first holds no payload content."""
    with pytest.raises(ValidationFailed):
        vault.kernel.run(
            "entity.put", {"type": "note", "data": {"text": {"pin": "hunter2"}}}, actor=vault.actor()
        )
    rows = vault._db.conn.execute("SELECT entry FROM audit_outbox").fetchall()
    assert rows, "the failure is audited"
    assert not any(b"hunter2" in bytes(r[0]) for r in rows)


# -- writes around the kernel ---------------------------------------------------------------------
def test_an_import_is_decided_by_policy_and_audited(vault: Vault, tmp_path: Path) -> None:
    other = Vault.open(tmp_path / "other", source="user:cli")
    other.put("note", {"text": "imported as the user's own"})
    dump = tmp_path / "dump.jsonl"
    with dump.open("wb") as fp:
        other.export_jsonl(fp)
    other.close()
    before = vault.audit.pending()
    with dump.open("rb") as fp:
        vault.import_jsonl(fp)
    assert vault.audit.pending() > before


# -- errors ---------------------------------------------------------------------------------------
def test_a_deeply_nested_input_is_a_422_naming_its_field_not_a_500(
    client: TestClient, hub_store: HubStore
) -> None:
    """The input's hash (pydantic's model_dump_json) fails past a few hundred levels, and not with
    a TruthvaultError: a nested contract schema (or entity payload) was a 500 at the hub and a
    traceback on the device."""
    laptop = Signer(client, hub_store, "cloud", "laptop")
    deep: dict[str, Any] = {"type": "object"}
    for _ in range(400):
        deep = {"type": "object", "properties": {"x": deep}}
    r = laptop.post("/v1/actions/contract.add", {"input": {"type": "recipe", "schema": deep}})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "schema"


def test_a_deeply_nested_payload_is_refused_on_the_device(vault: Vault) -> None:
    deep: dict[str, Any] = {"x": 1}
    for _ in range(400):
        deep = {"x": deep}
    with pytest.raises(ValidationFailed) as refused:
        vault.kernel.run(
            "entity.put", {"type": "note", "data": {"text": "t", "more": deep}}, actor=vault.actor()
        )
    assert refused.value.field == "data"


def test_a_refusal_from_a_handler_names_its_field_over_http(client: TestClient, hub_store: HubStore) -> None:
    """A store's InvalidInput ("schema.type: must be ...") became a VALIDATION_ERROR with no
    field: the body named none, though the message did."""
    laptop = Signer(client, hub_store, "cloud", "laptop")
    r = laptop.post("/v1/actions/contract.add", {"input": {"type": "recipe", "schema": {"type": "string"}}})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "schema.type", r.text
    r = laptop.post(
        "/v1/actions/contract.add", {"input": {"type": "recipe", "schema": {"type": "object", "required": 5}}}
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "schema.required", r.text


# -- what a local_first hub can read -------------------------------------------------------------
def test_a_local_first_hub_cannot_confirm_a_guess_of_a_notes_text(tmp_path: Path) -> None:
    """The input hash was a plain SHA-256 of the input's JSON: a local_first hub saw it in every
    audit entry and approval request and could confirm a guess of a note's text (or any
    low-entropy input), which the encrypted sync feed does not allow. A local_first device keys
    it (here, before the tenant's keyring arrived, under a key of the device's own)."""
    from truthvault.kernel import decode_entry
    from truthvault.vault._actions import NoteIn

    vault = Vault.open(tmp_path / "lf", source="user:cli")
    try:
        vault.replica.join(
            hub_url="http://hub", token="t", tenant_id="tenant-lf", tenant_name="lf",
            device_id="dev-lf", vault_mode="local_first",
        )  # fmt: skip
        vault.kernel.run("notes.create", {"text": "meet Bob at 5"}, actor=vault.actor())
        [row] = vault._db.conn.execute("SELECT entry FROM audit_outbox").fetchall()
        entry = decode_entry(bytes(row[0]))
        guess = input_hash(NoteIn(text="meet Bob at 5"))
        assert entry.input_hash != guess
    finally:
        vault.close()


def test_a_plain_approval_does_not_stand_in_for_the_pin(vault: Vault) -> None:
    """Policy asks a user:voice delete for the PIN, but redeeming checked only the action, input
    and asker: a voice front end that asked the broker itself for a plain approval (no PIN to
    approve it, 24 h to wait instead of a confirmation's minutes) deleted with it."""
    entity_id, params, digest = _voice_delete(vault)
    voice = vault.actor("user:voice")
    rid = vault.broker.ask_approval(
        actor=voice, action="entity.delete", risk=Risk.DESTRUCTIVE, kind="approval",
        input_hash=digest, targets=(), reason="tidy up",
    )  # fmt: skip
    vault.kernel.run("approval.decide", {"id": rid, "decision": "approve"}, actor=vault.actor("user:cli"))
    with pytest.raises(ActionForbidden, match="kind of approval"):
        vault.kernel.run("entity.delete", params, actor=voice, approval=rid)
    assert vault.get(entity_id).payload
    assert vault.broker.get(rid).status == "approved"  # a mismatch uses nothing


def test_a_sync_that_cannot_take_the_hubs_policy_does_not_report_success(
    hub_store: HubStore, tmp_path: Path, hub_sql: Any
) -> None:
    """The device keeps its policy when it cannot read the hub's newest version (by design), but
    the sync said nothing: it reported success while this device decided with other rules than
    the hub and the tenant's other devices."""
    from .sync.test_audit_sync import Device

    hub_store.add_tenant("fam", "cloud_first")
    with TestClient(create_app(hub_store, HubSettings(audit_key_path=str(tmp_path / "audit.key")))) as http:
        d = Device(http, hub_store, tmp_path / "laptop")
        stats = d.syncer.sync()
        assert stats.diverged == []
        [(pk,)] = hub_sql("SELECT pk FROM tenants WHERE name = 'fam'")
        hub_sql(
            "INSERT INTO policy_versions (tenant_pk, version, text, set_by, set_device, set_at) "
            "VALUES (?, 1, 'permit (principal, action, resource) when { a newer Cedar };', 'user:cli', '', "
            "'2026-01-01T00:00:00.000Z')",
            (pk,),
        )
        stats = d.syncer.sync()
        assert "policy" in stats.diverged
        d.vault.close()


@pytest.mark.parametrize("source", ["automation:nightly", "ai-cloud:openai/gpt"])
def test_only_the_user_resolves_a_conflict_at_the_hub(hub_store: HubStore, source: str) -> None:
    """A conflict is two of the user's own versions; the vault lets only level 1 resolve one, but
    POST /v1/actions/conflict.resolve with an AI or automation source chose between them."""
    from .hub.test_app import Dev

    hub_store.add_tenant("beta", "cloud_first")
    with TestClient(create_app(hub_store, HubSettings())) as http:
        a, phone = Dev(http, hub_store, "beta", "laptop"), Dev(http, hub_store, "beta", "phone")
        first = a.item("n1", "base")
        a.push(first)
        a.push(a.item("n1", "laptop edit", base_version=1, base_clock=first.last_modified_at))
        phone.push(phone.item("n1", "phone edit", base_version=1, base_clock=first.last_modified_at))
        [conflict] = http.get("/v1/conflicts", headers=a.headers).json()
        body = {"input": {"conflict_id": conflict["id"], "resolution": "restore"}, "source": source}
        r = http.post("/v1/actions/conflict.resolve", json=body, headers=a.headers)
        assert r.status_code == 403 and r.json()["error"]["code"] == "FORBIDDEN", r.text
        assert len(http.get("/v1/conflicts", headers=a.headers).json()) == 1


def test_a_device_reads_nothing_of_another_tenants_governance(
    client: TestClient, hub_store: HubStore
) -> None:
    """Checked, holds: policy, contracts, approvals and the audit log are read per tenant."""
    alpha = Signer(client, hub_store, "cloud", "laptop")
    hub_store.add_tenant("gamma", "cloud_first")
    other = Signer(client, hub_store, "gamma", "spy")
    text = '@id("alpha.only")\npermit (principal, action, resource);'
    assert alpha.post("/v1/actions/policy.set", {"input": {"text": text}}).status_code == 200
    schema = {"type": "object", "properties": {"secret_field": {"type": "string"}}}
    r = alpha.post("/v1/actions/contract.add", {"input": {"type": "recipe", "schema": schema}})
    assert r.status_code == 200, r.text
    now = time.time()
    asked = BrokerRequest(
        id="alpha-req", kind="approval", action="entity.delete", risk="destructive", source="ai-local:x",
        device_id=alpha.id, tenant_id=alpha.tenant_id, reason="alpha's", input_hash="h",
        created_at=now, expires_at=now + 600,
    )  # fmt: skip
    assert alpha.post("/v1/approvals", {"requests": [asked.to_wire()]}).status_code == 200
    seen = " ".join(
        other.get(path, query).text
        for path, query in (
            ("/v1/policy", ""), ("/v1/contracts", ""), ("/v1/approvals", ""),
            ("/v1/audit/entries", "from=0&limit=100"), ("/v1/audit/checkpoint", ""),
        )
    )  # fmt: skip
    for mark in ("alpha.only", "secret_field", "alpha-req", alpha.id, alpha.tenant_id):
        assert mark not in seen
    r = other.post(
        "/v1/approvals/decide", {"request_id": "alpha-req", "decision": "approve", "source": "user:cli"}
    )
    assert r.status_code == 404, r.text
    r = other.post(
        "/v1/approvals", {"requests": [asked.with_(status="approved", decided_by="user:cli").to_wire()]}
    )
    assert r.status_code in (403, 409), r.text


def test_a_legacy_route_names_the_field_it_refuses(client: TestClient, hub_store: HubStore) -> None:
    """POST /v1/actions/... names the field of a 422; the routes with a pydantic body (PUT
    /v1/policy, POST /v1/approvals/decide, ...) said it only inside the message."""
    laptop = Signer(client, hub_store, "alpha", "laptop")
    r = laptop.post("/v1/approvals/decide", {"request_id": "x", "decision": "maybe", "source": "user:cli"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "decision", r.text
    r = laptop.call("PUT", "/v1/policy", body=json.dumps({"source": "user:cli"}).encode())
    assert r.status_code == 422 and r.json()["error"]["field"] == "text", r.text


def test_deciding_with_a_source_naming_no_level_is_a_422_naming_source(
    client: TestClient, hub_store: HubStore
) -> None:
    laptop = Signer(client, hub_store, "alpha", "laptop")
    now = time.time()
    asked = BrokerRequest(
        id="req-src", kind="approval", action="entity.delete", risk="destructive", source="ai-local:x",
        device_id=laptop.id, tenant_id=laptop.tenant_id, reason="", input_hash="h",
        created_at=now, expires_at=now + 600,
    )  # fmt: skip
    assert laptop.post("/v1/approvals", {"requests": [asked.to_wire()]}).status_code == 200
    r = laptop.post(
        "/v1/approvals/decide", {"request_id": "req-src", "decision": "approve", "source": "root:x"}
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "source", r.text


def test_an_approval_of_a_stream_import_is_of_its_content(tmp_path: Path) -> None:
    import io

    vault = Vault.open(tmp_path / "v", source="user:cli")
    ai = "ai-local:llama3"

    def line(entity_id: str) -> str:
        return json.dumps({
            "entity_type": "note", "entity_id": entity_id, "tenant_id": "x", "truth_level": 3,
            "origin_source": ai, "last_modified_at": "2026-01-01T00:00:00.000Z-0000",
            "device_id": "d", "version": 2, "payload": {"t": entity_id},
        })  # fmt: skip

    try:
        with pytest.raises(ApprovalRequired) as asked:
            vault.import_jsonl(io.StringIO(line("shown")), source=ai)
        rid = asked.value.request_id
        vault.kernel.run("approval.decide", {"id": rid, "decision": "approve"}, actor=vault.actor("user:cli"))
        with pytest.raises((ActionForbidden, ApprovalRequired)):
            vault.import_jsonl(io.StringIO(line("other")), source=ai, approval=rid)
        assert vault.count() == 0
        # the stream it was asked for redeems it, from an iterable of lines too (spooled)
        assert vault.import_jsonl(iter([line("shown")]), source=ai, approval=rid) == 1
    finally:
        vault.close()
