"""The shared merge: a batch of versions applied in any order reaches one state."""

from __future__ import annotations

import random

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from truthvault.clock import format_stamp
from truthvault.merge import item_checksum, plan_merge
from truthvault.model import SyncItem, checksum_hex
from truthvault.truth import Outcome, record_id, resolution_key

SOURCES = {1: "user:cli", 2: "automation:r1", 3: "ai-local:m", 4: "ai-lan:m", 5: "ai-cloud:p/m"}


def item(eid: str, level: int, tick: int, device: str, deleted: bool = False) -> SyncItem:
    return SyncItem(
        entity_type="note",
        entity_id=eid,
        tenant_id="t",
        truth_level=level,
        origin_source=SOURCES[level],
        last_modified_at=format_stamp(1_790_000_000_000 + tick),
        device_id=device,
        payload=msgspec.Raw(msgspec.json.encode({"t": tick, "d": device})),
        deleted=deleted,
    )


def key_of(i: SyncItem) -> tuple[int, str, str]:
    return resolution_key(i.truth_level, i.last_modified_at, i.device_id)


def apply_all(items: list[SyncItem]) -> tuple[dict[str, SyncItem], int, list[str]]:
    state: dict[str, SyncItem] = {}
    total = 0
    kept: list[str] = []
    for it in items:
        plan = plan_merge(state, [it], "now")
        state.update(plan.entities)
        total += plan.checksum_delta
        kept += [loss.record.id for loss in plan.losses]
    return state, total, kept


items_strategy = st.lists(
    st.builds(
        item,
        eid=st.sampled_from(["e1", "e2"]),
        level=st.integers(1, 5),
        tick=st.integers(0, 1000),
        device=st.sampled_from(["a", "b", "c"]),
        deleted=st.booleans(),
    ),
    min_size=1,
    max_size=12,
    unique_by=lambda i: (i.entity_id, i.last_modified_at, i.device_id),
)


@settings(max_examples=200)
@given(items_strategy, st.randoms(use_true_random=False))
def test_any_order_converges_with_a_consistent_checksum(items: list[SyncItem], rnd: random.Random) -> None:
    state1, sum1, _ = apply_all(items)
    shuffled = list(items)
    rnd.shuffle(shuffled)
    state2, sum2, _ = apply_all(shuffled)
    assert {k: (v.last_modified_at, v.device_id) for k, v in state1.items()} == {
        k: (v.last_modified_at, v.device_id) for k, v in state2.items()
    }
    assert (
        checksum_hex(sum1)
        == checksum_hex(sum2)
        == checksum_hex(sum(item_checksum(v) for v in state1.values()))
    )


@settings(max_examples=200)
@given(items_strategy)
def test_every_loser_is_kept_or_was_a_tombstone(items: list[SyncItem]) -> None:
    state, _, kept = apply_all(items)
    winners = {(v.entity_id, v.last_modified_at, v.device_id) for v in state.values()}

    for it in items:
        key = (it.entity_id, it.last_modified_at, it.device_id)
        if key in winners:
            continue
        rid = record_id(*key)
        same_device_later = any(
            o.entity_id == it.entity_id
            and o.device_id == it.device_id
            and o.last_modified_at > it.last_modified_at
            for o in items
        )
        # two tombstones never make a record: a losing tombstone is covered by a greater one
        covered_by_tombstone = it.deleted and any(
            o.deleted and o.entity_id == it.entity_id and key_of(o) > key_of(it) for o in items
        )
        assert rid in kept or same_device_later or covered_by_tombstone, it


def test_plan_reports_results_in_order() -> None:
    user = item("e1", 1, 10, "a")
    ai = item("e1", 5, 20, "b")
    plan = plan_merge({}, [user, ai], "now")
    assert [o for _, o, _ in plan.results] == [Outcome.APPLIED, Outcome.SUGGESTION]
    assert plan.losses[0].kind == "suggestion" and plan.losses[0].record.item is ai
    assert list(plan.entities) == ["e1"] and plan.entities["e1"] is user
