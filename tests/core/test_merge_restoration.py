"""merge.py's loser policy as the hub applies it: what a fate keeps, and the version that
restores a conflict's loser."""

from __future__ import annotations

import msgspec

from truthvault.clock import format_stamp
from truthvault.merge import HUB_FATE, Fate, keeps, loss_record, plan_merge, restoration
from truthvault.model import SyncItem
from truthvault.truth import Outcome


def _item(level: int, tick: int, device: str, version: int = 1) -> SyncItem:
    return SyncItem(
        entity_type="note",
        entity_id="e1",
        tenant_id="t",
        truth_level=level,
        origin_source="user:cli" if level == 1 else "ai-local:m",
        last_modified_at=format_stamp(1_790_000_000_000 + tick),
        device_id=device,
        payload=msgspec.Raw(msgspec.json.encode({"t": tick})),
        version=version,
    )


def test_a_fate_keeps_a_record_only_where_it_shares_or_stays_local() -> None:
    assert {fate for fate in Fate if keeps(fate)} == {Fate.SHARE, Fate.LOCAL}
    assert keeps(HUB_FATE)  # the hub keeps every loser


def test_a_restoration_is_a_new_user_version_on_the_current_one_that_wins() -> None:
    loser, winner = _item(1, 10, "a"), _item(1, 20, "b", version=2)
    record = loss_record("conflict", loser, "now")
    clock = format_stamp(1_790_000_000_100)
    restored = restoration(record, winner, "hub:dev", clock)
    assert (restored.truth_level, restored.origin_source, restored.device_id) == (
        1,
        "user:conflict-resolve",
        "hub:dev",
    )
    assert (restored.version, restored.base_version, restored.base_clock) == (3, 2, winner.last_modified_at)
    assert restored.payload == loser.payload and restored.last_modified_at == clock
    assert restored.origin_chain[-1].ref == record.id
    plan = plan_merge({"e1": winner}, [restored], "now")
    assert plan.results[0][1] is Outcome.APPLIED
    fresh = restoration(record, None, "hub:dev", clock)
    assert (fresh.version, fresh.base_version, fresh.base_clock) == (1, 0, None)
