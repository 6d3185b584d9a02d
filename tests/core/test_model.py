"""Wire types: decoding, the checks beyond the schema, the upgrade rule at sync time."""

from __future__ import annotations

import msgspec
import pytest

from truthvault.clock import format_stamp
from truthvault.errors import Forbidden, InvalidInput, InvalidSource, PayloadTooLarge
from truthvault.model import PushRequest, SyncItem, decode_push, encode, prepare_item

NOW = 1_790_000_000_000
MAX_CLOCK = format_stamp(NOW + 60_000, 0xFFFF)


def make(**over: object) -> SyncItem:
    fields: dict[str, object] = dict(
        entity_type="note",
        entity_id="n1",
        tenant_id="t1",
        truth_level=1,
        origin_source="user:cli",
        last_modified_at=format_stamp(NOW),
        device_id="d1",
        payload=msgspec.Raw(b'{"text":"hi"}'),
    )
    fields.update(over)
    return SyncItem(**fields)  # type: ignore[arg-type]


def prep(item: SyncItem, max_payload: int = 1000) -> SyncItem:
    return prepare_item(
        item, "items[0]", tenant_id="t1", device_id="d1", max_payload_bytes=max_payload, max_clock=MAX_CLOCK
    )


def test_roundtrip_keeps_payload_bytes_exactly() -> None:
    body = encode(PushRequest(items=[make(payload=msgspec.Raw(b'{"b":1,  "a":[2]}'))]))
    assert bytes(decode_push(body).items[0].payload) == b'{"b":1,  "a":[2]}'


@pytest.mark.parametrize(
    ("patch", "where"),
    [
        (b'"truth_level":1', b'"truth_level":"one"'),
        (b'"entity_id":"n1"', b'"entity_id":""'),
        (b'"entity_type":"note"', b'"entity_type":"Not A Type"'),
    ],
)
def test_schema_errors_name_the_item_and_field(patch: bytes, where: bytes) -> None:
    body = encode(PushRequest(items=[make(), make(entity_id="n2")])).replace(patch, where, 1)
    with pytest.raises(InvalidInput, match=r"items\[0\]\.(truth_level|entity_id|entity_type)"):
        decode_push(body)


def test_not_json_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not valid JSON"):
        decode_push(b"{nope")


def test_other_tenant_and_device_are_forbidden() -> None:
    with pytest.raises(Forbidden, match=r"items\[0\]\.tenant_id"):
        prep(make(tenant_id="t2"))
    with pytest.raises(Forbidden, match=r"items\[0\]\.device_id"):
        prep(make(device_id="d2"))


def test_level_source_mismatch_and_oversize_and_future() -> None:
    with pytest.raises(InvalidSource, match=r"items\[0\]\.origin_source"):
        prep(make(truth_level=1, origin_source="ai-cloud:x"))
    with pytest.raises(PayloadTooLarge, match=r"items\[0\]\.payload"):
        prep(make(payload=msgspec.Raw(b'{"t":"' + b"x" * 2000 + b'"}')))
    with pytest.raises(InvalidInput, match="future"):
        prep(make(last_modified_at=format_stamp(NOW + 3_600_000)))
    with pytest.raises(InvalidInput, match="JSON object"):
        prep(make(payload=msgspec.Raw(b"[1,2]")))


def test_accepted_lower_level_item_becomes_user_truth() -> None:
    item = prep(make(truth_level=5, origin_source="ai-cloud:p/m", accepted_by_user=True))
    assert item.truth_level == 1 and item.origin_source == "user:accepted"
    assert item.origin_chain[-1].level == 5 and item.origin_chain[-1].source == "ai-cloud:p/m"
    assert item.last_modified_by_level == 1
