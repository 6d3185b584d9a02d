"""``doctor``'s clock check, against the hub's Date header: ok within 30 s, a warning beyond, a
failure past 240 s (the hub refuses signed requests past its 300 s window), either way round."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from truthvault.sync._doctor import _clock_check

HUB = datetime(2026, 12, 7, 21, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("offset_s", "status", "words"),
    [(0, "ok", "within"), (12, "ok", "within"), (-45, "warn", "behind"), (90, "warn", "ahead of"),
     (600, "fail", "ahead of"), (-3600, "fail", "behind")],
)  # fmt: skip
def test_the_clock_is_checked_against_the_hubs_date(offset_s: float, status: str, words: str) -> None:
    check = _clock_check(format_datetime(HUB, usegmt=True), HUB.timestamp() + offset_s)
    assert check.status == status and words in check.detail
    assert (check.fix is None) == (status == "ok")


def test_a_hub_without_a_date_header_is_a_warning() -> None:
    assert _clock_check(None, HUB.timestamp()).status == "warn"
