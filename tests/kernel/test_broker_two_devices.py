"""Requests that need approvals from two different devices (policy's ``@approval("two-devices")``),
on each broker store (a vault file, a SQLite hub, a PostgreSQL hub): each approval is kept with
who, which device, when and its own seal; the same device twice is refused; one denial denies;
a redeeming device counts only approvals whose seals check, from distinct devices."""

from __future__ import annotations

import json
import os

import pytest

from truthvault.errors import ConflictState
from truthvault.kernel import (
    ActionForbidden,
    Actor,
    Approval,
    ApprovalRequired,
    BrokerRequest,
    InputBroker,
    KeyedSeal,
    approval_message,
    check_policy,
    compile_policy,
    counted_approvals,
)
from truthvault.kernel._broker import UNSEALED

from .conftest import FAST, Backend, Clock
from .test_broker import AI, ask, redeem

#: the user on three devices: dev-a asked (its AI did), dev-b and dev-c are the others
ON_A = Actor("user:cli", "dev-a", "")
ON_B = Actor("user:cli", "dev-b", "")
ON_C = Actor("user:mobile", "dev-c", "")


def two(broker: InputBroker) -> str:
    return ask(broker, kind="two-devices")


def redeem2(broker: InputBroker, rid: str) -> str:
    return broker.redeem(rid, actor=AI, action="notes.delete", input_hash="h1", kind="two-devices")


@pytest.fixture
def sealed(backend: Backend, clock: Clock) -> InputBroker:
    """A device's broker: every approval sealed under the tenant's key (which the hub lacks)."""
    key = KeyedSeal(os.urandom(32), "k1")
    return InputBroker(backend.store, settings=FAST, now=clock, tenant_id=backend.tenant_id, sealer=key)


def _forge(broker: InputBroker, rid: str, request: BrokerRequest) -> None:
    """What a hub operator could do: write ``request`` over the stored one."""
    held = broker.store.get(rid)
    assert held is not None
    assert broker.store.update(request, expect=held.status)


def test_two_approvals_from_two_devices_approve_it_and_each_is_kept(
    broker: InputBroker, clock: Clock
) -> None:
    rid = two(broker)
    asked = broker.get(rid)
    assert (asked.kind, asked.needed, asked.approvals) == ("approval", 2, ())
    first = broker.approve(rid, actor=ON_B)
    assert first.status == "pending" and first.decided_by is None
    assert [(a.by, a.device, a.at) for a in first.approvals] == [("user:cli", "dev-b", clock.now)]
    with pytest.raises(ApprovalRequired, match="1 of 2, each on a different device") as waiting:
        redeem2(broker, rid)
    assert waiting.value.request_id == rid
    clock.advance(5)
    done = broker.approve(rid, actor=ON_C)
    assert (done.status, done.decided_by, done.decided_device) == ("approved", "user:mobile", "dev-c")
    stored = broker.store.get(rid)
    assert stored is not None and [(a.by, a.device) for a in stored.approvals] == [
        ("user:cli", "dev-b"),
        ("user:mobile", "dev-c"),
    ]
    assert redeem2(broker, rid) == "user:mobile"
    assert broker.get(rid).status == "used"


def test_a_second_approval_from_the_same_device_is_refused(broker: InputBroker) -> None:
    rid = two(broker)
    broker.approve(rid, actor=ON_B)
    with pytest.raises(ConflictState, match="already approved on this device; approve it on another device"):
        broker.approve(rid, actor=Actor("user:voice", "dev-b", ""))
    assert broker.get(rid).status == "pending" and len(broker.get(rid).approvals) == 1


def test_the_asking_device_may_be_one_of_the_two(broker: InputBroker) -> None:
    rid = two(broker)
    broker.approve(rid, actor=ON_A)  # where the AI asked
    assert broker.approve(rid, actor=ON_B).status == "approved"
    assert redeem2(broker, rid) == "user:cli"


def test_one_denial_denies_it_whatever_was_approved(broker: InputBroker) -> None:
    rid = two(broker)
    broker.approve(rid, actor=ON_B)
    denied = broker.deny(rid, actor=ON_C, reason="not that note")
    assert denied.status == "denied" and len(denied.approvals) == 1  # the approval given stays on record
    with pytest.raises(ConflictState, match="denied, not pending"):
        broker.approve(rid, actor=ON_A)
    with pytest.raises(ActionForbidden, match="denied: not that note"):
        redeem2(broker, rid)


def test_a_single_approval_does_not_redeem_an_action_that_needs_two(broker: InputBroker) -> None:
    rid = ask(broker, kind="approve")
    broker.approve(rid, actor=ON_B)
    with pytest.raises(ActionForbidden, match="from 2 different devices"):
        redeem2(broker, rid)
    # ... while two devices' approvals do for an action that needs one
    rid = two(broker)
    broker.approve(rid, actor=ON_B)
    broker.approve(rid, actor=ON_C)
    assert redeem(broker, rid) == "user:mobile"


def test_the_store_sets_an_approval_only_over_the_approvals_it_read(
    broker: InputBroker, backend: Backend
) -> None:
    """Two devices approving at once: the second write, made over what it read before the first
    one's, changes nothing (it would drop the first one's approval)."""
    rid = two(broker)
    before = broker.get(rid)
    broker.approve(rid, actor=ON_B)
    stale = before.with_(approvals=(Approval("user:cli", "dev-c", 1.0),))
    assert not backend.store.update(stale, expect="pending", approvals=before.approvals)
    held = backend.store.get(rid)
    assert held is not None and [a.device for a in held.approvals] == ["dev-b"]


def test_a_hub_store_moves_the_change_number_with_each_approval(
    broker: InputBroker, backend: Backend
) -> None:
    if backend.hub is None:
        pytest.skip("the change number is the hub's")
    store = backend.hub.broker.store(backend.tenant_id)  # type: ignore[attr-defined]
    rid = two(broker)
    (asked_seq, _), *_ = store.changes(0, 10)
    broker.approve(rid, actor=ON_B)
    ((partial_seq, partial),) = store.changes(asked_seq, 10)
    assert partial.status == "pending" and [a.device for a in partial.approvals] == ["dev-b"]
    assert partial.to_wire()["needed"] == 2 and len(partial.to_wire()["approvals"]) == 1
    broker.approve(rid, actor=ON_C)
    ((_, done),) = store.changes(partial_seq, 10)
    assert done.status == "approved" and len(done.approvals) == 2


# -- seals ------------------------------------------------------------------------------------
def test_each_approval_is_sealed_over_the_request_and_its_own_device(sealed: InputBroker) -> None:
    rid = two(sealed)
    given = sealed.approve(rid, actor=ON_B).approvals[0]
    assert given.seal is not None and given.seal.startswith("k1:")
    request = sealed.get(rid)
    message = json.loads(approval_message(request, given))
    assert ["user:cli", "dev-b", given.at] == message[-3:] and 2 in message
    assert sealed.sealer is not None and sealed.sealer.check_approval(request, given)
    # the same seal under another device's id, time, approver or count is none
    for changed in (
        {"device": "dev-c"},
        {"at": given.at + 1},
        {"by": "user:voice"},
    ):
        assert not sealed.sealer.check_approval(request, Approval(**{**_fields(given), **changed}))
    assert not sealed.sealer.check_approval(request.with_(needed=3), given)


def _fields(approval: Approval) -> dict[str, object]:
    return {"by": approval.by, "device": approval.device, "at": approval.at, "seal": approval.seal}


def test_the_hub_cannot_replay_the_first_approval_under_another_device(sealed: InputBroker) -> None:
    rid = two(sealed)
    first = sealed.approve(rid, actor=ON_B).approvals[0]
    replayed = Approval(first.by, "dev-c", first.at, first.seal)
    held = sealed.store.get(rid)
    assert held is not None
    _forge(sealed, rid, held.with_(status="approved", approvals=(first, replayed), decided_by="user:cli"))
    stored = sealed.store.get(rid)
    assert stored is not None and [a.device for a in counted_approvals(stored, sealed.sealer)] == ["dev-b"]
    assert (sealed.get(rid).status, sealed.get(rid).deny_reason) == ("denied", UNSEALED)
    with pytest.raises(ActionForbidden, match="no seal that checks here"):
        redeem2(sealed, rid)


@pytest.mark.parametrize("seal", [None, "k1:" + "0" * 64, "k9:" + "a" * 64])
def test_a_second_approval_the_hub_made_up_counts_for_nothing(sealed: InputBroker, seal: str | None) -> None:
    rid = two(sealed)
    first = sealed.approve(rid, actor=ON_B).approvals[0]
    made_up = Approval("user:cli", "dev-c", first.at + 1, seal)
    held = sealed.store.get(rid)
    assert held is not None
    _forge(sealed, rid, held.with_(approvals=(first, made_up)))
    assert [a.device for a in sealed.counted(sealed.get(rid))] == ["dev-b"]  # still 1 of 2 here
    _forge(sealed, rid, held.with_(status="approved", approvals=(first, made_up), decided_by="user:cli"))
    with pytest.raises(ActionForbidden, match="no seal that checks here"):
        redeem2(sealed, rid)
    assert sealed.store.get(rid).status == "approved"  # type: ignore[union-attr]  # nothing was used


def test_a_tampered_approval_gives_way_to_the_devices_own(sealed: InputBroker) -> None:
    """An approval under a device's id whose seal does not check does not block that device:
    its own, sealed approval replaces it."""
    rid = two(sealed)
    sealed.approve(rid, actor=ON_B)
    held = sealed.store.get(rid)
    assert held is not None
    _forge(sealed, rid, held.with_(approvals=(*held.approvals, Approval("user:cli", "dev-c", 1.0, None))))
    done = sealed.approve(rid, actor=ON_C)
    assert done.status == "approved" and [a.device for a in done.approvals] == ["dev-b", "dev-c"]
    assert redeem2(sealed, rid) == "user:mobile"


def test_a_denial_of_a_two_device_request_is_sealed_with_its_count(sealed: InputBroker) -> None:
    rid = two(sealed)
    denied = sealed.deny(rid, actor=ON_B, reason="no")
    assert sealed.sealer is not None and sealed.sealer.check(denied)
    assert not sealed.sealer.check(denied.with_(needed=1, approvals=()))


# -- policy -----------------------------------------------------------------------------------
def test_policy_asks_for_two_devices() -> None:
    text = (
        '@id("two-for-purges")\n@approval("two-devices")\n'
        "permit (principal, action, resource) when { context.hard };\n"
    )
    (rule,) = check_policy(text)
    assert rule.approval == "two-devices"
    assert compile_policy(text, 1).rules[-1].approval == "two-devices"
