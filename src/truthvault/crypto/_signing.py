"""Request signing: every hub request carries an Ed25519 signature over a canonical string.

The canonical string (version ``TV1``) is, one field per line::

    TV1
    METHOD
    /path
    canonical query   (pairs percent-encoded per RFC 3986, sorted by key then value, joined by & and =)
    hex sha256 of the body
    timestamp         (integer seconds)
    nonce             (16 random bytes, unpadded base64url)
    device id

Replay protection is two-part: the timestamp must be within a window of the verifier's clock,
and the nonce must not have been seen within that window (``NonceCache`` for one hub process;
a hub with several processes keeps nonces in its database).
"""

from __future__ import annotations

import hashlib
import heapq
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote

from cryptography.exceptions import InvalidSignature

from ..errors import BadSignature, InvalidInput, StaleRequest
from ._encoding import b64d, b64e
from ._keys import DeviceKeys, load_sign_public

__all__ = [
    "DEFAULT_WINDOW_S",
    "SIGNATURE_HEADERS",
    "NonceCache",
    "QueryLike",
    "SignedRequest",
    "canonical_request",
    "claimed_device",
    "sign_request",
    "verify_request",
]

HEADER_DEVICE = "X-TV-Device"
HEADER_TIMESTAMP = "X-TV-Timestamp"
HEADER_NONCE = "X-TV-Nonce"
HEADER_SIGNATURE = "X-TV-Signature"
SIGNATURE_HEADERS = (HEADER_DEVICE, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_SIGNATURE)
DEFAULT_WINDOW_S = 300

#: a query string, a mapping, or (key, value) pairs (repeated keys allowed)
QueryLike = str | Mapping[str, str] | Iterable[tuple[str, str]]

_METHOD = re.compile(r"[A-Z]{1,16}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
# RFC 3986 unreserved characters stay as they are; everything else is percent-encoded (UTF-8).
_UNRESERVED = "-._~"


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """What a verified request proved: which device sent it, when, and with which nonce."""

    device_id: str
    timestamp: int
    nonce: str


def _no_control_chars(name: str, value: str) -> None:
    # A newline inside a field would let two different requests share one canonical string.
    if not value or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise InvalidInput(f"{name} is empty or contains control characters")


def _canonical_query(query: QueryLike) -> str:
    if isinstance(query, str):
        pairs: Iterable[tuple[str, str]] = parse_qsl(query.lstrip("?"), keep_blank_values=True)
    elif isinstance(query, Mapping):
        pairs = query.items()
    else:
        pairs = query
    encoded = sorted((quote(k, safe=_UNRESERVED), quote(v, safe=_UNRESERVED)) for k, v in pairs)
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_request(
    method: str, path: str, query: QueryLike, body: bytes, timestamp: int, nonce: str, device_id: str
) -> bytes:
    """The exact bytes a request signature covers (see the module docstring)."""
    method = method.upper()
    if not _METHOD.fullmatch(method):
        raise InvalidInput(f"HTTP method {method!r} is not a plain token")
    _no_control_chars("request path", path)
    _no_control_chars("device id", device_id)
    _no_control_chars("nonce", nonce)
    lines = (
        "TV1",
        method,
        path,
        _canonical_query(query),
        hashlib.sha256(body).hexdigest(),
        str(timestamp),
        nonce,
        device_id,
    )
    return "\n".join(lines).encode("utf-8")


def sign_request(
    keys: DeviceKeys, device_id: str, method: str, path: str, query: QueryLike, body: bytes, now_s: float
) -> dict[str, str]:
    """The four ``X-TV-*`` headers that authenticate this request as ``device_id``."""
    timestamp = int(now_s)
    nonce = b64e(secrets.token_bytes(16))
    message = canonical_request(method, path, query, body, timestamp, nonce, device_id)
    return {
        HEADER_DEVICE: device_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_NONCE: nonce,
        HEADER_SIGNATURE: b64e(keys.sign(message)),
    }


def _normalise(headers: Mapping[str, str]) -> dict[str, str]:
    wanted = {h.lower() for h in SIGNATURE_HEADERS}
    found: dict[str, str] = {}
    # Some header containers (starlette's) yield a repeated header once per value from items().
    for key, value in headers.items():
        low = key.lower()
        if low in wanted:
            if low in found:
                raise BadSignature(f"header {_proper(low)} is given more than once")
            found[low] = value
    return found


def _proper(low: str) -> str:
    return next(h for h in SIGNATURE_HEADERS if h.lower() == low)


def _header(found: Mapping[str, str], name: str) -> str:
    value = found.get(name.lower())
    if value is None or not value.strip():
        raise BadSignature(f"header {name} is missing", hint="is this client enrolled and signing requests?")
    return value


def claimed_device(headers: Mapping[str, str]) -> str:
    """The device id a request claims (unverified: use it to find the key to verify with)."""
    return _header(_normalise(headers), HEADER_DEVICE)


def verify_request(
    public_sign_b64: str,
    headers: Mapping[str, str],
    method: str,
    path: str,
    query: QueryLike,
    body: bytes,
    now_s: float,
    window_s: float = DEFAULT_WINDOW_S,
) -> SignedRequest:
    """Check a request's signature headers against the device's public key and the clock.

    The signature is checked before the timestamp, so ``StaleRequest`` always means a request
    the device really signed, at the wrong time (a skewed clock or an old replay), while a
    forgery is always ``BadSignature``. The nonce is returned for the caller's replay check.
    """
    found = _normalise(headers)
    device_id = _header(found, HEADER_DEVICE)
    ts_text = _header(found, HEADER_TIMESTAMP)
    if not _TIMESTAMP.fullmatch(ts_text):
        raise BadSignature(f"header {HEADER_TIMESTAMP} is not integer seconds: {ts_text[:40]!r}")
    nonce = _header(found, HEADER_NONCE)
    if b64d(nonce, size=16) is None:
        raise BadSignature(f"header {HEADER_NONCE} is not 16 bytes of unpadded base64url")
    signature = b64d(_header(found, HEADER_SIGNATURE), size=64)
    if signature is None:
        raise BadSignature(f"header {HEADER_SIGNATURE} is not 64 bytes of unpadded base64url")
    timestamp = int(ts_text)
    try:
        message = canonical_request(method, path, query, body, timestamp, nonce, device_id)
    except InvalidInput as exc:
        raise BadSignature(f"request cannot be verified: {exc.message}") from None
    try:
        load_sign_public(public_sign_b64).verify(signature, message)
    except InvalidSignature:
        raise BadSignature(
            f"signature does not verify for device {device_id!r}",
            hint="the request was altered in transit, or signed with another key",
        ) from None
    skew = timestamp - now_s
    if abs(skew) > window_s:
        direction = "ahead of" if skew > 0 else "behind"
        raise StaleRequest(
            f"request timestamp is {abs(skew):.0f} s {direction} the hub's clock (allowed: {window_s:.0f} s)",
            hint="check this device's clock",
        )
    return SignedRequest(device_id, timestamp, nonce)


class NonceCache:
    """Nonces seen within the signature window, in memory, for a single hub process.

    An entry is forgotten once its request's timestamp is ``window_s`` in the past: a replay
    after that is refused as stale anyway, so memory is bounded by the request rate times the
    window. ``window_s`` must be at least the window given to ``verify_request``. At
    ``max_entries`` the cache fails closed (every new nonce counts as seen) rather than forget a
    live nonce and let a replay through.
    """

    def __init__(self, window_s: float = DEFAULT_WINDOW_S, *, max_entries: int = 1_000_000) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self._expiry: dict[tuple[str, str], float] = {}
        self._heap: list[tuple[float, tuple[str, str]]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)

    def seen(self, device_id: str, nonce: str, timestamp: float, *, now_s: float | None = None) -> bool:
        """True when this device already used this nonce (a replay); otherwise remember it."""
        now = time.time() if now_s is None else now_s
        key = (device_id, nonce)
        with self._lock:
            while self._heap and self._heap[0][0] < now:
                _, old = heapq.heappop(self._heap)
                self._expiry.pop(old, None)
            if key in self._expiry:
                return True
            if len(self._expiry) >= self.max_entries:
                return True
            expires = timestamp + self.window_s
            self._expiry[key] = expires
            heapq.heappush(self._heap, (expires, key))
            return False
