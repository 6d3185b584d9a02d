"""The seals a device puts on approval decisions: under its own key before it holds the tenant
keyring, under the keyring's key after; a seal checks only for the request and decision it was
made for; a cloud-first tenant's decisions are not sealed."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from truthvault.crypto import Keyring, approval_seal_key, input_hash_key
from truthvault.errors import ConflictState
from truthvault.kernel import (
    ActionForbidden,
    ApprovalRequired,
    BrokerRequest,
    Risk,
    Target,
    seal_key_id,
    seal_message,
)
from truthvault.kernel._broker import UNSEALED
from truthvault.vault import Vault
from truthvault.vault._input_key import DEVICE_KID


def _join(vault: Vault, mode: str, tenant: str = "tenant-1") -> None:
    vault.replica.join(
        hub_url="http://hub", token="t", tenant_id=tenant, tenant_name="t", device_id=vault.device_id,
        vault_mode=mode,
    )  # fmt: skip


def _ask(vault: Vault, h: str = "h1", kind: str = "approval") -> str:
    return vault.broker.ask_approval(
        actor=vault.actor("ai-local:llama3"), action="notes.delete", risk=Risk.DESTRUCTIVE, kind=kind,
        input_hash=h, targets=(), reason="an AI deletes a note",
    )  # fmt: skip


def _redeem(vault: Vault, rid: str, h: str = "h1") -> str:
    return vault.broker.redeem(rid, actor=vault.actor("ai-local:llama3"), action="notes.delete", input_hash=h)


def _from_hub(vault: Vault, request: BrokerRequest) -> None:
    """``request`` as the hub hands it back (the device sent what it had)."""
    vault._db.conn.execute("UPDATE broker_requests SET dirty = 0")
    vault.broker.store.take_in([request])  # type: ignore[attr-defined]


def test_a_vault_without_a_keyring_seals_under_its_own_key_and_redeems(vault: Vault) -> None:
    rid = _ask(vault)
    decided = vault.broker.approve(rid, actor=vault.actor("user:cli"))
    assert seal_key_id(decided.seal) == DEVICE_KID
    assert vault.broker.get(rid).seal == decided.seal  # kept with the request
    assert _redeem(vault, rid) == "user:cli"


def test_a_seal_made_for_one_request_does_not_redeem_another(vault: Vault) -> None:
    first, second = _ask(vault, "h1"), _ask(vault, "h2")
    sealed = vault.broker.approve(first, actor=vault.actor("user:cli"))
    asked = vault.broker.get(second)
    _from_hub(vault, asked.with_(
        status="approved", decided_by=sealed.decided_by, decided_device=sealed.decided_device,
        decided_at=sealed.decided_at, seal=sealed.seal,
    ))  # fmt: skip
    assert vault.broker.get(second).status == "denied"
    with pytest.raises(ActionForbidden, match="no device of yours"):
        _redeem(vault, second, "h2")
    assert _redeem(vault, first, "h1") == "user:cli"


@pytest.mark.parametrize(
    "change", [{"decided_at": 1.0}, {"decided_by": "user:mobile"}, {"decided_device": "another"}]
)
def test_a_decision_changed_after_it_was_sealed_is_refused(vault: Vault, change: dict[str, object]) -> None:
    rid = _ask(vault)
    asked = vault.broker.get(rid)
    honest = asked.with_(status="approved", decided_by="user:cli", decided_device=vault.device_id,
                         decided_at=time.time())  # fmt: skip
    sealed = honest.with_(seal=vault.broker.sealer.seal(honest))  # type: ignore[union-attr]
    assert vault.broker.sealer.check(sealed)  # type: ignore[union-attr]
    _from_hub(vault, sealed.with_(**change))
    shown = vault.broker.get(rid)
    assert (shown.status, shown.deny_reason) == ("denied", UNSEALED)
    with pytest.raises(ActionForbidden, match="no device of yours"):
        _redeem(vault, rid)


def test_a_denial_turned_into_an_approval_is_refused(vault: Vault) -> None:
    rid = _ask(vault)
    denied = vault.broker.deny(rid, actor=vault.actor("user:cli"), reason="no")
    flipped = denied.with_(status="approved", deny_reason=None)
    assert not vault.broker.sealer.check(flipped)  # type: ignore[union-attr]


def test_the_hub_word_never_replaces_a_decision_taken_here(vault: Vault) -> None:
    rid = _ask(vault)
    decided = vault.broker.approve(rid, actor=vault.actor("user:cli"))
    _from_hub(vault, decided.with_(decided_at=decided.decided_at + 1))  # type: ignore[operator]
    assert vault.broker.get(rid) == decided
    assert _redeem(vault, rid) == "user:cli"


def test_an_approval_is_used_within_its_window_from_the_sealed_decision(vault: Vault) -> None:
    """The hub caps the expiry it relays but cannot be trusted to: the device counts the window
    from the decision it checked."""
    rid = _ask(vault, kind="confirm")
    asked = vault.broker.get(rid)
    old = asked.with_(status="approved", decided_by="user:mobile", decided_device=vault.device_id,
                      decided_at=time.time() - 120, expires_at=time.time() + 3600)  # fmt: skip
    _from_hub(vault, old.with_(seal=vault.broker.sealer.seal(old)))  # type: ignore[union-attr]
    assert vault.broker.get(rid).status == "expired"
    with pytest.raises(ActionForbidden, match="expired"):
        _redeem(vault, rid)


def test_a_local_first_vault_seals_under_the_tenant_keyring_and_keeps_rotated_keys(tmp_path: Path) -> None:
    with Vault.open(tmp_path / "v", source="user:cli") as vault:
        _join(vault, "local_first")
        before = vault.broker.approve(_ask(vault, "h0"), actor=vault.actor("user:cli"))
        assert seal_key_id(before.seal) == DEVICE_KID  # no keyring yet: its own key
        ring = Keyring.new()
        vault.replica.set_keyring(ring)
        rid = _ask(vault)
        decided = vault.broker.approve(rid, actor=vault.actor("user:cli"))
        assert seal_key_id(decided.seal) == ring.current
        ring.rotate()
        vault.replica.set_keyring(ring)
        assert _redeem(vault, rid) == "user:cli"  # sealed under the key rotated away
        assert _redeem(vault, before.id, "h0") == "user:cli"  # and under its own


def test_a_vault_without_the_keyring_does_not_decide_another_device_s_request(vault: Vault) -> None:
    """Its own key is the only one it could seal under, and the asker could not check that."""
    theirs = vault.broker.get(_ask(vault)).with_(id="asked-elsewhere", device_id="another-device")
    _from_hub(vault, theirs)
    with pytest.raises(ConflictState, match="does not hold the tenant keyring"):
        vault.broker.approve(theirs.id, actor=vault.actor("user:cli"))
    assert vault.broker.get(theirs.id).status == "pending"


def test_a_cloud_first_vault_does_not_seal_and_takes_the_hub_word(tmp_path: Path) -> None:
    """The documented limit: a cloud-first tenant's devices share no key the hub lacks."""
    with Vault.open(tmp_path / "v", source="user:cli") as vault:
        _join(vault, "cloud_first")
        rid = _ask(vault)
        assert vault.broker.approve(rid, actor=vault.actor("user:cli")).seal is None
        other = _ask(vault, "h2")
        asked = vault.broker.get(other)
        _from_hub(vault, asked.with_(status="approved", decided_by="user:cli", decided_at=time.time()))
        assert _redeem(vault, other, "h2") == "user:cli"


def test_the_seal_key_is_its_own_and_the_seal_covers_what_was_asked() -> None:
    data_key = bytes(range(32))
    assert approval_seal_key(data_key, "t") not in (
        input_hash_key(data_key, "t"),
        approval_seal_key(data_key, "u"),
    )
    request = BrokerRequest(
        id="r", kind="approval", action="notes.delete", risk="destructive", source="ai-local:x",
        device_id="d", tenant_id="t", reason="why", input_hash="h", created_at=1.0, expires_at=2.0,
        status="approved", decided_by="user:cli", decided_device="d2", decided_at=1.5,
    )  # fmt: skip
    message = seal_message(request)
    assert seal_message(request.with_(expires_at=99.0, status="used")) == message  # not sealed
    for change in ({"id": "s"}, {"action": "notes.create"}, {"input_hash": "g"}, {"reason": "other"},
                   {"source": "user:voice"}, {"tenant_id": "u"}, {"kind": "pin"}, {"risk": "write"}):  # fmt: skip
        assert seal_message(request.with_(**change)) != message, change


@pytest.mark.parametrize(
    "change",
    [{"reason": "an AI tidies a typo"}, {"targets": (Target("n1", "note", 3, 3),)}],
)
def test_a_decision_sealed_on_what_the_hub_showed_otherwise_does_not_redeem(
    vault: Vault, change: dict[str, object]
) -> None:
    """The hub relays the request to the deciding device: if it shows it another reason or other
    targets than were asked, the user's honest seal is of what the hub showed. The asking device
    keeps what it asked, and a decision on anything else redeems nothing here."""
    rid = _ask(vault)
    asked = vault.broker.get(rid)
    shown = asked.with_(**change)  # what the hub showed the deciding device
    decided = shown.with_(status="approved", decided_by="user:mobile", decided_device="phone",
                          decided_at=time.time())  # fmt: skip
    sealed = decided.with_(seal=vault.broker.sealer.seal(decided))  # type: ignore[union-attr]
    _from_hub(vault, sealed)
    held = vault.broker.get(rid)
    assert (held.status, held.reason, held.targets) == ("pending", asked.reason, asked.targets)
    with pytest.raises(ApprovalRequired):
        _redeem(vault, rid)
