"""The hub's side of a request that needs approvals from two devices (each backend): it keeps
each device's approval as that device sealed it and named by the device it authenticated as; a
device posting its request adds only its own approval, never drops another's, never changes
what was asked (how many approvals it needs included)."""

from __future__ import annotations

import time

import pytest

from truthvault.errors import ConflictState, Forbidden
from truthvault.hub._broker import HubBroker
from truthvault.hub.store import DeviceContext, HubStore
from truthvault.kernel import Approval, BrokerRequest

SEAL_B = "k1:" + "b" * 64
SEAL_C = "k1:" + "c" * 64


@pytest.fixture
def hub(hub_store: HubStore) -> tuple[HubBroker, dict[str, DeviceContext]]:
    tenant = hub_store.add_tenant("fam", "local_first")
    ctx = {
        name: DeviceContext(tenant.id, "fam", "local_first", f"dev-{name[0]}", name)
        for name in ("asker", "bee", "cee")
    }
    broker = hub_store.broker  # type: ignore[attr-defined]
    assert isinstance(broker, HubBroker)
    return broker, ctx


def _asked(ctx: DeviceContext) -> BrokerRequest:
    now = time.time()
    return BrokerRequest(
        id="r1", kind="approval", action="entity.delete", risk="destructive", source="ai-local:llama3",
        device_id=ctx.device_id, tenant_id=ctx.tenant_id, reason="an AI deletes a note", input_hash="h1",
        created_at=now, expires_at=now + 3600, needed=2,
    )  # fmt: skip


def test_each_device_adds_its_own_sealed_approval(hub: tuple[HubBroker, dict[str, DeviceContext]]) -> None:
    broker, ctx = hub
    (held,) = broker.post(ctx["asker"], [_asked(ctx["asker"])])
    assert (held.needed, held.approvals, held.status) == (2, (), "pending")
    at = time.time() - 5
    partial = broker.decide(ctx["bee"], "r1", approve=True, source="user:cli", decided_at=at, seal=SEAL_B)
    # kept as the device gave it, under the device the hub authenticated, with its name
    assert partial.status == "pending"
    assert partial.approvals == (Approval("user:cli", "dev-b", at, SEAL_B, "bee"),)
    with pytest.raises(ConflictState, match="already approved on this device"):
        broker.decide(ctx["bee"], "r1", approve=True, source="user:voice", decided_at=at, seal=SEAL_B)
    done = broker.decide(ctx["cee"], "r1", approve=True, source="user:mobile", decided_at=at + 1, seal=SEAL_C)
    assert done.status == "approved" and [a.device for a in done.approvals] == ["dev-b", "dev-c"]
    assert (done.decided_by, done.decided_device) == ("user:mobile", "dev-c")


def test_a_posting_device_cannot_drop_rewrite_or_stand_in_for_another(
    hub: tuple[HubBroker, dict[str, DeviceContext]],
) -> None:
    broker, ctx = hub
    mine = _asked(ctx["asker"])
    broker.post(ctx["asker"], [mine])
    at = time.time() - 5
    broker.decide(ctx["bee"], "r1", approve=True, source="user:cli", decided_at=at, seal=SEAL_B)
    # posting it again without the phone's approval drops nothing
    (held,) = broker.post(ctx["asker"], [mine])
    assert [a.device for a in held.approvals] == ["dev-b"]
    # nor can it lower how many approvals the request needs
    with pytest.raises(ConflictState, match="needed differs"):
        broker.post(ctx["asker"], [mine.with_(needed=1)])
    # an approval it carries under another device's id is not taken (each device sends its own)
    forged = Approval("user:cli", "dev-c", at, SEAL_C)
    (held,) = broker.post(ctx["asker"], [mine.with_(status="approved", approvals=(forged,))])
    assert (held.status, [a.device for a in held.approvals]) == ("pending", ["dev-b"])
    # its own approval completes it
    own = Approval("user:cli", "dev-a", at + 1, "k1:" + "a" * 64)
    (held,) = broker.post(ctx["asker"], [mine.with_(status="approved", approvals=(forged, own))])
    assert held.status == "approved" and [a.device for a in held.approvals] == ["dev-b", "dev-a"]
    assert held.approvals[1] == Approval("user:cli", "dev-a", at + 1, own.seal, "asker")


def test_only_the_user_approves_by_post(hub: tuple[HubBroker, dict[str, DeviceContext]]) -> None:
    broker, ctx = hub
    mine = _asked(ctx["asker"])
    broker.post(ctx["asker"], [mine])
    ai = Approval("ai-local:llama3", "dev-a", time.time(), "k1:" + "a" * 64)
    with pytest.raises(Forbidden, match="only the user"):
        broker.post(ctx["asker"], [mine.with_(approvals=(ai,))])


def test_approved_and_used_on_the_asker_before_it_reached_the_hub(
    hub: tuple[HubBroker, dict[str, DeviceContext]],
) -> None:
    broker, ctx = hub
    mine = _asked(ctx["asker"])
    broker.post(ctx["asker"], [mine])
    at = time.time() - 5
    bee = broker.decide(ctx["bee"], "r1", approve=True, source="user:cli", decided_at=at, seal=SEAL_B)
    own = Approval("user:cli", "dev-a", at + 1, "k1:" + "a" * 64)
    used = mine.with_(status="used", decided_by="user:cli", approvals=(*bee.approvals, own))
    (held,) = broker.post(ctx["asker"], [used])
    assert held.status == "used" and len(held.approvals) == 2
