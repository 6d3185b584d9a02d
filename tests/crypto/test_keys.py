"""Device keys: generation, serialization, the 0600 key file, fingerprints."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from truthvault.crypto import DeviceKeys, fingerprint
from truthvault.errors import ConflictState, InsecureKeyFile, InvalidInput, NotFound


def _raw(b64: str) -> bytes:
    return base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))


def test_public_bundle_holds_raw_32_byte_keys_in_unpadded_base64url() -> None:
    bundle = DeviceKeys.generate().public_bundle()
    assert set(bundle) == {"sign", "box"}
    for value in bundle.values():
        assert "=" not in value and "+" not in value and "/" not in value
        assert len(_raw(value)) == 32
    assert bundle != DeviceKeys.generate().public_bundle()


def test_private_bytes_round_trip_keeps_both_keys() -> None:
    keys = DeviceKeys.generate()
    again = DeviceKeys.from_private_bytes(keys.private_bytes())
    assert again.public_bundle() == keys.public_bundle()
    assert again.sign(b"x") == keys.sign(b"x")  # Ed25519 is deterministic: same key, same signature


def test_private_bytes_are_versioned_json() -> None:
    assert DeviceKeys.generate().private_bytes().startswith(b'{"tv_device_keys":1,')


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b"[]", b'{"tv_device_keys":1}', b'{"tv_device_keys":1,"sign":"AAAA","box":"AAAA"}'],
)
def test_garbage_private_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(InvalidInput):
        DeviceKeys.from_private_bytes(data)


def test_unknown_format_version_asks_for_an_upgrade() -> None:
    with pytest.raises(InvalidInput) as info:
        DeviceKeys.from_private_bytes(b'{"tv_device_keys":2}')
    assert "upgrade" in (info.value.hint or "")


def test_repr_does_not_leak_private_keys() -> None:
    keys = DeviceKeys.generate()
    private = DeviceKeys.from_private_bytes(keys.private_bytes()).private_bytes().decode()
    sign_secret = private.split('"sign":"')[1].split('"')[0]
    assert sign_secret not in repr(keys)
    assert keys.fingerprint() in repr(keys)


def test_exchange_agrees_between_two_devices() -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    a, b = DeviceKeys.generate(), DeviceKeys.generate()
    a_pub = X25519PublicKey.from_public_bytes(_raw(a.public_bundle()["box"]))
    b_pub = X25519PublicKey.from_public_bytes(_raw(b.public_bundle()["box"]))
    assert a.exchange(b_pub) == b.exchange(a_pub)


def test_save_writes_mode_0600_and_load_round_trips(tmp_path: Path) -> None:
    keys = DeviceKeys.generate()
    path = tmp_path / "sub" / "device.key"
    keys.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert DeviceKeys.load(path).public_bundle() == keys.public_bundle()
    assert [p.name for p in path.parent.iterdir()] == ["device.key"]  # no temporary file left behind


def test_save_is_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        DeviceKeys.generate().save(tmp_path / "k")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_save_refuses_to_replace_a_key_unless_told(tmp_path: Path) -> None:
    path = tmp_path / "k"
    first, second = DeviceKeys.generate(), DeviceKeys.generate()
    first.save(path)
    with pytest.raises(ConflictState):
        second.save(path)
    assert DeviceKeys.load(path).public_bundle() == first.public_bundle()
    second.save(path, overwrite=True)
    assert DeviceKeys.load(path).public_bundle() == second.public_bundle()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_load_refuses_a_file_others_can_access(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k"
    DeviceKeys.generate().save(path)
    path.chmod(mode)
    with pytest.raises(InsecureKeyFile) as info:
        DeviceKeys.load(path)
    assert f"{mode:04o}" in info.value.message
    assert f"chmod 600 {path}" in (info.value.hint or "")


def test_load_accepts_owner_read_only(tmp_path: Path) -> None:
    path = tmp_path / "k"
    keys = DeviceKeys.generate()
    keys.save(path)
    path.chmod(0o400)
    assert DeviceKeys.load(path).public_bundle() == keys.public_bundle()


def test_load_of_a_missing_file_says_to_enrol(tmp_path: Path) -> None:
    with pytest.raises(NotFound) as info:
        DeviceKeys.load(tmp_path / "absent")
    assert "enrol" in (info.value.hint or "")


def test_load_does_not_follow_a_symlink(tmp_path: Path) -> None:
    DeviceKeys.generate().save(tmp_path / "real")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(InvalidInput):
        DeviceKeys.load(tmp_path / "link")


def test_fingerprint_is_short_stable_and_distinct() -> None:
    keys = DeviceKeys.generate()
    fp = fingerprint(keys.public_bundle()["sign"])
    assert fp == fingerprint(keys.public_bundle()["sign"]) == keys.fingerprint()
    assert len(fp) == 24 and fp.count("-") == 4
    assert all(c in "0123456789abcdef-" for c in fp)
    assert fp != DeviceKeys.generate().fingerprint()


@pytest.mark.parametrize("bad", ["", "AAAA", "not base64!", "A" * 44])
def test_fingerprint_refuses_a_malformed_key(bad: str) -> None:
    with pytest.raises(InvalidInput):
        fingerprint(bad)
