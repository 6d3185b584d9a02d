"""HKDF-SHA256 on the standard library gives what ``cryptography``'s HKDF gives."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from truthvault.crypto import hkdf_sha256, input_hash_key


@pytest.mark.parametrize("length", [1, 31, 32, 33, 64, 100])
@pytest.mark.parametrize("salt", [b"", b"salt", bytes(80)])
def test_hkdf_matches_cryptography(length: int, salt: bytes) -> None:
    ikm, info = bytes(range(32)), b"truthvault test\n"
    theirs = HKDF(algorithm=hashes.SHA256(), length=length, salt=salt or None, info=info).derive(ikm)
    assert hkdf_sha256(ikm, info, length, salt) == theirs


def test_an_input_hash_key_depends_on_the_data_key_and_the_tenant() -> None:
    a, b = bytes(32), bytes([1]) + bytes(31)
    keys = {input_hash_key(a, "t1"), input_hash_key(a, "t2"), input_hash_key(b, "t1")}
    assert len(keys) == 3 and all(len(k) == 32 for k in keys)
    assert a not in keys  # never the data key itself
    with pytest.raises(ValueError):
        hkdf_sha256(a, b"", 0)
