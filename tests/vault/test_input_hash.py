"""The input hash a device's kernel keeps: plain for a cloud-first tenant, keyed for a
local-first one (under the tenant keyring, or the device's own key until it has it), and an
approval redeemed under the key it was asked under."""

from __future__ import annotations

import hmac
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from truthvault.crypto import Keyring, input_hash_key
from truthvault.kernel import (
    ActionForbidden,
    ApprovalRequired,
    KeyedInputHash,
    hash_key_id,
    input_hash,
)
from truthvault.vault import Vault


class Text(BaseModel):
    text: str


def _join(vault: Vault, mode: str, tenant: str = "tenant-1") -> None:
    vault.replica.join(
        hub_url="http://hub", token="t", tenant_id=tenant, tenant_name="t", device_id=vault.device_id,
        vault_mode=mode,
    )  # fmt: skip


def test_a_cloud_first_device_keeps_the_plain_hash(tmp_path: Path) -> None:
    with Vault.open(tmp_path / "v", source="user:cli") as vault:
        _join(vault, "cloud_first")
        assert vault.kernel.hasher(Text(text="hi")) == input_hash(Text(text="hi"))


def test_devices_holding_one_keyring_take_the_same_keyed_hash(tmp_path: Path) -> None:
    ring = Keyring.new()
    hashes = []
    for name, tenant in (("laptop", "tenant-1"), ("phone", "tenant-1"), ("other", "tenant-2")):
        with Vault.open(tmp_path / name) as vault:
            _join(vault, "local_first", tenant)
            vault.replica.set_keyring(ring)
            hashes.append(vault.kernel.hasher(Text(text="meet Bob at 5")))
    laptop, phone, other = hashes
    data_key = ring.key(ring.current)
    assert data_key is not None
    expected = KeyedInputHash(input_hash_key(data_key, "tenant-1"), ring.current)(Text(text="meet Bob at 5"))
    assert laptop == phone == expected and laptop.startswith(f"hmac:{ring.current}:")
    assert other != laptop  # the tenant is in the key: no comparison crosses tenants
    assert input_hash(Text(text="meet Bob at 5")) not in laptop


def test_a_device_without_the_keyring_keys_it_under_its_own_key(tmp_path: Path) -> None:
    params = Text(text="meet Bob at 5")
    with Vault.open(tmp_path / "a") as a, Vault.open(tmp_path / "b") as b:
        mine, theirs = a.kernel.hasher(params), b.kernel.hasher(params)
    assert hash_key_id(mine) == hash_key_id(theirs) == "device"
    assert mine != theirs and input_hash(params) not in mine
    with Vault.open(tmp_path / "a") as again:  # kept in the vault: the next process takes the same
        assert again.kernel.hasher(params) == mine


def test_the_keyed_hash_is_hmac_sha256_of_the_inputs_json() -> None:
    key = bytes(range(32))
    hasher = KeyedInputHash(key, "k1")
    digest = hasher(Text(text="x"))
    assert digest == "hmac:k1:" + hmac.digest(key, b'{"text":"x"}', "sha256").hex()
    assert hash_key_id(digest) == "k1" and hash_key_id(input_hash(Text(text="x"))) is None
    assert key.hex() not in repr(hasher) and "k1" in repr(hasher)
    with pytest.raises(ValueError):
        KeyedInputHash(key[:16], "k1")


# -- approvals across key changes ------------------------------------------------------------
def _ask_delete(vault: Vault) -> tuple[dict[str, Any], str]:
    note = vault.put("note", {"text": "keep me"}).item
    params = {"id": note.entity_id}
    with pytest.raises(ApprovalRequired) as asked:
        vault.kernel.run("entity.delete", params, actor=vault.actor("ai-local:llama"))
    rid = asked.value.request_id
    assert rid is not None
    vault.broker.approve(rid, actor=vault.actor("user:cli"))
    return params, rid


def _set_hash(vault: Vault, rid: str, digest: str) -> None:
    """The request as if it had been asked (and approved: sealed again) with ``digest``."""
    stored = vault.broker.store.get(rid)
    assert stored is not None and vault.broker.sealer is not None
    seal = vault.broker.sealer.seal(stored.with_(input_hash=digest))
    with vault._db.tx() as conn:
        conn.execute("UPDATE broker_requests SET input_hash = ?, seal = ? WHERE id = ?", (digest, seal, rid))


def test_an_approval_asked_before_the_keyring_came_is_redeemed_after(tmp_path: Path) -> None:
    with Vault.open(tmp_path / "v", source="user:cli") as vault:
        _join(vault, "local_first")
        params, rid = _ask_delete(vault)
        assert hash_key_id(vault.broker.get(rid).input_hash) == "device"
        ring = Keyring.new()
        vault.replica.set_keyring(ring)
        spec = vault.kernel.spec("entity.delete")
        assert hash_key_id(vault.kernel.hasher(spec.input.model_validate(params))) == ring.current
        vault.kernel.run("entity.delete", params, actor=vault.actor("ai-local:llama"), approval=rid)
        assert vault.broker.get(rid).status == "used"


def test_an_approval_asked_with_a_plain_hash_is_still_redeemed(tmp_path: Path) -> None:
    """A request asked before devices keyed the hash (an older version) stays redeemable."""
    with Vault.open(tmp_path / "v", source="user:cli") as vault:
        params, rid = _ask_delete(vault)
        model = vault.kernel.spec("entity.delete").input.model_validate(params)
        _set_hash(vault, rid, input_hash(model))
        vault.kernel.run("entity.delete", params, actor=vault.actor("ai-local:llama"), approval=rid)
        assert vault.broker.get(rid).status == "used"


def test_an_approval_under_a_key_the_device_lacks_is_asked_again(tmp_path: Path) -> None:
    with Vault.open(tmp_path / "v", source="user:cli") as vault:
        params, rid = _ask_delete(vault)
        _set_hash(vault, rid, "hmac:gone1234:" + "00" * 32)
        ai = vault.actor("ai-local:llama")
        with pytest.raises(ActionForbidden, match="under a key this device does not hold") as refused:
            vault.kernel.run("entity.delete", params, actor=ai, approval=rid)
        assert "without --approval" in (refused.value.hint or "")
        assert vault.broker.get(rid).status == "approved"  # a refusal uses nothing
        with pytest.raises(ApprovalRequired):
            vault.kernel.run("entity.delete", params, actor=ai)  # asked again, under the key held now


def test_an_approval_for_another_input_under_the_same_key_is_refused(tmp_path: Path) -> None:
    with Vault.open(tmp_path / "v", source="user:cli") as vault:
        params, rid = _ask_delete(vault)
        other = vault.put("note", {"text": "another"}).item
        with pytest.raises(ActionForbidden, match="another action, input or actor"):
            vault.kernel.run(
                "entity.delete", {"id": other.entity_id}, actor=vault.actor("ai-local:llama"), approval=rid
            )
        assert params and vault.broker.get(rid).status == "approved"
