"""Pure cryptography for truthvault: device keys, request signing, payload encryption, key wrapping.

No I/O except ``DeviceKeys.save`` and ``DeviceKeys.load``. Everything is built on ``cryptography``
primitives (Ed25519, X25519, HKDF-SHA256, AES-256-GCM, scrypt); nothing here invents one.
"""

from __future__ import annotations

import typing

from .._lazy import lazy_names as _lazy_names

if typing.TYPE_CHECKING:
    from ._derive import approval_seal_key, hkdf_sha256, input_hash_key
    from ._files import read_private, write_private
    from ._keys import (
        DeviceKeys,
        fingerprint,
    )
    from ._payload import (
        Keyring,
        is_sealed,
        open_sealed,
        opener,
        seal,
        sealer,
    )
    from ._signing import (
        DEFAULT_WINDOW_S,
        SIGNATURE_HEADERS,
        NonceCache,
        QueryLike,
        SignedRequest,
        canonical_request,
        claimed_device,
        sign_request,
        verify_request,
    )
    from ._wrap import (
        MIN_PASSPHRASE_LENGTH,
        unwrap_for_device,
        unwrap_with_passphrase,
        wrap_for_device,
        wrap_with_passphrase,
    )

#: each name and the module that defines it, imported on first use: the vault needs only the
#: keyring, and the signing and wrapping primitives cost every command of the CLI to load
_LAZY = {
    "hkdf_sha256": "._derive",
    "input_hash_key": "._derive",
    "approval_seal_key": "._derive",
    "DeviceKeys": "._keys",
    "fingerprint": "._keys",
    "read_private": "._files",
    "write_private": "._files",
    "Keyring": "._payload",
    "is_sealed": "._payload",
    "open_sealed": "._payload",
    "opener": "._payload",
    "seal": "._payload",
    "sealer": "._payload",
    "DEFAULT_WINDOW_S": "._signing",
    "SIGNATURE_HEADERS": "._signing",
    "NonceCache": "._signing",
    "QueryLike": "._signing",
    "SignedRequest": "._signing",
    "canonical_request": "._signing",
    "claimed_device": "._signing",
    "sign_request": "._signing",
    "verify_request": "._signing",
    "MIN_PASSPHRASE_LENGTH": "._wrap",
    "unwrap_for_device": "._wrap",
    "unwrap_with_passphrase": "._wrap",
    "wrap_for_device": "._wrap",
    "wrap_with_passphrase": "._wrap",
}

__all__ = [
    "DEFAULT_WINDOW_S",
    "MIN_PASSPHRASE_LENGTH",
    "SIGNATURE_HEADERS",
    "DeviceKeys",
    "Keyring",
    "NonceCache",
    "QueryLike",
    "SignedRequest",
    "approval_seal_key",
    "canonical_request",
    "claimed_device",
    "fingerprint",
    "hkdf_sha256",
    "input_hash_key",
    "is_sealed",
    "open_sealed",
    "opener",
    "read_private",
    "seal",
    "sealer",
    "sign_request",
    "unwrap_for_device",
    "unwrap_with_passphrase",
    "verify_request",
    "wrap_for_device",
    "wrap_with_passphrase",
    "write_private",
]


__getattr__, __dir__ = _lazy_names(__name__, _LAZY, __all__)
