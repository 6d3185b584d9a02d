"""Time-ordered entity ids (UUIDv7 layout), so ids sort by creation time."""

from __future__ import annotations

import os
import threading
import time
import uuid

__all__ = ["new_id"]

_lock = threading.Lock()
_last = [0, 0]  # last millisecond, last 12-bit sequence


def new_id() -> str:
    """A new UUIDv7-style id: 48 bits of Unix milliseconds, then a counter and random bits."""
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last[0]:
            # Start low in the 12-bit field so a burst within one millisecond stays ordered.
            _last[0], _last[1] = ms, int.from_bytes(os.urandom(2), "big") & 0x3FF
        else:
            ms = _last[0]
            _last[1] += 1
            if _last[1] > 0xFFF:
                _last[0], _last[1] = ms + 1, 0
                ms += 1
        seq = _last[1]
    rand = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms << 80) | (0x7 << 76) | (seq << 64) | (0b10 << 62) | rand
    return str(uuid.UUID(int=value))
