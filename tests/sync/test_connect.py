"""A vault's way to its hub from Python: join with a token, connect, sync, as the CLI does."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from truthvault.errors import ConflictState
from truthvault.hub import HubStore
from truthvault.hub.app import HubSettings, create_app
from truthvault.sync import connect, device_keys, join_with_token, key_exchange, syncer_for
from truthvault.vault import Vault


def test_a_vault_not_joined_cannot_connect(tmp_path: Path) -> None:
    with Vault.open(tmp_path / "v", source="user:test") as vault:
        assert device_keys(vault) is None
        with pytest.raises(ConflictState, match="not joined to a hub") as caught:
            connect(vault)
        assert caught.value.hint and "truthvault enroll" in caught.value.hint


def test_join_connect_and_sync_through_the_public_api(hub_store: HubStore, tmp_path: Path) -> None:
    hub_store.add_tenant("home", "cloud_first")
    _, token = hub_store.add_device("home", "laptop")
    with (
        TestClient(create_app(hub_store, HubSettings())) as http,
        Vault.open(tmp_path / "v", source="user:test") as vault,
    ):
        # the token's tenant is checked before anything is joined
        with pytest.raises(ConflictState, match="belongs to tenant 'home', not 'work'"):
            join_with_token(vault, "http://testserver", token, tenant="work", transport=http._transport)
        assert vault.replica.hub_url is None

        joined = join_with_token(vault, "http://testserver", token, tenant="home", transport=http._transport)
        assert (joined.tenant_name, joined.device_name, joined.vault_mode) == (
            "home",
            "laptop",
            "cloud_first",
        )
        assert vault.replica.hub_url == "http://testserver" and vault.device_id == joined.device_id

        vault.put("note", {"text": "from Python"}, source="user:test")
        with connect(vault, transport=http._transport) as client:
            stats = syncer_for(vault, client).sync()
            assert stats.push_outcomes == {"applied": 1}
            with pytest.raises(ConflictState, match="not end-to-end encrypted"):
                key_exchange(vault, client)
        assert vault.replica.pending_count() == 0
