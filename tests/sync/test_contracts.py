"""Entity contracts across devices, on both backends: a compatible version added on one device
reaches the others by sync; a breaking one is refused against every version a device still
uses; the hub refuses a cloud-first item that does not fit its version, and takes the rest."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from truthvault.clock import HybridClock
from truthvault.errors import Forbidden, InvalidInput
from truthvault.hub.store import Limits
from truthvault.kernel import BreakingChange
from truthvault.model import PushRequest, SyncItem, encode
from truthvault.sync import add_contract

from ..stores import Devices

_clock = HybridClock()

STR = {"type": "string"}
NOTE_V2 = {
    "type": "object",
    "properties": {
        "text": STR,
        "title": STR,
        "tags": {"type": "array", "items": STR},
        "pinned": {"type": "boolean"},
    },
}


def _versions(d: Devices, name: str) -> list[int]:
    return [c.version for c in d.vaults[name].contracts.list("note")]


def test_a_compatible_change_is_accepted_at_the_hub_and_reaches_the_other_device(
    devices: Callable[..., Devices],
) -> None:
    d = devices("a", "b")
    a, b = d.vaults["a"], d.vaults["b"]
    d.syncers["a"].sync()
    d.syncers["b"].sync()
    added = add_contract(a, "note", NOTE_V2, client=d.syncers["a"].client)
    assert (added.version, added.major) == (2, 1) and _versions(d, "a") == [1, 2]
    # b has not synced yet: it writes under v1, where "pinned" is any field
    assert b.put("note", {"pinned": "yes"}).item.contract_version == 1
    stats = d.syncers["b"].sync()
    assert stats.contracts == 1 and stats.refused_pushes == []  # its v1 item fits v1 at the hub
    assert _versions(d, "b") == [1, 2]
    assert b.contracts.get("note").schema == a.contracts.get("note").schema
    with pytest.raises(
        InvalidInput, match=r'^payload\.pinned: "yes" is not of type "boolean" \(note contract v2\)$'
    ):
        b.put("note", {"pinned": "yes"})
    made = b.put("note", {"text": "pinned", "pinned": True}).item
    assert made.contract_version == 2
    d.syncers["b"].sync()
    d.syncers["a"].sync()
    assert a.get(made.entity_id).contract_version == 2
    # both devices told the hub they now write under v2
    ctx = d.syncers["a"].client.ctx  # type: ignore[attr-defined]
    assert d.store.contracts.in_use(ctx.tenant_id)["note"] == {2: 2}


def test_a_breaking_change_is_refused_against_a_version_a_device_still_uses(
    devices: Callable[..., Devices],
) -> None:
    d = devices("a", "b")
    a, b = d.vaults["a"], d.vaults["b"]
    d.syncers["a"].sync()
    d.syncers["b"].sync()  # b writes under note v1
    # a new major version drops tags; a moves to it
    v2 = {"type": "object", "properties": {"text": STR, "title": STR}}
    with pytest.raises(BreakingChange, match="tags: field removed"):
        add_contract(a, "note", v2, client=d.syncers["a"].client)
    assert add_contract(a, "note", v2, major=True, client=d.syncers["a"].client).major == 2
    d.syncers["a"].sync()
    b.put("note", {"text": "offline", "tags": ["x"]})  # b, not synced, still writes under v1
    # v3 adds tags back as a number: compatible with v2, but not with v1, which b uses
    v3 = {"type": "object", "properties": {"text": STR, "title": STR, "tags": {"type": "integer"}}}
    with pytest.raises(BreakingChange) as refused:
        add_contract(a, "note", v3, client=d.syncers["a"].client)
    assert "tags: type changed from array to integer (against v1)" in refused.value.message
    assert _versions(d, "a") == [1, 2]  # nothing stored of a refused version
    # once b has synced (its v1 item pushed, v2 fetched), no device uses v1
    assert d.syncers["b"].sync().refused_pushes == []
    assert add_contract(a, "note", v3, client=d.syncers["a"].client).version == 3
    d.syncers["b"].sync()
    assert b.put("note", {"tags": 5}).item.contract_version == 3


def test_only_the_user_adds_a_contract_version(devices: Callable[..., Devices]) -> None:
    d = devices("a")
    with pytest.raises(Forbidden, match="only the user"):
        add_contract(d.vaults["a"], "note", NOTE_V2, source="ai-local:m", client=d.syncers["a"].client)
    ctx = d.syncers["a"].client.ctx  # type: ignore[attr-defined]
    with pytest.raises(Forbidden, match="only the user"):
        d.store.contracts.add(ctx, "note", NOTE_V2, source="automation:r1")
    assert d.store.contracts.list(ctx.tenant_id) == []


def _item(ctx: Any, eid: str, payload: dict[str, Any], mutation: int, **over: Any) -> SyncItem:
    return SyncItem(
        entity_type="note",
        entity_id=eid,
        tenant_id=ctx.tenant_id,
        truth_level=1,
        origin_source="user:cli",
        last_modified_at=_clock.now(),
        device_id=ctx.device_id,
        payload=msgspec.Raw(encode(payload)),
        mutation=mutation,
        **over,
    )


def test_the_hub_refuses_a_bad_cloud_first_item_but_takes_the_rest_of_the_batch(
    devices: Callable[..., Devices],
) -> None:
    d = devices("a")
    ctx = d.syncers["a"].client.ctx  # type: ignore[attr-defined]
    items = [
        _item(ctx, "n1", {"text": "fine"}, 1),
        _item(ctx, "n2", {"text": "bad", "title": 5}, 2),
        _item(ctx, "n3", {"text": "under a version the hub lacks"}, 3, contract_version=9),
        _item(ctx, "n4", {"text": "also fine"}, 4),
        _item(ctx, "n5", {"title": 5}, 5, deleted=True, base_version=0),  # a tombstone is not checked
    ]
    response = d.store.push(ctx, PushRequest(items=items), Limits(), time.time_ns() // 1_000_000)
    by_id = {r.entity_id: r for r in response.results}
    assert {k: r.outcome for k, r in by_id.items()} == {
        "n1": "applied",
        "n2": "refused",
        "n3": "refused",
        "n4": "applied",
        "n5": "applied",
    }
    assert by_id["n2"].reason == (
        "items[1] (note 'n2'): payload.title: 5 is not of type \"string\" (note contract v1)"
    )
    assert "contract_version: note has no contract version 9 (known: 1)" in (by_id["n3"].reason or "")
    assert response.last_mutation == 5  # refused items are answered: the device never resends them
    pulled = d.store.pull(ctx, 0, 100)
    assert sorted(i.entity_id for i in pulled.items) == ["n1", "n4", "n5"]
    # the versions the device pushed under are noted as in use
    assert d.store.contracts.in_use(ctx.tenant_id)["note"] == {1: 1, 9: 1}


def test_a_local_first_hub_cannot_read_a_payload_so_it_does_not_check_it(
    devices: Callable[..., Devices],
) -> None:
    d = devices("a")
    d.store.add_tenant("lf", "local_first")
    _, token = d.store.add_device("lf", "phone")
    ctx = d.store.authenticate(token)
    bad = _item(ctx, "n1", {"title": 5}, 1)
    response = d.store.push(ctx, PushRequest(items=[bad]), Limits(), time.time_ns() // 1_000_000)
    assert [r.outcome for r in response.results] == ["applied"]
    assert d.store.contracts.in_use(ctx.tenant_id) == {"note": {1: 1}}


def test_a_device_keeps_aside_what_the_hub_refused_and_pushes_the_rest(
    devices: Callable[..., Devices],
) -> None:
    d = devices("a", "b")
    a, b = d.vaults["a"], d.vaults["b"]
    first = a.put("note", {"text": "first"}).item.entity_id
    # a version made on this device only (as an unjoined vault would): the hub does not know it
    a.contracts.store([(None, a.contracts.propose("note", NOTE_V2))])
    local = a.put("note", {"text": "under v2", "pinned": True}).item.entity_id
    stats = d.syncers["a"].sync()
    assert [eid for eid, _ in stats.refused_pushes] == [local]
    assert "note has no contract version 2" in stats.refused_pushes[0][1]
    assert a.replica.pending_count() == 0 and a.get(local).contract_version == 2  # kept here
    [refusal] = a.replica.refusals()
    assert (refusal.direction, refusal.entity_id) == ("push", local)
    d.syncers["b"].sync()
    assert [i.entity_id for i in b.list()] == [first]
    # once the hub has the version, a retry goes through
    ctx = d.syncers["a"].client.ctx  # type: ignore[attr-defined]
    d.store.contracts.add(ctx, "note", NOTE_V2, source="user:cli")
    assert a.replica.retry_refused(refusal.id)
    assert d.syncers["a"].sync().refused_pushes == []
    d.syncers["b"].sync()
    assert b.get(local).contract_version == 2
