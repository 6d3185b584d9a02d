"""Payload encryption: sealed envelopes bound to every truth field of one entity version,
keyrings and rotation."""

from __future__ import annotations

import base64
import json
from typing import TypedDict

import msgspec
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from truthvault.crypto import Keyring, is_sealed, open_sealed, seal
from truthvault.errors import DecryptionFailed, InvalidInput
from truthvault.model import OriginStep, SyncItem, seal_context


class Where(TypedDict):
    tenant_id: str
    context: bytes


RING = Keyring.new()
VERSION = SyncItem(
    entity_type="note",
    entity_id="01J0ABC",
    tenant_id="t-1",
    truth_level=1,
    origin_source="user:cli",
    last_modified_at="2026-12-01T10:00:00.000Z-0000",
    device_id="d-1",
    version=3,
    base_version=2,
    base_clock="2026-12-01T09:00:00.000Z-0000",
    last_modified_by_level=1,
)
WHERE: Where = {"tenant_id": "t-1", "context": seal_context(VERSION)}


def _moved(**change: object) -> Where:
    return {"tenant_id": "t-1", "context": seal_context(msgspec.structs.replace(VERSION, **change))}


def _b64d(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _b64e(data: bytes) -> str:
    return base64.b64encode(data).decode()


@settings(max_examples=200)
@given(plaintext=st.binary(max_size=2048))
def test_round_trip_of_any_bytes(plaintext: bytes) -> None:
    envelope = seal(RING, plaintext, **WHERE)
    assert is_sealed(envelope)
    assert open_sealed(RING, envelope, **WHERE) == plaintext


def test_envelope_is_a_json_object_that_hides_the_plaintext() -> None:
    marker = b'{"text":"MARKER-7f3a secret plans"}'
    envelope = seal(RING, marker, **WHERE)
    obj = json.loads(envelope)
    assert list(obj) == ["tv_enc", "kid", "n", "ct"]
    assert obj["tv_enc"] == 3 and obj["kid"] == RING.current
    assert len(_b64d(obj["n"])) == 12
    assert len(_b64d(obj["ct"])) == len(marker) + 16
    assert b"MARKER" not in envelope
    assert seal(RING, marker, **WHERE) != envelope  # a fresh nonce each time


@pytest.mark.parametrize(
    "payload", [b'{"text":"hello"}', b"{}", b"", b"not json", b'{"tv_enc_x":1}', b'["tv_enc"]']
)
def test_is_sealed_is_false_for_plaintext(payload: bytes) -> None:
    assert not is_sealed(payload)


def test_is_sealed_accepts_spacing() -> None:
    assert is_sealed(b' { "tv_enc" : 1, "kid": "x"}')


MOVED: list[Where] = [
    _moved(entity_id="01J0ABD"),
    _moved(entity_type="task"),
    {**WHERE, "tenant_id": "t-2"},
    _moved(version=4),
    _moved(version=2),
    # the payload of another writer, level or origin of the same version: a hub that swapped
    # a suggestion's ciphertext with the current one's would pass AI text off as the user's
    _moved(truth_level=5, origin_source="ai-cloud:p/m", last_modified_by_level=5),
    _moved(origin_source="user:mobile"),
    _moved(device_id="d-2"),
    _moved(last_modified_at="2026-12-01T10:00:00.000Z-0001"),
    _moved(base_version=1),
    _moved(base_clock=None),
    _moved(accepted_by_user=True),
    _moved(deleted=True),
    _moved(contract_version=2),
    _moved(last_modified_by_level=2),
    _moved(origin_chain=(OriginStep(level=5, source="ai-cloud:p/m", at="2026-12-01T08:00:00.000Z-0000"),)),
]


@pytest.mark.parametrize("where", MOVED)
def test_a_moved_ciphertext_does_not_open(where: Where) -> None:
    envelope = seal(RING, b'{"text":"x"}', **WHERE)
    with pytest.raises(DecryptionFailed) as info:
        open_sealed(RING, envelope, **where)
    assert info.value.reason == "tampered"
    assert "moved" in info.value.message


def test_fields_cannot_shift_between_entity_type_and_id() -> None:
    a = seal_context(msgspec.structs.replace(VERSION, entity_type="note", entity_id="a.b"))
    b = seal_context(msgspec.structs.replace(VERSION, entity_type="note.a", entity_id="b"))
    envelope = seal(RING, b"x", tenant_id="t", context=a)
    with pytest.raises(DecryptionFailed):
        open_sealed(RING, envelope, tenant_id="t", context=b)


def test_every_single_flipped_bit_of_nonce_or_ciphertext_is_detected() -> None:
    envelope = seal(RING, b'{"text":"tamper me"}', **WHERE)
    obj = json.loads(envelope)
    for field in ("n", "ct"):
        raw = _b64d(obj[field])
        for i in range(len(raw)):
            for bit in (0x01, 0x80):
                flipped = bytearray(raw)
                flipped[i] ^= bit
                bad = json.dumps({**obj, field: _b64e(bytes(flipped))}).encode()
                with pytest.raises(DecryptionFailed) as info:
                    open_sealed(RING, bad, **WHERE)
                assert info.value.reason == "tampered"


def test_a_truncated_ciphertext_is_detected() -> None:
    obj = json.loads(seal(RING, b"0123456789abcdef0123", **WHERE))
    short = json.dumps({**obj, "ct": _b64e(_b64d(obj["ct"])[:-1])}).encode()
    with pytest.raises(DecryptionFailed):
        open_sealed(RING, short, **WHERE)


def test_an_unknown_key_id_says_to_sync_keys() -> None:
    other = Keyring.new()
    envelope = seal(other, b"x", **WHERE)
    with pytest.raises(DecryptionFailed) as info:
        open_sealed(RING, envelope, **WHERE)
    assert info.value.reason == "unknown_key"
    assert other.current in info.value.message
    assert info.value.hint == "the tenant key was rotated on another device: sync keys"


def test_a_known_kid_pointing_at_another_key_is_tampering() -> None:
    other = Keyring.new()
    obj = json.loads(seal(other, b"x", **WHERE))
    forged = json.dumps({**obj, "kid": RING.current}).encode()
    with pytest.raises(DecryptionFailed) as info:
        open_sealed(RING, forged, **WHERE)
    assert info.value.reason == "tampered"


@pytest.mark.parametrize(
    ("envelope", "reason"),
    [
        (b"not json", "malformed"),
        (b'{"text":"plain"}', "malformed"),
        (b'{"tv_enc":4,"kid":"abcd","n":"","ct":""}', "unsupported"),
        (b'{"tv_enc":3,"kid":"abcd","n":"AAAA","ct":"AAAAAAAAAAAAAAAAAAAAAA=="}', "malformed"),
        (b'{"tv_enc":3,"kid":"abcd","n":"not base64!","ct":"AAAAAAAAAAAAAAAAAAAAAA=="}', "malformed"),
        (b'{"tv_enc":3,"kid":"abcd"}', "malformed"),
        (b'{"tv_enc":3,"kid":7,"n":"AAAAAAAAAAAAAAAA","ct":"AAAAAAAAAAAAAAAAAAAAAA"}', "malformed"),
        (b'{"tv_enc":2,"kid":"abcd","n":"AAAAAAAAAAAAAAAA","ct":"AAAAAAAAAAAAAAAAAAAAAA=="}', "unsupported"),
        (b'{"tv_enc":1,"kid":"abcd"}', "unsupported"),
    ],
)
def test_malformed_envelopes_are_named(envelope: bytes, reason: str) -> None:
    with pytest.raises(DecryptionFailed) as info:
        open_sealed(RING, envelope, **WHERE)
    assert info.value.reason == reason


def test_retired_formats_do_not_open_even_when_genuine() -> None:
    """Format 2 bound only the tenant, type, id and version: its payloads of one version were
    interchangeable (a user's and an AI's), so a genuine one is refused, never opened."""
    nonce, plaintext = bytes(range(12)), b'{"text":"sealed by an older version"}'
    key = RING.key(RING.current)
    assert key is not None
    fields = ["tv_enc", 2, RING.current, "t-1", VERSION.entity_type, VERSION.entity_id, VERSION.version]
    ad = json.dumps(fields, separators=(",", ":")).encode()
    ct = AESGCM(key).encrypt(nonce, plaintext, ad)
    old = json.dumps({"tv_enc": 2, "kid": RING.current, "n": _b64e(nonce), "ct": _b64e(ct)}).encode()
    with pytest.raises(DecryptionFailed) as info:
        open_sealed(RING, old, **WHERE)
    assert info.value.reason == "unsupported" and "no longer read" in info.value.message


def test_rotation_keeps_old_payloads_readable_and_seals_new_ones_with_the_new_key() -> None:
    ring = Keyring.new()
    first_kid = ring.current
    old = seal(ring, b"old", **WHERE)
    before = Keyring.deserialize(ring.serialize())
    new_kid = ring.rotate()
    assert new_kid == ring.current != first_kid
    assert ring.kids == (first_kid, new_kid)
    new = seal(ring, b"new", **WHERE)
    assert json.loads(new)["kid"] == new_kid and json.loads(old)["kid"] == first_kid
    assert open_sealed(ring, old, **WHERE) == b"old"
    assert open_sealed(ring, new, **WHERE) == b"new"
    with pytest.raises(DecryptionFailed) as info:
        open_sealed(before, new, **WHERE)
    assert info.value.reason == "unknown_key"


def test_keyring_serialization_round_trip() -> None:
    ring = Keyring.new()
    ring.rotate()
    again = Keyring.deserialize(ring.serialize())
    assert again.current == ring.current and again.kids == ring.kids
    assert all(again.key(k) == ring.key(k) for k in ring.kids)
    assert again.serialize() == ring.serialize()
    assert json.loads(ring.serialize())["tv_keyring"] == 1


def test_keyring_repr_hides_the_keys() -> None:
    ring = Keyring.new()
    key = ring.key(ring.current)
    assert key is not None and _b64e(key) not in repr(ring)
    assert ring.current in repr(ring)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[]",
        b'{"tv_keyring":2,"current":"abcd","keys":{}}',
        b'{"tv_keyring":1,"current":"abcd","keys":{}}',
        b'{"tv_keyring":1,"current":"abcd","keys":{"abcd":"AAAA"}}',
        b'{"tv_keyring":1,"current":"abcd","keys":{"a\\nb":"' + b"A" * 43 + b'"}}',
    ],
)
def test_damaged_keyrings_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidInput):
        Keyring.deserialize(data)
