"""Strict unpadded base64url and compact JSON, shared by the crypto modules."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

__all__ = ["b64d", "b64e", "dumps", "loads_object"]

_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def b64e(data: bytes) -> str:
    """Unpadded base64url of ``data``."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: object, *, size: int | None = None) -> bytes | None:
    """Decode unpadded base64url, or None when it is not exactly that (and of ``size`` bytes)."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    # Only the canonical spelling is accepted, so one value has exactly one text form
    # (a nonce or key id compared as text cannot be varied by its unused trailing bits).
    if b64e(data) != text or (size is not None and len(data) != size):
        return None
    return data


def dumps(value: object) -> bytes:
    """Compact, key-order-preserving JSON bytes."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def loads_object(data: bytes) -> dict[str, Any] | None:
    """The JSON object in ``data``, or None when ``data`` is not one."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None
