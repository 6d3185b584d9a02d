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

Checking a payload in full means decoding it. A batch is decoded as one JSON array, in C
(under a millisecond for a thousand notes), and only the payloads that may hold a huge integer
(19 digits in a row) are looked at again. Scanning the bytes for what could be wrong before
decoding was tried and was slower: text (hex, ids) looks like large numbers too often.
"""

from __future__ import annotations

import dataclasses
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
    "plain",
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

# Every byte mapped to "0" if it is a digit, else to a space: an integer beyond 64 bits has at
# least 19 digits in a row.
_DIGIT_SHAPE = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_INTEGER = b"0" * 19
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
    if _LONG_INTEGER in data.translate(_DIGIT_SHAPE):
        _check_integers(value, where)


def check_payloads(
    payloads: Sequence[bytes | msgspec.Raw], where: str = "items", array: bytes | None = None
) -> None:
    """:func:`check_payload` over a batch (``where[i].payload`` names a bad one, whose index the
    error's ``item`` holds); payloads must already be known to open a JSON object nested no
    deeper than the limit. ``array``: the payloads as one JSON array, when the caller has it.

    The batch is decoded as one JSON array, in C: that alone refuses bad UTF-8, bad escapes and
    floats beyond a double. Only a payload with 19 digits in a row can hold an integer beyond 64
    bits, so only those are decoded again and walked. A batch that fails is checked payload by
    payload, to name the first bad one.
    """
    if not payloads:
        return
    if array is None:
        array = b"[" + b",".join(payloads) + b"]"
    try:
        values = _decode(array)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        for n, payload in enumerate(payloads):
            _check_one(payload, where, n)
        raise InvalidInput(f"{where}: not a list of JSON objects") from None
    digits = array.translate(_DIGIT_SHAPE)
    at = digits.find(_LONG_INTEGER)
    if at < 0:
        return  # the usual batch
    # payload n starts after "[" and n commas, at 1 + n + the lengths before it
    starts = list(accumulate((len(p) + 1 for p in payloads[:-1]), initial=1))
    while at >= 0:
        n = bisect_right(starts, at) - 1
        try:
            _check_integers(values[n], f"{where}[{n}].payload")
        except InvalidInput as exc:
            raise exc.for_item(n) from None
        # on from the next payload's start: one look at a payload is enough
        at = digits.find(_LONG_INTEGER, starts[n + 1]) if n + 1 < len(starts) else -1


def _check_one(payload: bytes | msgspec.Raw, where: str, n: int) -> None:
    try:
        check_payload(payload, f"{where}[{n}].payload")
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


_NESTED = (msgspec.Raw, msgspec.Struct, dict, list, tuple)


def plain(obj: object) -> Any:
    """Plain data (for JSON output and action results): every field of a struct, defaults too,
    payloads decoded; the push and pull numbers of the wire are left out when unset."""
    if isinstance(obj, msgspec.Raw):
        return msgspec.json.decode(obj)
    if isinstance(obj, msgspec.Struct):
        fields = msgspec.structs.asdict(obj)
        for name, value in fields.items():
            if isinstance(value, _NESTED):
                fields[name] = plain(value)
        return {k: v for k, v in fields.items() if not (k in ("mutation", "seq") and v is None)}
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return plain(dataclasses.asdict(obj))
    return obj
