"""Wire types: decoding, the checks beyond the schema, the upgrade rule at sync time."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from truthvault.clock import format_stamp
from truthvault.errors import Forbidden, InvalidInput, InvalidSource, PayloadTooLarge
from truthvault.intake import check_entity_id, prepare_item, prepare_items
from truthvault.model import OriginStep, PushRequest, SyncItem, decode_push, describe_item, encode

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
        # (the id and type patterns are checked after decoding, a batch at a time)
        items = decode_push(body).items
        prepare_items(items, tenant_id="t1", max_payload_bytes=1000, max_clock=MAX_CLOCK)


@pytest.mark.parametrize("bad", ["", "a b", "a\n", "a\nb", "-a", "x" * 129, "é"])
def test_entity_ids_are_checked_whole(bad: str) -> None:
    with pytest.raises(InvalidInput, match="entity_id"):
        check_entity_id(bad)
    # in a batch too, where the ids are checked joined by newlines
    with pytest.raises(InvalidInput, match=r"items\[1\]\.entity_id"):
        prepare_items(
            [make(), make(entity_id=bad), make(entity_id="n3")],
            tenant_id="t1",
            max_payload_bytes=1000,
            max_clock=MAX_CLOCK,
        )


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


_USER_STEP = OriginStep(level=1, source="user:mobile", at=format_stamp(NOW - 10))


def test_accepted_lower_level_item_becomes_user_truth() -> None:
    item = prep(
        make(truth_level=5, origin_source="ai-cloud:p/m", accepted_by_user=True, origin_chain=(_USER_STEP,))
    )
    assert item.truth_level == 1 and item.origin_source == "user:accepted"
    assert item.origin_chain[-1].level == 5 and item.origin_chain[-1].source == "ai-cloud:p/m"
    assert item.origin_chain[-2] == _USER_STEP
    assert item.last_modified_by_level == 1


@pytest.mark.parametrize(
    "chain",
    [
        (),
        (OriginStep(level=3, source="ai-local:m", at=format_stamp(NOW - 10)),),
        (_USER_STEP, OriginStep(level=2, source="automation:r", at=format_stamp(NOW - 5))),
    ],
)
def test_only_a_users_step_backs_a_claim_of_acceptance(chain: tuple[OriginStep, ...]) -> None:
    """An AI (or any writer below level 1) cannot pass its text off as the user's by a flag."""
    with pytest.raises(InvalidSource, match="accepted_by_user"):
        prep(make(truth_level=5, origin_source="ai-cloud:evil/m", accepted_by_user=True, origin_chain=chain))
    with pytest.raises(InvalidSource, match="accepted_by_user") as caught:
        prepare_items(
            [
                make(entity_id="ok"),
                make(
                    truth_level=5, origin_source="ai-cloud:evil/m", accepted_by_user=True, origin_chain=chain
                ),
            ],
            tenant_id="t1",
            max_payload_bytes=1000,
            max_clock=MAX_CLOCK,
        )
    assert caught.value.item == 1
    # a user's own write may say it was accepted: it is the user's already
    assert prep(make(accepted_by_user=True, origin_chain=chain)).truth_level == 1


# -- prepare_items: the batch checks agree with prepare_item, item by item ------------------

_BAD_FIELDS: list[dict[str, object]] = [
    {"entity_id": "a\nb"},
    {"entity_id": "n1\n"},
    {"entity_type": "Note"},
    {"entity_type": "note\nnote"},
    {"tenant_id": "t2"},
    {"payload": msgspec.Raw(b"[1]")},
    {"payload": msgspec.Raw(b"")},
    {"payload": msgspec.Raw(b'{"t":"' + b"x" * 2000 + b'"}')},
    {"payload": msgspec.Raw(b'{"a":' * 65 + b"1" + b"}" * 65)},  # nested too deep
    {"payload": msgspec.Raw(b"{" + b'"a":[' * 64 + b"]" * 64 + b"}")},
    {"last_modified_at": "2026-11-22T01:36:48.123Z"},
    {"last_modified_at": format_stamp(NOW) + "\n"},
    {"last_modified_at": format_stamp(NOW).replace("0", "\u0660", 1)},  # an Arabic-Indic zero
    {"last_modified_at": format_stamp(NOW + 3_600_000)},
    {"last_modified_at": format_stamp(NOW).replace("2", "a", 1)},  # a hex letter in the date
    {"last_modified_at": format_stamp(NOW, 0xAB).upper()},  # the counter in capitals
    {"last_modified_at": format_stamp(NOW)[:-1]},
    {"base_clock": "yesterday"},
    {"truth_level": 1, "origin_source": "ai-cloud:x"},
    {"origin_source": "user:x\n"},
    {"origin_chain": (OriginStep(level=2, source="user:x", at=format_stamp(NOW)),)},
    {"last_modified_at": "2025-11-32T00:00:00.000Z-0000"},  # the right shape, no real date
    {"last_modified_at": "2025-11-31T00:00:00.000Z-0000"},
    {"last_modified_at": "2026-02-29T00:00:00.000Z-0000"},  # not a leap year
    {"last_modified_at": "2025-11-30T24:00:00.000Z-0000"},
    {"last_modified_at": "2025-11-30T23:60:00.000Z-0000"},
    {"base_clock": "2026-13-01T00:00:00.000Z-0000"},
    {"truth_level": 5, "origin_source": "ai-cloud:p/m", "accepted_by_user": True},  # no user behind it
    {"payload": msgspec.Raw(b'{"n":1e99999}')},
    {"payload": msgspec.Raw(b'{"n":-1E+400}')},
    {"payload": msgspec.Raw(b'{"n":' + b"9" * 400 + b".5}")},
    {"payload": msgspec.Raw(b'{"n":9223372036854775808}')},
    {"payload": msgspec.Raw(b'{"n":[-9223372036854775809]}')},
    {"payload": msgspec.Raw(b'{"t":"\xff\xfe"}')},  # not UTF-8
    {"payload": msgspec.Raw(b'{"t":"\\ud800"}')},  # half a surrogate pair
    {"payload": msgspec.Raw(b'{"t":"\\uDC00x"}')},
]
_GOOD_FIELDS: list[dict[str, object]] = [
    {},
    {"truth_level": 3, "origin_source": "ai-local:m", "last_modified_by_level": 3},
    {"base_clock": format_stamp(NOW - 5)},
    {"last_modified_at": format_stamp(NOW - 1, 0xFACE), "base_clock": format_stamp(NOW - 9, 0xBEEF)},
    {"origin_chain": (OriginStep(level=2, source="automation:x", at=format_stamp(NOW)),)},
    {"entity_type": "task.sub-1", "entity_id": "A:b.c_d-9"},
    {"payload": msgspec.Raw(b'{"a":' * 64 + b"1" + b"}" * 64)},  # as deep as allowed
    {"payload": msgspec.Raw(b'{"a":"' + b"[{" * 40 + b'"}')},  # brackets in a string are text
    {"payload": msgspec.Raw(b'{"a":[' + b"{}," * 40 + b"{}]}")},  # many objects, side by side
    {"last_modified_at": "2024-02-29T23:59:59.999Z-ffff"},  # a leap day
    {
        "truth_level": 5,
        "origin_source": "ai-cloud:p/m",
        "accepted_by_user": True,
        "origin_chain": (_USER_STEP,),
    },
    {"payload": msgspec.Raw(b'{"n":9223372036854775807,"m":-9223372036854775808,"x":1e308,"y":1.5e-99999}')},
    {"payload": msgspec.Raw(b'{"t":"caf\\u00e9 \\ud83d\\ude00 e1234 1234567890123456789012 \xc3\xa9"}')},
    {"payload": msgspec.Raw(b'{"t":"a\\u0000b","id":"3e4a9e1000e+0000"}')},
]


def _outcome(check: object) -> tuple[str, object, object]:
    try:
        items = check()  # type: ignore[operator]
    except (InvalidInput, Forbidden, PayloadTooLarge, InvalidSource) as exc:
        return type(exc).__name__, exc.message, exc.item
    return "ok", [encode(item) for item in items], None


@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, len(_BAD_FIELDS) - 1), st.integers(0, len(_GOOD_FIELDS) - 1)),
        min_size=1,
        max_size=12,
    )
)
@settings(max_examples=300, deadline=None)
def test_batch_checks_agree_with_item_checks(spec: list[tuple[bool, int, int]]) -> None:
    def batch() -> list[SyncItem]:
        return [
            make(**{"entity_id": f"n{i}", **(_BAD_FIELDS[b] if bad else _GOOD_FIELDS[g])})
            for i, (bad, b, g) in enumerate(spec)
        ]

    def one_by_one() -> list[SyncItem]:
        done = []
        for i, item in enumerate(batch()):
            try:
                done.append(
                    prepare_item(
                        item,
                        f"items[{i}]",
                        tenant_id="t1",
                        device_id=None,
                        max_payload_bytes=1000,
                        max_clock=MAX_CLOCK,
                    )
                )
            except (InvalidInput, Forbidden, PayloadTooLarge, InvalidSource) as exc:
                raise exc.for_item(i, describe_item(item)) from None
        return done

    def at_once() -> list[SyncItem]:
        return prepare_items(batch(), tenant_id="t1", max_payload_bytes=1000, max_clock=MAX_CLOCK)

    expected = _outcome(one_by_one)
    assert _outcome(at_once) == expected
    assert (expected[0] == "ok") == (not any(bad for bad, _, _ in spec))
