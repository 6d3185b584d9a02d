"""Approval seals of a local-first tenant through a hub (each backend): a decision taken on the
phone is sealed there and redeemed on the laptop that asked; one the hub makes up or changes is
no decision there; one sealed under a key rotated away since still redeems."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from truthvault.hub.store import HubStore
from truthvault.kernel import ActionForbidden, BrokerRequest, InputBroker, Risk, seal_key_id
from truthvault.kernel._broker import UNSEALED

from .test_input_hash_sync import LocalFirstDevice
from .test_input_hash_sync import pair as pair

Pair = tuple[LocalFirstDevice, LocalFirstDevice]


def _ask(device: LocalFirstDevice, h: str = "h1") -> str:
    return device.vault.broker.ask_approval(
        actor=device.vault.actor("ai-local:llama3"), action="notes.delete", risk=Risk.DESTRUCTIVE,
        kind="approval", input_hash=h, targets=(), reason="an AI deletes a note you wrote",
    )  # fmt: skip


def _redeem(device: LocalFirstDevice, rid: str, h: str = "h1") -> str:
    return device.vault.broker.redeem(
        rid, actor=device.vault.actor("ai-local:llama3"), action="notes.delete", input_hash=h
    )


def _at_hub(store: HubStore, device: LocalFirstDevice, rid: str) -> BrokerRequest:
    held: BrokerRequest | None = store.broker.store(device.vault.tenant_id).get(rid)  # type: ignore[attr-defined]
    assert held is not None
    return held


def _hub_writes(store: HubStore, device: LocalFirstDevice, request: BrokerRequest, expect: str) -> None:
    """The hub's operator writes ``request`` straight into the hub's database."""
    assert store.broker.store(device.vault.tenant_id).update(request, expect=expect)  # type: ignore[attr-defined]


@pytest.fixture
def asked(pair: Pair) -> Iterator[tuple[LocalFirstDevice, LocalFirstDevice, str]]:
    laptop, phone = pair
    rid = _ask(laptop)
    laptop.sync()
    phone.sync()
    assert phone.vault.broker.get(rid).status == "pending"
    yield laptop, phone, rid


def test_a_decision_on_another_device_is_sealed_there_and_redeemed_where_asked(
    asked: tuple[LocalFirstDevice, LocalFirstDevice, str], hub_store: HubStore
) -> None:
    laptop, phone, rid = asked
    decided = phone.vault.broker.approve(rid, actor=phone.vault.actor("user:cli"))
    ring = phone.vault.replica.keyring()
    assert ring is not None and seal_key_id(decided.seal) == ring.current  # the tenant's key
    phone.sync()
    held = _at_hub(hub_store, laptop, rid)
    # the hub relays the seal and the sealed fields as the phone gave them
    assert (held.status, held.seal, held.decided_at, held.decided_device) == (
        "approved", decided.seal, decided.decided_at, phone.vault.device_id,
    )  # fmt: skip
    laptop.sync()
    assert laptop.vault.broker.get(rid).status == "approved"
    assert _redeem(laptop, rid) == "user:cli"
    assert laptop.vault.broker.get(rid).status == "used"


def test_a_denial_on_another_device_reaches_the_asker_with_its_reason(
    asked: tuple[LocalFirstDevice, LocalFirstDevice, str],
) -> None:
    laptop, phone, rid = asked
    phone.vault.broker.deny(rid, actor=phone.vault.actor("user:cli"), reason="not that note")
    phone.sync()
    laptop.sync()
    mine = laptop.vault.broker.get(rid)
    assert (mine.status, mine.deny_reason) == ("denied", "not that note")
    with pytest.raises(ActionForbidden, match="denied: not that note"):
        _redeem(laptop, rid)


def test_an_approval_the_hub_makes_up_is_no_approval(
    asked: tuple[LocalFirstDevice, LocalFirstDevice, str], hub_store: HubStore
) -> None:
    laptop, _, rid = asked
    held = _at_hub(hub_store, laptop, rid)
    forged = held.with_(
        status="approved",
        decided_by="user:cli",
        decided_device=laptop.vault.device_id,
        decided_at=time.time(),
    )
    _hub_writes(hub_store, laptop, forged, "pending")
    laptop.sync()
    # 'truthvault approvals' shows it refused, never approved
    shown = laptop.vault.broker.get(rid)
    assert (shown.status, shown.deny_reason) == ("denied", UNSEALED)
    assert all(r.status != "approved" for r in laptop.vault.broker.requests())
    with pytest.raises(ActionForbidden, match="no device of yours"):
        _redeem(laptop, rid)


def test_the_hub_cannot_move_a_sealed_decision_to_another_request_or_change_it(
    pair: Pair,
    hub_store: HubStore,
) -> None:
    laptop, phone = pair
    first, second, third = _ask(laptop, "h1"), _ask(laptop, "h2"), _ask(laptop, "h3")
    laptop.sync()
    phone.sync()
    approved = phone.vault.broker.approve(first, actor=phone.vault.actor("user:cli"))
    phone.sync()
    # the first's seal on the second request; the third approved later than the user did
    moved = _at_hub(hub_store, laptop, second).with_(
        status="approved", decided_by="user:cli", decided_device=phone.vault.device_id,
        decided_at=approved.decided_at, seal=approved.seal,
    )  # fmt: skip
    _hub_writes(hub_store, laptop, moved, "pending")
    phone.vault.broker.approve(third, actor=phone.vault.actor("user:cli"))
    phone.sync()
    later = _at_hub(hub_store, laptop, third)
    _hub_writes(hub_store, laptop, later.with_(decided_at=time.time() + 3000), "approved")
    laptop.sync()
    assert _redeem(laptop, first, "h1") == "user:cli"
    for rid, h in ((second, "h2"), (third, "h3")):
        with pytest.raises(ActionForbidden, match="no device of yours"):
            _redeem(laptop, rid, h)


def test_a_decision_sealed_under_a_key_rotated_away_since_still_redeems(
    asked: tuple[LocalFirstDevice, LocalFirstDevice, str],
) -> None:
    laptop, phone, rid = asked
    old = phone.vault.replica.keyring()
    assert old is not None
    decided = phone.vault.broker.approve(rid, actor=phone.vault.actor("user:cli"))
    phone.sync()
    laptop.syncer.keys.rotate()  # the laptop rotates the tenant key before it takes the decision in
    laptop.sync()
    ring = laptop.vault.replica.keyring()
    assert ring is not None and ring.current != old.current == seal_key_id(decided.seal)
    assert _redeem(laptop, rid) == "user:cli"


def test_a_device_whose_clock_runs_ahead_still_redeems_its_own_approval(
    pair: Pair,
    hub_store: HubStore,
) -> None:
    """The hub keeps a sealed decided_at as the device gave it (it used to cap it at its own
    clock, which would break the seal and so the approval)."""
    laptop, _ = pair
    rid = _ask(laptop)
    broker = laptop.vault.broker
    ahead = InputBroker(
        broker.store, now=lambda: time.time() + 30, sealer=broker.sealer, tenant_id=laptop.vault.tenant_id
    )
    decided = ahead.approve(rid, actor=laptop.vault.actor("user:cli"))
    laptop.sync()
    assert _at_hub(hub_store, laptop, rid).decided_at == decided.decided_at
    assert broker.get(rid).decided_at == decided.decided_at
    assert _redeem(laptop, rid) == "user:cli"
