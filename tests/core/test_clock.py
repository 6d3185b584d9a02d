"""The hybrid logical clock."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from truthvault.clock import CANONICAL_STAMP_RE, HybridClock, format_stamp, normalize_stamp, parse_stamp
from truthvault.errors import InvalidInput


def test_stamps_never_go_backwards_even_when_the_wall_clock_does() -> None:
    walls = iter([1000, 1000, 900, 900, 2000])
    clock = HybridClock(wall=lambda: next(walls))
    stamps = [clock.now() for _ in range(5)]
    assert stamps == sorted(stamps) and len(set(stamps)) == 5


def test_observe_moves_past_a_remote_stamp() -> None:
    clock = HybridClock(wall=lambda: 1000)
    remote = format_stamp(5000, 3)
    clock.observe(remote)
    assert clock.now() > remote


def test_state_survives_a_restart() -> None:
    first = HybridClock(wall=lambda: 5000)
    last = first.now()
    assert HybridClock(last, wall=lambda: 10).now() > last


@given(st.integers(0, 253402300799999), st.integers(0, 0xFFFF))
def test_format_parse_roundtrip_and_string_order(ms: int, counter: int) -> None:
    stamp = format_stamp(ms, counter)
    assert CANONICAL_STAMP_RE.match(stamp)
    assert parse_stamp(stamp) == (ms, counter)


@given(
    st.tuples(st.integers(0, 4102444800000), st.integers(0, 0xFFFF)),
    st.tuples(st.integers(0, 4102444800000), st.integers(0, 0xFFFF)),
)
def test_string_order_is_time_order(a: tuple[int, int], b: tuple[int, int]) -> None:
    assert (format_stamp(*a) < format_stamp(*b)) == (a < b)


def test_plain_iso_times_are_accepted_and_normalized() -> None:
    assert normalize_stamp("2025-11-24T16:00:00Z") == "2025-11-24T16:00:00.000Z-0000"


@pytest.mark.parametrize("bad", ["", "yesterday", "2025-13-01T00:00:00Z", "2025-11-24 16:00:00"])
def test_bad_stamps_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput):
        parse_stamp(bad)
