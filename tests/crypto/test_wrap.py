"""Key wrapping to a device's box key and under a recovery passphrase."""

from __future__ import annotations

import json

import pytest

from truthvault.crypto import (
    MIN_PASSPHRASE_LENGTH,
    DeviceKeys,
    Keyring,
    open_sealed,
    seal,
    unwrap_for_device,
    unwrap_with_passphrase,
    wrap_for_device,
    wrap_with_passphrase,
)
from truthvault.errors import DecryptionFailed, InvalidInput

FAST = {"n": 2**10, "r": 8, "p": 1}  # far below the production default, only to keep tests quick
PASSPHRASE = "correct horse battery staple"


def test_a_keyring_reaches_a_new_device_through_a_wrapped_envelope() -> None:
    ring = Keyring.new()
    ring.rotate()
    sealed = seal(ring, b"hello", tenant_id="t", context=b'["note","e",1]')
    new_device = DeviceKeys.generate()
    envelope = wrap_for_device(ring.serialize(), new_device.public_bundle()["box"])
    received = Keyring.deserialize(unwrap_for_device(envelope, new_device))
    assert open_sealed(received, sealed, tenant_id="t", context=b'["note","e",1]') == b"hello"
    assert ring.serialize() not in envelope


def test_device_envelope_is_versioned_json_with_a_fresh_ephemeral_key() -> None:
    box = DeviceKeys.generate().public_bundle()["box"]
    a, b = json.loads(wrap_for_device(b"s", box)), json.loads(wrap_for_device(b"s", box))
    assert a["tv_wrap"] == 1 and a["alg"] == "x25519-hkdf-sha256-aes256gcm" and a["to"] == box
    assert a["epk"] != b["epk"] and a["ct"] != b["ct"]


def test_another_device_cannot_unwrap() -> None:
    envelope = wrap_for_device(b"secret", DeviceKeys.generate().public_bundle()["box"])
    with pytest.raises(DecryptionFailed) as info:
        unwrap_for_device(envelope, DeviceKeys.generate())
    assert info.value.reason == "wrong_key"
    assert "another device" in info.value.message


def test_readdressing_an_envelope_does_not_help() -> None:
    thief = DeviceKeys.generate()
    obj = json.loads(wrap_for_device(b"secret", DeviceKeys.generate().public_bundle()["box"]))
    forged = json.dumps({**obj, "to": thief.public_bundle()["box"]}).encode()
    with pytest.raises(DecryptionFailed) as info:
        unwrap_for_device(forged, thief)
    assert info.value.reason == "tampered"


@pytest.mark.parametrize("field", ["epk", "n", "ct"])
def test_a_tampered_device_envelope_is_detected(field: str) -> None:
    device = DeviceKeys.generate()
    obj = json.loads(wrap_for_device(b"secret", device.public_bundle()["box"]))
    value = obj[field]
    obj[field] = ("B" if value[0] == "A" else "A") + value[1:]
    with pytest.raises(DecryptionFailed) as info:
        unwrap_for_device(json.dumps(obj).encode(), device)
    assert info.value.reason == "tampered"


def test_wrapping_for_a_malformed_key_is_refused() -> None:
    with pytest.raises(InvalidInput):
        wrap_for_device(b"s", "not-a-key")


def test_passphrase_round_trip_of_a_keyring() -> None:
    ring = Keyring.new()
    envelope = wrap_with_passphrase(ring.serialize(), PASSPHRASE, **FAST)
    assert Keyring.deserialize(unwrap_with_passphrase(envelope, PASSPHRASE)).serialize() == ring.serialize()


def test_production_defaults_are_recorded_in_the_envelope() -> None:
    envelope = wrap_with_passphrase(b"s", PASSPHRASE)
    kdf = json.loads(envelope)["kdf"]
    assert (kdf["name"], kdf["n"], kdf["r"], kdf["p"]) == ("scrypt", 2**15, 8, 1)
    assert len(kdf["salt"]) == 22  # 16 bytes, unpadded base64url
    assert unwrap_with_passphrase(envelope, PASSPHRASE) == b"s"


def test_each_wrap_uses_a_fresh_salt() -> None:
    a = json.loads(wrap_with_passphrase(b"s", PASSPHRASE, **FAST))
    b = json.loads(wrap_with_passphrase(b"s", PASSPHRASE, **FAST))
    assert a["kdf"]["salt"] != b["kdf"]["salt"]


@pytest.mark.parametrize("wrong", ["correct horse battery stapler", "Correct horse battery staple", ""])
def test_a_wrong_passphrase_fails(wrong: str) -> None:
    envelope = wrap_with_passphrase(b"secret", PASSPHRASE, **FAST)
    with pytest.raises(DecryptionFailed, match="wrong recovery passphrase or damaged envelope") as info:
        unwrap_with_passphrase(envelope, wrong)
    assert info.value.reason == "wrong_passphrase"


def test_composed_and_decomposed_accents_are_the_same_passphrase() -> None:
    envelope = wrap_with_passphrase(b"secret", "caf\u00e9 au lait svp!", **FAST)
    assert unwrap_with_passphrase(envelope, "cafe\u0301 au lait svp!") == b"secret"


def test_changed_scrypt_parameters_do_not_open() -> None:
    obj = json.loads(wrap_with_passphrase(b"secret", PASSPHRASE, **FAST))
    obj["kdf"]["r"] = 4
    with pytest.raises(DecryptionFailed):
        unwrap_with_passphrase(json.dumps(obj).encode(), PASSPHRASE)


@pytest.mark.parametrize(
    "kdf", [{"n": 2**30}, {"n": 1000}, {"r": 0}, {"p": True}, {"salt": "AAAA"}, {"name": "pbkdf2"}]
)
def test_hostile_scrypt_parameters_are_refused_before_any_work(kdf: dict[str, object]) -> None:
    obj = json.loads(wrap_with_passphrase(b"secret", PASSPHRASE, **FAST))
    obj["kdf"].update(kdf)
    with pytest.raises(DecryptionFailed) as info:
        unwrap_with_passphrase(json.dumps(obj).encode(), PASSPHRASE)
    assert info.value.reason == "malformed"


def test_a_short_passphrase_is_refused_with_a_hint() -> None:
    with pytest.raises(InvalidInput) as info:
        wrap_with_passphrase(b"s", "x" * (MIN_PASSPHRASE_LENGTH - 1), **FAST)
    assert "12" in info.value.message and info.value.hint
    assert (
        unwrap_with_passphrase(wrap_with_passphrase(b"s", "x" * MIN_PASSPHRASE_LENGTH, **FAST), "x" * 12)
        == b"s"
    )


@pytest.mark.parametrize("params", [{"n": 1000}, {"n": 2**9}, {"r": 0}, {"p": 0}])
def test_weak_or_invalid_wrap_parameters_are_refused(params: dict[str, int]) -> None:
    with pytest.raises(InvalidInput):
        wrap_with_passphrase(b"s", PASSPHRASE, **{**FAST, **params})


def test_envelopes_of_one_kind_do_not_open_as_the_other() -> None:
    device = DeviceKeys.generate()
    with pytest.raises(DecryptionFailed, match="expected"):
        unwrap_with_passphrase(wrap_for_device(b"s", device.public_bundle()["box"]), PASSPHRASE)
    with pytest.raises(DecryptionFailed, match="expected"):
        unwrap_for_device(wrap_with_passphrase(b"s", PASSPHRASE, **FAST), device)


@pytest.mark.parametrize(
    "envelope", [b"", b"[]", b'{"tv_wrap":2}', b'{"tv_wrap":1,"alg":"scrypt-aes256gcm"}']
)
def test_damaged_envelopes_are_refused(envelope: bytes) -> None:
    with pytest.raises(DecryptionFailed):
        unwrap_with_passphrase(envelope, PASSPHRASE)
