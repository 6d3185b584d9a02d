"""Offline governance across devices, on both backends: a device offline across a breaking
contract change syncs, its items are parked (not applied, not pushed, never lost) unless the
contracts declare an upcaster; devices report their app version, contracts and last sync, and
the hub's risk of each follows the plan's matrix."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from truthvault import __version__
from truthvault.clock import HybridClock
from truthvault.errors import InvalidInput, NotFound
from truthvault.hub import device_risks
from truthvault.hub.store import Limits
from truthvault.kernel import ActionForbidden
from truthvault.model import PushRequest, SyncItem, encode
from truthvault.sync import add_contract

from ..stores import Devices

STR = {"type": "string"}
#: note v2, a new major version: tags dropped, "body" where "text" was, "kind" required
BREAKING = {
    "type": "object",
    "properties": {"body": STR, "title": STR, "kind": {"enum": ["idea", "log"]}},
    "required": ["body", "kind"],
}
UPCAST = {"from_major": 1, "rename": {"text": "body"}, "drop": ["tags"], "defaults": {"kind": "log"}}
DAY = 86_400.0


def _hub_ids(d: Devices, name: str) -> set[str]:
    ctx = d.syncers[name].client.ctx  # type: ignore[attr-defined]
    return {i.entity_id for i in d.store.pull(ctx, 0, 1000).items}


def test_a_device_offline_across_a_breaking_change_parks_its_items_and_loses_none(
    devices: Callable[..., Devices],
) -> None:
    d = devices("a", "b")
    a, b = d.vaults["a"], d.vaults["b"]
    d.syncers["a"].sync()
    d.syncers["b"].sync()
    # b goes offline and writes under note v1
    fits_later = b.put("note", {"text": "x", "tags": ["t"]}).item.entity_id
    as_is = b.put("note", {"title": "only a title"}).item.entity_id
    # meanwhile a breaking major version (no upcaster) reaches the hub
    assert add_contract(a, "note", BREAKING, major=True, client=d.syncers["a"].client).major == 2
    b.delete(b.put("note", {"text": "gone"}).item.entity_id)  # pushed before: a tombstone passes

    stats = d.syncers["b"].sync()
    assert {eid for eid, _ in stats.parked} == {fits_later, as_is}
    assert stats.upcast == [] and stats.refused_pushes == []
    assert all(
        "was broken by v2 (major 2) and no upcaster from major 1 exists" in why for _, why in stats.parked
    )
    # not applied at the hub, nothing pending, nothing lost on the device
    assert {fits_later, as_is}.isdisjoint(_hub_ids(d, "b"))
    assert b.replica.pending_count() == 0
    assert (
        b.get(fits_later).data() == {"text": "x", "tags": ["t"]} and b.get(fits_later).contract_version == 1
    )
    parked = {p.entity_id: p for p in b.offline.parked()}
    assert set(parked) == {fits_later, as_is} and parked[as_is].contract_version == 1
    assert b.replica.refusals() == []  # parked items are listed apart from refusals
    assert [e.type for e in b.events(limit=50)].count("ITEM_PARKED") == 2
    # still parked after another sync: nothing is pushed behind the user's back
    assert d.syncers["b"].sync().parked == []
    assert {fits_later, as_is}.isdisjoint(_hub_ids(d, "b"))

    # re-applying one that does not fit names the field; the user edits it, then applies it
    with pytest.raises(InvalidInput, match=r"payload: \"body\" is a required property \(note contract v2\)"):
        b.offline.apply_parked(parked[as_is].id)
    b.edit(as_is, {"body": "now it fits", "kind": "idea"}, replace=True)
    assert b.get(as_is).contract_version == 2
    assert b.offline.apply_parked(parked[as_is].id) == "superseded"  # the edit went the usual way
    b.edit(fits_later, {"body": "b", "kind": "log"}, replace=True)
    assert b.offline.apply_parked(parked[fits_later].id) == "superseded"
    assert b.offline.parked() == []
    d.syncers["b"].sync()
    d.syncers["a"].sync()
    assert a.get(as_is).data() == {"body": "now it fits", "kind": "idea"}
    assert a.get(fits_later).contract_version == 2
    with pytest.raises(NotFound, match="no parked item"):
        b.offline.apply_parked(parked[as_is].id)


def test_a_parked_item_that_fits_as_it_is_applies_under_the_newest_version(
    devices: Callable[..., Devices],
) -> None:
    d = devices("a", "b")
    a, b = d.vaults["a"], d.vaults["b"]
    d.syncers["b"].sync()
    kept = b.put("note", {"text": "t"}).item.entity_id
    loose = {"type": "object", "properties": {"text": STR, "title": STR}, "additionalProperties": False}
    add_contract(a, "note", loose, major=True, client=d.syncers["a"].client)
    assert [eid for eid, _ in d.syncers["b"].sync().parked] == [kept]
    [p] = b.offline.parked()
    assert b.offline.apply_parked(p.id) == "applied"
    item = b.get(kept)
    assert (item.contract_version, item.data(), item.truth_level) == (2, {"text": "t"}, 1)
    assert b.replica.pending_count() == 1
    d.syncers["b"].sync()
    d.syncers["a"].sync()
    assert a.get(kept).data() == {"text": "t"} and a.get(kept).contract_version == 2


def test_the_upcaster_path_applies_what_a_stale_device_wrote(devices: Callable[..., Devices]) -> None:
    d = devices("a", "b")
    a, b = d.vaults["a"], d.vaults["b"]
    d.syncers["a"].sync()
    d.syncers["b"].sync()
    first = b.put("note", {"text": "field notes", "tags": ["jungle"]}).item.entity_id
    second = b.put("note", {"text": "day 2"}, source="automation:r1").item.entity_id
    added = add_contract(
        a, "note", {**BREAKING, "x-upcast": UPCAST}, major=True, client=d.syncers["a"].client
    )
    assert (added.version, added.major) == (2, 2)

    stats = d.syncers["b"].sync()
    assert stats.parked == [] and sorted(stats.upcast) == sorted([first, second])
    assert b.offline.parked() == [] and b.replica.pending_count() == 0
    assert b.get(first).data() == {"body": "field notes", "kind": "log"}
    assert b.get(first).contract_version == 2
    # the writer's truth level stays: an automation's item is still the automation's
    assert (b.get(second).truth_level, b.get(second).origin_source) == (2, "automation:r1")
    d.syncers["a"].sync()
    assert a.get(first).data() == {"body": "field notes", "kind": "log"}
    assert a.get(second).data() == {"body": "day 2", "kind": "log"}
    assert "ITEM_UPCAST" in [e.type for e in b.events(limit=50)]


def test_the_hub_refuses_an_item_under_a_broken_version_from_an_old_client(
    devices: Callable[..., Devices],
) -> None:
    d = devices("a")
    ctx = d.syncers["a"].client.ctx  # type: ignore[attr-defined]
    d.store.contracts.add(ctx, "note", BREAKING, major=True, source="user:cli")
    clock = HybridClock()

    def item(eid: str, version: int, payload: dict[str, Any], **over: Any) -> SyncItem:
        return SyncItem(
            entity_type="note", entity_id=eid, tenant_id=ctx.tenant_id, truth_level=1,
            origin_source="user:cli", last_modified_at=clock.now(), device_id=ctx.device_id,
            payload=msgspec.Raw(encode(payload)), contract_version=version, **over,
        )  # fmt: skip

    items = [
        item("old", 1, {"text": "v1"}, mutation=1),
        item("new", 2, {"body": "v2", "kind": "idea"}, mutation=2),
        item("tomb", 1, {}, mutation=3, deleted=True),
    ]
    response = d.store.push(ctx, PushRequest(items=items), Limits(), time.time_ns() // 1_000_000)
    by_id = {r.entity_id: r for r in response.results}
    assert {k: r.outcome for k, r in by_id.items()} == {"old": "refused", "new": "applied", "tomb": "applied"}
    assert by_id["old"].reason == (
        "items[0] (note 'old'): contract_version: note v1 was broken by v2 (major 2); "
        "a current device upcasts or parks it"
    )


def test_the_same_is_refused_for_a_local_first_tenant(devices: Callable[..., Devices]) -> None:
    d = devices("a")
    d.store.add_tenant("lf", "local_first")
    _, token = d.store.add_device("lf", "phone")
    ctx = d.store.authenticate(token)
    d.store.contracts.add(ctx, "note", BREAKING, major=True, source="user:cli")
    old = SyncItem(
        entity_type="note", entity_id="n1", tenant_id=ctx.tenant_id, truth_level=1,
        origin_source="user:cli", last_modified_at=HybridClock().now(), device_id=ctx.device_id,
        payload=msgspec.Raw(b'{"sealed": "ciphertext"}'), contract_version=1, mutation=1,
    )  # fmt: skip
    response = d.store.push(ctx, PushRequest(items=[old]), Limits(), time.time_ns() // 1_000_000)
    assert [r.outcome for r in response.results] == ["refused"]  # the version travels in clear


def test_devices_report_at_sync_and_the_hub_rates_their_risk(devices: Callable[..., Devices]) -> None:
    d = devices("a", "b", "c")
    a, b = d.vaults["a"], d.vaults["b"]
    for name in ("a", "b"):
        d.syncers[name].sync()
    first_sync = b.offline.last_sync_at
    assert first_sync is not None and abs(first_sync - time.time()) < 600
    ctx = d.syncers["a"].client.ctx  # type: ignore[attr-defined]
    reports = d.store.contracts.reports(ctx.tenant_id)
    assert set(reports) == {d.syncers["a"].client.ctx.device_id, d.syncers["b"].client.ctx.device_id}  # type: ignore[attr-defined]
    report, _ = reports[d.syncers["b"].client.ctx.device_id]  # type: ignore[attr-defined]
    assert (report.app_version, report.pending, report.parked, report.previous_sync_at) == (
        __version__,
        0,
        0,
        None,
    )
    d.syncers["b"].sync()
    report, _ = d.store.contracts.reports(ctx.tenant_id)[d.syncers["b"].client.ctx.device_id]  # type: ignore[attr-defined]
    assert report.previous_sync_at is not None and report.previous_sync_at.startswith(
        time.strftime("%Y-%m-%d", time.gmtime(first_sync))
    )

    now = time.time()
    risks = {r.device.name: r for r in device_risks(d.store, "t", now)}
    assert {n: str(r.risk.level) for n, r in risks.items()} == {"a": "low", "b": "low", "c": "low"}
    assert risks["c"].last_sync_at is None and risks["c"].risk.days_offline is None  # never synced
    assert risks["a"].app_version == __version__ and risks["a"].held == {"note": [1], "task": [1]}
    # 40 days later, nobody having synced: critical by time; capture only
    later = {r.device.name: r for r in device_risks(d.store, "t", now + 40 * DAY)}
    assert str(later["a"].risk.level) == "critical" and later["a"].risk.allowed == ("read", "capture")
    assert later["a"].risk.reasons == ("offline for 40 days (critical threshold: 30)",)
    assert str(device_risks(d.store, "t", now + 10 * DAY)[0].risk.level) == "medium"

    # a breaking major version: b still writes under v1 (it has not synced since) -> critical
    add_contract(a, "note", BREAKING, major=True, client=d.syncers["a"].client)
    d.syncers["a"].sync()
    risks = {r.device.name: r for r in device_risks(d.store, "t", now)}
    assert str(risks["b"].risk.level) == "critical" and str(risks["a"].risk.level) == "low"
    assert risks["b"].risk.reasons == ("contract note v1 (major 1) is behind v2 (major 2)",)
    # b syncs: it fetches v2 (a micro-contract push, no reinstall) and writes under it
    b.put("note", {"text": "offline"})
    stats = d.syncers["b"].sync()
    assert stats.contracts == 1 and len(stats.parked) == 1
    risks = {r.device.name: r for r in device_risks(d.store, "t", now)}
    assert str(risks["b"].risk.level) == "low" and risks["b"].held["note"] == [2]
    assert risks["b"].parked == 1
    assert b.put("note", {"body": "x", "kind": "idea"}).item.contract_version == 2
    # a revoked device is not rated
    d.store.revoke_device("t", "c")
    assert "c" not in {r.device.name for r in device_risks(d.store, "t", now)}


def test_a_compatible_contract_reaches_a_stale_device_without_parking(
    devices: Callable[..., Devices],
) -> None:
    d = devices("a", "b")
    a, b = d.vaults["a"], d.vaults["b"]
    d.syncers["b"].sync()
    offline = b.put("note", {"text": "written offline under v1"}).item.entity_id
    compatible = {
        "type": "object",
        "properties": {"text": STR, "title": STR, "tags": {"type": "array", "items": STR}, "mood": STR},
    }
    assert add_contract(a, "note", compatible, client=d.syncers["a"].client).major == 1
    stats = d.syncers["b"].sync()
    assert stats.contracts == 1 and stats.parked == [] and stats.upcast == []
    assert offline in _hub_ids(d, "b")  # its v1 item went as it was: v1 is not broken
    assert b.put("note", {"mood": "fine"}).item.contract_version == 2


def test_a_push_alone_parks_too(devices: Callable[..., Devices]) -> None:
    d = devices("a", "b")
    a, b = d.vaults["a"], d.vaults["b"]
    d.syncers["b"].sync()
    waiting = b.put("note", {"text": "queued"}).item.entity_id
    add_contract(a, "note", BREAKING, major=True, client=d.syncers["a"].client)
    stats = d.syncers["b"].push()  # as 'truthvault sync push'
    assert [eid for eid, _ in stats.parked] == [waiting] and stats.pushed == 0
    assert waiting not in _hub_ids(d, "b") and b.get(waiting).data() == {"text": "queued"}


def test_a_device_that_cannot_use_a_new_major_version_knows_it_is_behind(
    devices: Callable[..., Devices], hub_sql: Callable[..., list[Any]]
) -> None:
    d = devices("a", "b")
    b = d.vaults["b"]
    d.syncers["b"].sync()
    note = b.put("note", {"text": "mine"}).item.entity_id
    # a newer truthvault added a major version whose upcaster this one does not understand
    schema = {"type": "object", "properties": {"body": STR}, "x-upcast": {"from_major": 1, "split": {}}}
    [(pk,)] = hub_sql("SELECT pk FROM tenants WHERE name = ?", ("t",))
    hub_sql(
        "INSERT INTO contracts (tenant_pk, entity_type, version, major, schema, added_at, added_by) "
        "VALUES (?, 'note', 2, 2, ?, '2026-12-07T00:00:00.000Z', 'newer-device')",
        (pk, json.dumps(schema)),
    )
    d.syncers["b"].sync()
    assert [c.version for c in b.contracts.list("note")] == [1]  # it cannot take v2 in
    assert b.offline.behind() == [("note", 2, 2)]
    assert b.offline.status().behind == (
        "note v2 (major 2) cannot be used by this truthvault: update it, then sync",
    )
    # its kernel now refuses all but reads and capture, saying why
    with pytest.raises(
        ActionForbidden, match=r"critical offline risk \(contract note v2 \(major 2\) cannot be"
    ):
        b.kernel.run("entity.edit", {"id": note, "changes": {"text": "x"}}, actor=b.actor())
    b.kernel.run("notes.create", {"text": "capture goes on"}, actor=b.actor())
    # and the hub rates it critical: it writes under v1, which v2 broke
    risks = {r.device.name: r for r in device_risks(d.store, "t")}
    assert str(risks["b"].risk.level) == "critical"
    # a later version of another type moves the marker on: still behind (it never took v2 in)
    ctx = d.syncers["a"].client.ctx  # type: ignore[attr-defined]
    d.store.contracts.add(ctx, "memo", {"type": "object", "properties": {"t": STR}}, source="user:cli")
    d.syncers["b"].sync()
    assert b.offline.behind() == [("note", 2, 2)] and [c.entity_type for c in b.contracts.list("memo")]
    # once this device can use it (here: the hub's copy made usable, as an update of the app
    # would), the next sync takes it in and the device is behind no more
    usable = {"type": "object", "properties": {"body": STR}, "x-upcast": {"from_major": 1}}
    hub_sql("UPDATE contracts SET schema = ? WHERE entity_type = 'note'", (json.dumps(usable),))
    d.syncers["b"].sync()
    assert [c.version for c in b.contracts.list("note")] == [1, 2] and b.offline.behind() == []
    b.kernel.run("entity.edit", {"id": note, "changes": {"body": "x"}, "replace": True}, actor=b.actor())
    assert b.get(note).data() == {"body": "x"}
