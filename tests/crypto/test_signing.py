"""Request signing and verification, and the in-memory nonce cache."""

from __future__ import annotations

import base64
import hashlib
import random
import threading
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from truthvault.crypto import (
    SIGNATURE_HEADERS,
    DeviceKeys,
    NonceCache,
    SignedRequest,
    canonical_request,
    claimed_device,
    sign_request,
    verify_request,
)
from truthvault.errors import BadSignature, InvalidInput, StaleRequest, Unauthorized

KEYS = DeviceKeys.generate()
PUBLIC = KEYS.public_bundle()["sign"]
NOW = 1_800_000_000
BODY = b'{"items":[]}'
QUERY = [("since", "5"), ("limit", "100"), ("tag", "a b"), ("tag", "x")]


def _sign(**overrides: object) -> dict[str, str]:
    args: dict[str, object] = {
        "keys": KEYS,
        "device_id": "dev-1",
        "method": "post",
        "path": "/v1/sync/push",
        "query": QUERY,
        "body": BODY,
        "now_s": NOW,
    }
    args.update(overrides)
    return sign_request(**args)  # type: ignore[arg-type]


def _verify(headers: dict[str, str], **overrides: object) -> SignedRequest:
    args: dict[str, object] = {
        "public_sign_b64": PUBLIC,
        "headers": headers,
        "method": "POST",
        "path": "/v1/sync/push",
        "query": QUERY,
        "body": BODY,
        "now_s": NOW,
    }
    args.update(overrides)
    return verify_request(**args)  # type: ignore[arg-type]


def _flip_b64(text: str, index: int = 0) -> str:
    raw = bytearray(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    raw[index] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


def test_round_trip() -> None:
    headers = _sign()
    assert set(headers) == set(SIGNATURE_HEADERS)
    assert headers["X-TV-Timestamp"] == str(NOW)
    assert len(base64.urlsafe_b64decode(headers["X-TV-Nonce"] + "==")) == 16
    signed = _verify(headers)
    assert signed == SignedRequest("dev-1", NOW, headers["X-TV-Nonce"])


def test_each_request_gets_a_fresh_nonce() -> None:
    assert len({_sign()["X-TV-Nonce"] for _ in range(50)}) == 50


def test_canonical_string_is_exactly_the_documented_one() -> None:
    got = canonical_request("get", "/v1/sync/pull", {"since": "5", "q": "a b/~é"}, b"", 12, "bm9uY2U", "d1")
    expected = "\n".join(
        [
            "TV1",
            "GET",
            "/v1/sync/pull",
            "q=a%20b%2F~%C3%A9&since=5",
            hashlib.sha256(b"").hexdigest(),
            "12",
            "bm9uY2U",
            "d1",
        ]
    )
    assert got == expected.encode()


def test_query_forms_agree() -> None:
    as_string = canonical_request("GET", "/p", "?b=2&a=1&a=0", b"", 1, "n", "d")
    as_pairs = canonical_request("GET", "/p", [("a", "1"), ("b", "2"), ("a", "0")], b"", 1, "n", "d")
    assert as_string == as_pairs
    assert b"\na=0&a=1&b=2\n" in as_pairs


TAMPERINGS: dict[str, Callable[[dict[str, str]], tuple[dict[str, str], dict[str, object]]]] = {
    "method": lambda h: (h, {"method": "PUT"}),
    "path": lambda h: (h, {"path": "/v1/sync/pull"}),
    "query value": lambda h: (h, {"query": [("since", "6"), ("limit", "100"), ("tag", "a b"), ("tag", "x")]}),
    "query key dropped": lambda h: (h, {"query": [("since", "5"), ("limit", "100"), ("tag", "a b")]}),
    "query added": lambda h: (h, {"query": [*QUERY, ("wait", "30")]}),
    "body": lambda h: (h, {"body": b'{"items":[1]}'}),
    "timestamp": lambda h: ({**h, "X-TV-Timestamp": str(NOW - 10)}, {}),
    "nonce": lambda h: ({**h, "X-TV-Nonce": _flip_b64(h["X-TV-Nonce"])}, {}),
    "device id": lambda h: ({**h, "X-TV-Device": "dev-2"}, {}),
    "signature": lambda h: ({**h, "X-TV-Signature": _flip_b64(h["X-TV-Signature"], 10)}, {}),
}


@pytest.mark.parametrize("what", sorted(TAMPERINGS))
def test_tampering_is_detected(what: str) -> None:
    headers, overrides = TAMPERINGS[what](_sign())
    with pytest.raises(BadSignature) as info:
        _verify(headers, **overrides)
    assert "does not verify" in info.value.message
    assert info.value.status == 401


def test_query_order_does_not_matter() -> None:
    headers = _sign()
    assert _verify(headers, query=list(reversed(QUERY))).device_id == "dev-1"
    assert _verify(headers, query="tag=x&limit=100&tag=a+b&since=5").device_id == "dev-1"


def test_another_devices_key_does_not_verify() -> None:
    with pytest.raises(BadSignature):
        _verify(_sign(keys=DeviceKeys.generate()))


@pytest.mark.parametrize(("offset", "word"), [(301, "behind"), (-301, "ahead of"), (86_400, "behind")])
def test_stale_timestamps_are_refused_both_ways(offset: int, word: str) -> None:
    headers = _sign()
    with pytest.raises(StaleRequest) as info:
        _verify(headers, now_s=NOW + offset)
    assert f"{abs(offset)} s {word}" in info.value.message
    assert "clock" in (info.value.hint or "")
    assert isinstance(info.value, Unauthorized)


@pytest.mark.parametrize("offset", [300, -300, 0])
def test_timestamps_at_the_edge_of_the_window_pass(offset: int) -> None:
    assert _verify(_sign(), now_s=NOW + offset).timestamp == NOW


def test_window_is_configurable() -> None:
    headers = _sign()
    with pytest.raises(StaleRequest):
        _verify(headers, now_s=NOW + 61, window_s=60)
    assert _verify(headers, now_s=NOW + 900, window_s=1000).nonce == headers["X-TV-Nonce"]


def test_a_forged_stale_request_is_a_bad_signature_not_stale() -> None:
    headers = {**_sign(), "X-TV-Timestamp": str(NOW - 10_000)}
    with pytest.raises(BadSignature):
        _verify(headers)


@pytest.mark.parametrize("transform", [str.lower, str.upper, lambda k: k.replace("X-TV", "x-Tv")])
def test_headers_are_case_insensitive(transform: Callable[[str], str]) -> None:
    headers = {transform(k): v for k, v in _sign().items()}
    assert _verify({**headers, "Content-Type": "application/json"}).device_id == "dev-1"
    assert claimed_device(headers) == "dev-1"


def test_a_header_given_twice_in_different_cases_is_refused() -> None:
    headers = _sign()
    with pytest.raises(BadSignature, match="X-TV-Device is given more than once"):
        _verify({**headers, "x-tv-device": "dev-2"})


@pytest.mark.parametrize("name", SIGNATURE_HEADERS)
def test_a_missing_header_is_named(name: str) -> None:
    headers = {k: v for k, v in _sign().items() if k != name}
    with pytest.raises(BadSignature, match=f"header {name} is missing"):
        _verify(headers)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("X-TV-Timestamp", "12.5"),
        ("X-TV-Timestamp", "-5"),
        ("X-TV-Timestamp", " 1800000000"),
        ("X-TV-Nonce", "short"),
        ("X-TV-Nonce", "A" * 22 + "=="),
        ("X-TV-Signature", "!!!"),
        ("X-TV-Signature", "AAAA"),
    ],
)
def test_a_malformed_header_is_named(name: str, value: str) -> None:
    with pytest.raises(BadSignature, match=name):
        _verify({**_sign(), name: value})


def test_claimed_device_without_the_header_is_a_bad_signature() -> None:
    with pytest.raises(BadSignature, match="X-TV-Device"):
        claimed_device({"Host": "hub"})


@pytest.mark.parametrize(("field", "value"), [("path", "/v1/a\nb=1"), ("method", "GE T")])
def test_control_characters_cannot_blur_the_canonical_string(field: str, value: str) -> None:
    with pytest.raises(InvalidInput):
        _sign(**{field: value})
    with pytest.raises(BadSignature, match="cannot be verified"):
        _verify(_sign(), **{field: value})


def test_a_device_id_with_control_characters_is_refused() -> None:
    with pytest.raises(InvalidInput):
        _sign(device_id="dev-1\nx")
    with pytest.raises(BadSignature, match="cannot be verified"):
        _verify({**_sign(), "X-TV-Device": "dev-1\r"})


@given(
    pairs=st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=6),
    body=st.binary(max_size=64),
    seed=st.randoms(use_true_random=False),
)
def test_any_query_and_body_round_trip_in_any_order(
    pairs: list[tuple[str, str]], body: bytes, seed: random.Random
) -> None:
    headers = _sign(query=pairs, body=body)
    shuffled = pairs[:]
    seed.shuffle(shuffled)
    assert _verify(headers, query=shuffled, body=body).device_id == "dev-1"
    with pytest.raises(BadSignature):
        _verify(headers, query=shuffled, body=body + b"!")


# -- NonceCache ---------------------------------------------------------------------------


def test_nonce_cache_detects_a_replay() -> None:
    cache = NonceCache(300)
    assert cache.seen("dev-1", "n1", NOW, now_s=NOW) is False
    assert cache.seen("dev-1", "n1", NOW, now_s=NOW + 1) is True
    assert cache.seen("dev-2", "n1", NOW, now_s=NOW + 1) is False  # nonces are per device
    assert cache.seen("dev-1", "n2", NOW, now_s=NOW + 1) is False


def test_nonce_cache_forgets_entries_once_their_window_has_passed() -> None:
    cache = NonceCache(300)
    for i in range(100):
        cache.seen("dev-1", f"old-{i}", NOW, now_s=NOW)
    assert len(cache) == 100
    assert cache.seen("dev-1", "old-0", NOW, now_s=NOW + 300) is True  # still inside the window
    cache.seen("dev-1", "new", NOW + 301, now_s=NOW + 301)
    assert len(cache) == 1
    # Forgetting is safe: the same request is now refused as stale by verify_request.
    assert cache.seen("dev-1", "old-0", NOW, now_s=NOW + 301) is False


def test_nonce_cache_fails_closed_when_full() -> None:
    cache = NonceCache(300, max_entries=3)
    assert [cache.seen("d", f"n{i}", NOW, now_s=NOW) for i in range(4)] == [False, False, False, True]
    assert len(cache) == 3
    assert cache.seen("d", "n9", NOW + 400, now_s=NOW + 400) is False  # expiry frees room again


def test_nonce_cache_admits_a_nonce_exactly_once_across_threads() -> None:
    cache = NonceCache(300)
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def worker() -> None:
        start.wait()
        for i in range(200):
            seen = cache.seen("dev-1", f"n{i}", NOW, now_s=NOW)
            with lock:
                results.append(seen)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(False) == 200
    assert results.count(True) == 200 * 15


def test_sign_verify_and_nonce_cache_stop_a_replay_end_to_end() -> None:
    cache = NonceCache()
    headers = _sign()
    first = _verify(headers, now_s=NOW + 5)
    assert cache.seen(first.device_id, first.nonce, first.timestamp, now_s=NOW + 5) is False
    again = _verify(headers, now_s=NOW + 6)
    assert cache.seen(again.device_id, again.nonce, again.timestamp, now_s=NOW + 6) is True
