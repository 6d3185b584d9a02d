"""Keys derived from a tenant's data key for purposes other than sealing payloads.

HKDF-SHA256 (RFC 5869) on the standard library's HMAC: the same bytes as ``cryptography``'s
``HKDF`` (a test checks it), without loading ``cryptography`` into every command that runs an
action (the derivation happens once per key and process).
"""

from __future__ import annotations

import hmac

__all__ = ["approval_seal_key", "hkdf_sha256", "input_hash_key"]

#: what an input-hash key is for, so that it never equals a key derived for anything else
_INPUT_HASH_INFO = b"truthvault input hash v1\n"
#: ... and what an approval-seal key is for
_APPROVAL_SEAL_INFO = b"truthvault approval seal v1\n"


def hkdf_sha256(ikm: bytes, info: bytes, length: int = 32, salt: bytes = b"") -> bytes:
    """HKDF-SHA256 of ``ikm`` (RFC 5869): extract with ``salt`` (zeros when empty), expand with
    ``info`` to ``length`` bytes (at most 255 * 32)."""
    if not 0 < length <= 255 * 32:
        raise ValueError("HKDF-SHA256 gives 1 to 8160 bytes")
    prk = hmac.digest(salt or bytes(32), ikm, "sha256")
    out, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.digest(prk, block + info + bytes((counter,)), "sha256")
        out += block
    return out[:length]


def input_hash_key(data_key: bytes, tenant_id: str) -> bytes:
    """The key an action's input is hashed under for ``tenant_id``, from one of its data keys:
    every device holding that data key derives the same, the hub (which never holds one) none."""
    return hkdf_sha256(data_key, _INPUT_HASH_INFO + tenant_id.encode())


def approval_seal_key(data_key: bytes, tenant_id: str) -> bytes:
    """The key ``tenant_id``'s devices seal approval decisions under, from one of its data keys
    (a key of its own, never the input-hash key: a seal is no input hash)."""
    return hkdf_sha256(data_key, _APPROVAL_SEAL_INFO + tenant_id.encode())
