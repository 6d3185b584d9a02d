"""What a payload may hold: a JSON object that every device can store, read and print.

Pure code, no I/O. The hub checks every pushed payload with these rules, a device every
pulled (and, for local-first tenants, every opened) payload, an import every line, and a
local write what it is about to store: one set of rules, so nothing one replica takes in
can break another. A payload is refused when it

- is not a JSON object, or nests deeper than :data:`MAX_PAYLOAD_DEPTH`;
- is not valid UTF-8, or escapes half of a surrogate pair (``"\\ud800"``), which no reader
  can turn into text;
- holds a number no reader can: a float beyond the double range (``1e99999``) or an integer
  beyond what SQLite and PostgreSQL store (signed 64 bits).

Checking a payload in full means decoding it. A batch is first checked as a whole, with a few
scans in C over the joined payloads, and only the payloads those scans cannot clear are
decoded: on a batch of ordinary notes the check costs a few percent of a push.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from itertools import accumulate
from typing import Any

import msgspec

from .errors import InvalidInput

__all__ = [
    "MAX_INT64",
    "MAX_PAYLOAD_DEPTH",
    "check_payload",
    "check_payload_depth",
    "check_payloads",
    "decode_error_reason",
]

#: How deeply a payload's objects and arrays may nest. Far beyond any real entity, and far
#: below what a reader's recursion can take: a payload nested a thousand deep was once stored
#: and then broke every listing of the vault.
MAX_PAYLOAD_DEPTH = 64
#: the largest integer both databases store (SQLite INTEGER, PostgreSQL BIGINT: signed 64-bit)
MAX_INT64 = 2**63 - 1
_MIN_INT64 = -(2**63)

# A JSON string (skipped whole, brackets in it are text) or one bracket.
_JSON_NESTING = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_decode = msgspec.json.Decoder().decode

# Every byte mapped to what the number scan needs: digits to "0", "e" and "E" to "e", "+" kept,
# everything else a space. An integer beyond 64 bits has at least 19 digits in a row; a float
# beyond the double range has an exponent of at least three digits (or 309 digits in a row).
_NUMBER_SHAPE = bytes(
    0x30 if 0x30 <= b <= 0x39 else 0x65 if b in (0x45, 0x65) else 0x2B if b == 0x2B else 0x20
    for b in range(256)
)
_LONG_INTEGER = b"0" * 19
_NUMBER_SUSPECTS = (_LONG_INTEGER, b"e000", b"e+000")
# "\ud800" to "\udfff", half of a surrogate pair, in either case (JSON allows both).
_SURROGATE_SUSPECTS = (b"\\ud", b"\\uD")


def check_payload_depth(payload: bytes, where: str) -> None:
    """InvalidInput when a JSON payload nests deeper than :data:`MAX_PAYLOAD_DEPTH`."""
    if payload.count(b"{") + payload.count(b"[") <= MAX_PAYLOAD_DEPTH:
        return  # the common case, two scans in C: too few brackets to nest that deep
    depth = deepest = 0
    for token in _JSON_NESTING.findall(payload):
        if token in (b"{", b"["):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"}", b"]"):
            depth -= 1
    if deepest > MAX_PAYLOAD_DEPTH:
        raise InvalidInput(
            f"{where}: nested {deepest} deep, over the limit of {MAX_PAYLOAD_DEPTH}",
            hint="flatten the data",
        )


def check_payload(payload: bytes | msgspec.Raw, where: str) -> None:
    """InvalidInput naming ``where`` unless ``payload`` is a JSON object every reader can take."""
    data = bytes(payload)
    if not data.lstrip().startswith(b"{"):
        raise InvalidInput(f"{where}: must be a JSON object")
    check_payload_depth(data, where)
    try:
        value = _decode(data)
    except msgspec.ValidationError as exc:  # msgspec's "Number out of range - at `$...`"
        what = str(exc).partition(" - at ")[0]
        raise InvalidInput(f"{where}: {what}", hint="numbers must fit in a double") from None
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"{where}: not valid JSON text ({decode_error_reason(data, exc)})") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{where}: must be a JSON object")
    if _LONG_INTEGER in data.translate(_NUMBER_SHAPE):
        _check_integers(value, where)


def check_payloads(payloads: Sequence[bytes | msgspec.Raw], where: str = "items") -> None:
    """:func:`check_payload` over a batch (``where[i].payload`` names a bad one); payloads must
    already be known to open a JSON object nested no deeper than the limit."""
    if not payloads:
        return
    joined = b"".join(payloads)  # msgspec.Raw is a buffer
    suspects: set[int] = set()
    try:
        joined.decode()
    except UnicodeDecodeError:
        suspects.update(range(len(payloads)))  # hostile input: look at every one
    if not suspects:
        positions = [joined.find(s) for s in _SURROGATE_SUSPECTS]
        shaped = joined.translate(_NUMBER_SHAPE)
        positions += [shaped.find(s) for s in _NUMBER_SUSPECTS]
        if max(positions) < 0:
            return  # the usual batch: nothing that needs a closer look
        starts = list(accumulate((len(p) for p in payloads[:-1]), initial=0))
        for text, pattern in [(joined, s) for s in _SURROGATE_SUSPECTS] + [
            (shaped, s) for s in _NUMBER_SUSPECTS
        ]:
            at = text.find(pattern)
            while at >= 0:
                n = bisect_right(starts, at) - 1
                suspects.add(n)
                # the next payload's start: one hit is enough to look at a payload
                at = text.find(pattern, starts[n + 1]) if n + 1 < len(starts) else -1
    for n in sorted(suspects):
        try:
            check_payload(payloads[n], f"{where}[{n}].payload")
        except InvalidInput as exc:
            raise exc.for_item(n) from None


def _check_integers(value: Any, where: str) -> None:
    """InvalidInput when a decoded payload holds an integer beyond signed 64 bits."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif type(node) is int and not _MIN_INT64 <= node <= MAX_INT64:
            raise InvalidInput(
                f"{where}: the integer {str(node)[:24]}{'...' if len(str(node)) > 24 else ''} "
                "is beyond 64 bits",
                hint="store it as a string",
            )


def decode_error_reason(data: bytes, exc: msgspec.DecodeError) -> str:
    """A short reason for JSON that did not decode (msgspec says "truncated" for a lone
    surrogate)."""
    try:
        data.decode()
    except UnicodeDecodeError as err:
        return f"invalid UTF-8 at byte {err.start}"
    if any(s in data for s in _SURROGATE_SUSPECTS):
        return "half of a surrogate pair escaped, or another bad escape"
    return str(exc)
