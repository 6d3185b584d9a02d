"""The hub's contract repository on each backend: versions added at once are numbered without a
gap or a clash, and a second hub process over the same database takes a version the first added."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import msgspec

from truthvault.clock import HybridClock
from truthvault.errors import TruthvaultError
from truthvault.hub.store import HubStore, Limits, open_store
from truthvault.kernel import BreakingChange
from truthvault.model import PushRequest, SyncItem, encode

STR = {"type": "string"}
BASE = {"text": STR, "title": STR, "tags": {"type": "array", "items": STR}}


def _with(field: str) -> dict[str, object]:
    return {"type": "object", "properties": {**BASE, field: STR}}


def test_versions_added_at_once_get_one_number_each(hub_store: HubStore) -> None:
    hub_store.add_tenant("t", "cloud_first")
    ctx = hub_store.authenticate(hub_store.add_device("t", "d")[1])

    def add(n: int, major: bool) -> object:
        try:
            return hub_store.contracts.add(ctx, "note", _with(f"f{n}"), major=major, source="user:cli")[
                1
            ].version
        except TruthvaultError as exc:
            return exc

    with ThreadPoolExecutor(4) as pool:
        majors = list(pool.map(lambda n: add(n, True), range(4)))
    assert sorted(majors) == [2, 3, 4, 5]  # type: ignore[type-var]
    # each of these adds field x, of another type each: of those racing, one is taken, and the
    # others then change x's type
    latest = hub_store.contracts.book(ctx.tenant_id, fresh=True).current("note")
    assert latest is not None and latest.version == 5

    def add_x(kind: str) -> object:
        schema = {**latest.schema, "properties": {**latest.schema["properties"], "x": {"type": kind}}}
        try:
            return hub_store.contracts.add(ctx, "note", schema, source="user:cli")[1].version
        except TruthvaultError as exc:
            return exc

    with ThreadPoolExecutor(4) as pool:
        minors = list(pool.map(add_x, ["string", "integer", "boolean", "array"]))
    taken = [v for v in minors if isinstance(v, int)]
    refused = [e for e in minors if not isinstance(e, int)]
    assert taken == [6] and len(refused) == 3
    assert all(isinstance(e, BreakingChange) and "x: type changed" in e.message for e in refused)
    assert [c.version for _, c in hub_store.contracts.list(ctx.tenant_id)] == [2, 3, 4, 5, 6]


def test_a_second_hub_process_takes_a_version_the_first_added(hub_url: str) -> None:
    first, second = open_store(hub_url), open_store(hub_url)
    try:
        first.add_tenant("t", "cloud_first")
        ctx = second.authenticate(second.add_device("t", "d")[1])
        assert second.contracts.book(ctx.tenant_id).current("note").version == 1  # type: ignore[union-attr]
        first.contracts.add(ctx, "note", _with("pinned"), source="user:cli")
        item = SyncItem(
            entity_type="note",
            entity_id="n1",
            tenant_id=ctx.tenant_id,
            truth_level=1,
            origin_source="user:cli",
            last_modified_at=HybridClock().now(),
            device_id=ctx.device_id,
            payload=msgspec.Raw(encode({"pinned": "yes"})),
            contract_version=2,
            mutation=1,
        )
        response = second.push(ctx, PushRequest(items=[item]), Limits(), time.time_ns() // 1_000_000)
        assert [r.outcome for r in response.results] == ["applied"]
    finally:
        first.close()
        second.close()
