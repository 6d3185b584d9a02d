"""Tenant policies stored and versioned: in the vault (a real SQLite file) and at the hub (real
SQLite and PostgreSQL), over HTTP, and synced so every device decides with the same rules."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from truthvault.errors import Forbidden, TruthvaultError
from truthvault.hub import HubStore
from truthvault.hub.app import HubSettings, create_app
from truthvault.kernel import DEFAULT_POLICY, Actor, InvalidPolicy, PolicyRequest, PolicyVersion, Risk
from truthvault.sync import connect, join_with_token, set_tenant_policy, sync_policy, syncer_for
from truthvault.vault import Vault, vault_policies

READS_ONLY = '@id("reads") permit (principal, action, resource) when { context.risk == "read" };\n'
EVERYTHING = '@id("everything") permit (principal, action, resource);\n'
BAD = "permit (principal, action, resource);\npermit (principal, action resource);\n"
WRITE = PolicyRequest(Actor("user:cli"), "notes.create", Risk.WRITE)


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    with Vault.open(tmp_path / "v", source="user:cli") as v:
        yield v


def test_a_vault_keeps_every_version_and_decides_with_the_newest(vault: Vault, tmp_path: Path) -> None:
    policies = vault_policies(vault)
    assert policies.current() == PolicyVersion(0, DEFAULT_POLICY)
    engine = policies.engine()
    assert engine.decide(WRITE).policies == ("owner.all",)
    first = engine.set(READS_ONLY, "user:cli")
    assert (first.version, first.set_by) == (1, "user:cli") and first.set_at
    assert not engine.decide(WRITE).allowed
    second = policies.set(EVERYTHING, "user:desktop")
    assert second.version == 2
    assert engine.refresh() == second and engine.decide(WRITE).policies == ("everything",)
    assert [v.version for v in policies.history()] == [1, 2]
    vault.close()
    with Vault.open(tmp_path / "v") as again:  # it is in the file, not in memory
        assert vault_policies(again).current() == second


def test_a_vault_refuses_a_bad_policy_or_a_setter_below_level_1(vault: Vault) -> None:
    policies = vault_policies(vault)
    policies.set(EVERYTHING, "user:cli")
    with pytest.raises(InvalidPolicy, match=r"^line 2: unexpected token `resource`"):
        policies.set(BAD, "user:cli")
    with pytest.raises(Forbidden, match="only the user"):
        policies.set(READS_ONLY, "ai-local:llama3")
    with pytest.raises(Forbidden):
        set_tenant_policy(vault, READS_ONLY, "automation:x")
    assert [v.text for v in policies.history()] == [EVERYTHING]


def test_the_hub_versions_each_tenants_policy(hub_store: HubStore) -> None:
    hub_store.add_tenant("home", "cloud_first")
    hub_store.add_tenant("work", "cloud_first")
    home = hub_store.authenticate(hub_store.add_device("home", "laptop")[1])
    work = hub_store.authenticate(hub_store.add_device("work", "laptop")[1])
    assert hub_store.policy(home).version == 0
    engine = hub_store.policy_engine(home.tenant_id)
    assert engine.decide(WRITE).policies == ("owner.all",)
    assert hub_store.set_policy(home, READS_ONLY, "user:cli").version == 1
    assert hub_store.set_policy(home, EVERYTHING, "user:phone").version == 2
    assert hub_store.policy(work) == PolicyVersion(0, DEFAULT_POLICY)  # tenants never share
    current = hub_store.policy(home)
    assert (current.version, current.text, current.set_by) == (2, EVERYTHING, "user:phone")
    # the engine follows the new version; the old decision is not served
    assert hub_store.policy_engine(home.tenant_id) is engine and engine.decide(WRITE).policies == (
        "everything",
    )
    with pytest.raises(InvalidPolicy, match=r"^line 2: "):
        hub_store.set_policy(home, BAD, "user:cli")
    with pytest.raises(Forbidden, match=r"^source: ai-cloud:x/y may not set the policy"):
        hub_store.set_policy(home, READS_ONLY, "ai-cloud:x/y")
    assert hub_store.policy(home).version == 2
    events = [e for e in hub_store.security_events("home") if e.type == "POLICY_SET"]
    assert [e.detail["version"] for e in events] == [2, 1] and events[0].device_id == home.device_id


def test_policy_routes(hub_store: HubStore) -> None:
    hub_store.add_tenant("home", "cloud_first")
    token = hub_store.add_device("home", "laptop")[1]
    auth = {"authorization": f"Bearer {token}"}
    with TestClient(create_app(hub_store, HubSettings())) as http:
        assert http.get("/v1/policy").status_code == 401
        got = http.get("/v1/policy", headers=auth).json()
        assert (got["version"], got["text"], got["changed"]) == (0, DEFAULT_POLICY, True)
        put = http.put("/v1/policy", json={"text": READS_ONLY, "source": "user:cli"}, headers=auth)
        assert put.status_code == 200 and put.json()["version"] == 1
        assert http.get("/v1/policy", params={"known": 1}, headers=auth).json() == {
            "version": 1, "set_by": "user:cli", "set_at": put.json()["set_at"], "changed": False,
        }  # fmt: skip
        bad = http.put("/v1/policy", json={"text": BAD, "source": "user:cli"}, headers=auth)
        assert bad.status_code == 422
        assert bad.json()["error"]["message"] == "text: line 2: unexpected token `resource`"
        ai = http.put("/v1/policy", json={"text": EVERYTHING, "source": "ai-cloud:x/y"}, headers=auth)
        assert (
            ai.status_code == 403 and "ai-cloud:x/y may not run policy.set" in ai.json()["error"]["message"]
        )
        missing = http.put("/v1/policy", json={"text": EVERYTHING}, headers=auth)
        assert missing.status_code == 422 and "source" in missing.text
        assert http.get("/v1/policy", headers=auth).json()["text"] == READS_ONLY


def test_a_policy_set_on_one_device_reaches_the_other_at_sync(hub_store: HubStore, tmp_path: Path) -> None:
    hub_store.add_tenant("home", "cloud_first")
    tokens = [hub_store.add_device("home", name)[1] for name in ("laptop", "phone")]
    with (
        TestClient(create_app(hub_store, HubSettings())) as http,
        Vault.open(tmp_path / "a", source="user:cli") as laptop,
        Vault.open(tmp_path / "b", source="user:cli") as phone,
    ):
        for vault, token in zip((laptop, phone), tokens, strict=True):
            join_with_token(vault, "http://testserver", token, tenant="home", transport=http._transport)
        with pytest.raises(TruthvaultError, match="line 2"):
            set_tenant_policy(laptop, BAD, "user:cli", transport=http._transport)
        stored = set_tenant_policy(laptop, READS_ONLY, "user:cli", transport=http._transport)
        assert stored.version == 1 and vault_policies(laptop).current().version == 1
        assert vault_policies(phone).current().version == 0
        with connect(phone, transport=http._transport) as client:
            syncer_for(phone, client).sync()
            assert vault_policies(phone).current().text == READS_ONLY
            assert sync_policy(phone, client) is None  # the same version: nothing fetched again
        assert not vault_policies(phone).engine().decide(WRITE).allowed
        ctx = hub_store.authenticate(tokens[0])
        assert hub_store.policy(ctx).version == 1


def test_concurrent_sets_make_distinct_versions(hub_store: HubStore) -> None:
    hub_store.add_tenant("home", "cloud_first")
    ctx = hub_store.authenticate(hub_store.add_device("home", "laptop")[1])
    texts = [f'@id("p{i}") permit (principal, action, resource);\n' for i in range(8)]
    with ThreadPoolExecutor(4) as pool:
        versions = sorted(
            v.version for v in pool.map(lambda t: hub_store.set_policy(ctx, t, "user:cli"), texts)
        )
    assert versions == list(range(1, 9))
    assert hub_store.policy(ctx).version == 8
