"""A hybrid logical clock for ``last_modified_at``.

A stamp reads ``2026-11-22T01:36:48.123Z-0000``: the wall time in milliseconds (UTC)
and a 4-hex-digit counter. Stamps sort as strings in time order, never go backwards
on one device, and always land after every stamp the device has seen, so a user's
edit of something pulled from a device with a fast clock still wins over it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from operator import itemgetter

from .errors import InvalidInput

__all__ = [
    "CANONICAL_STAMP",
    "CANONICAL_STAMP_RE",
    "MAX_FUTURE_SKEW_MS",
    "HybridClock",
    "first_unreal_stamp",
    "format_stamp",
    "future_limit",
    "normalize_stamp",
    "parse_stamp",
    "stamp_ms",
]

#: The exact wire form (the body of the pattern, for building others from it).
CANONICAL_STAMP = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z-[0-9a-f]{4}"
#: Checking a stamp against the wire form is cheaper than parsing it, and canonical stamps
#: compare correctly as plain strings. ASCII digits only, and ``\Z`` rather than ``$``, which
#: would let a trailing newline through.
CANONICAL_STAMP_RE = re.compile(rf"\A{CANONICAL_STAMP}\Z")

_STAMP_RE = re.compile(
    r"\A([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?Z(?:-([0-9a-f]{4}))?\Z"
)
_MAX_COUNTER = 0xFFFF

#: How far ahead of this machine's clock a stamp from elsewhere may be. The hub refuses
#: pushes beyond it (``hub serve --max-clock-skew``) and a vault refuses imports beyond it:
#: a stamp from the far future would win every later edit made here.
MAX_FUTURE_SKEW_MS = 15 * 60 * 1000


#: the last second rendered, and its text: stamps of one process mostly share the second, so
#: rendering reuses it (a stamp is made at every write)
_last_second: list[tuple[int, str]] = [(-1, "")]


def format_stamp(ms: int, counter: int = 0) -> str:
    """Render milliseconds since the epoch and a counter as a stamp."""
    second, milli = divmod(ms, 1000)
    last = _last_second[0]
    if last[0] == second:
        head = last[1]
    else:
        head = f"{datetime.fromtimestamp(second, tz=UTC):%Y-%m-%dT%H:%M:%S}"
        _last_second[0] = (second, head)
    return f"{head}.{milli:03d}Z-{counter:04x}"


def parse_stamp(stamp: str) -> tuple[int, int]:
    """Split a stamp into (milliseconds since the epoch, counter), or raise InvalidInput.

    Also takes a plain ISO-8601 UTC time (``...Z``), with counter 0.
    """
    match = _STAMP_RE.match(stamp) if isinstance(stamp, str) else None
    if match is None:
        raise InvalidInput(f"clock {stamp!r} is not a stamp like 2026-11-22T01:36:48.123Z-0000")
    year, month, day, hour, minute, second, frac, counter = match.groups()
    try:
        dt = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    except ValueError as exc:
        raise InvalidInput(f"clock {stamp!r} is not a real date: {exc}") from None
    ms = int(dt.timestamp()) * 1000 + (int((frac or "0").ljust(3, "0")[:3]))
    return ms, int(counter, 16) if counter else 0


_date_time = itemgetter(slice(0, 19))


def first_unreal_stamp(stamps: Sequence[str]) -> str | None:
    """The first of some stamps in the canonical form that names no real time (a 32nd of
    November, a 25th hour), or None when every one does.

    The canonical form says only which characters stand where; a stamp that parses no further
    once stopped every pull of a tenant. Stamps of one batch share few distinct seconds, so each
    distinct date and time is parsed once.
    """
    bad = []
    for head in set(map(_date_time, stamps)):
        try:
            datetime.fromisoformat(head)
        except ValueError:
            bad.append(head)
    if not bad:
        return None
    return next(stamp for stamp in stamps if stamp[:19] in bad)


def normalize_stamp(stamp: str) -> str:
    """The canonical form of a stamp (so that string order is time order)."""
    return format_stamp(*parse_stamp(stamp))


def stamp_ms(stamp: str) -> int:
    """The wall-time part of a stamp, in milliseconds since the epoch."""
    return parse_stamp(stamp)[0]


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def future_limit(skew_ms: int = MAX_FUTURE_SKEW_MS) -> str:
    """The greatest stamp accepted from elsewhere now: this machine's time plus ``skew_ms``."""
    return format_stamp(_wall_ms() + skew_ms, _MAX_COUNTER)


class HybridClock:
    """A thread-safe hybrid logical clock.

    ``now()`` gives a stamp greater than every stamp it gave or observed before;
    ``observe(stamp)`` takes in a stamp seen from elsewhere.
    """

    def __init__(self, last: str | None = None, wall: Callable[[], int] = _wall_ms) -> None:
        self._wall = wall
        self._lock = threading.Lock()
        self._ms, self._counter = parse_stamp(last) if last else (0, 0)

    @property
    def last(self) -> str:
        """The greatest stamp given or observed so far."""
        with self._lock:
            return format_stamp(self._ms, self._counter)

    def now(self) -> str:
        """A new stamp, later than everything this clock has seen."""
        with self._lock:
            wall = self._wall()
            if wall > self._ms:
                self._ms, self._counter = wall, 0
            elif self._counter < _MAX_COUNTER:
                self._counter += 1
            else:
                # The counter is exhausted within one millisecond: borrow the next one.
                self._ms, self._counter = self._ms + 1, 0
            return format_stamp(self._ms, self._counter)

    def observe(self, stamp: str) -> None:
        """Move this clock past a stamp seen from another replica."""
        ms, counter = parse_stamp(stamp)
        with self._lock:
            if (ms, counter) > (self._ms, self._counter):
                self._ms, self._counter = ms, counter
