"""Pure cryptography for truthvault: device keys, request signing, payload encryption, key wrapping.

No I/O except ``DeviceKeys.save`` and ``DeviceKeys.load``. Everything is built on ``cryptography``
primitives (Ed25519, X25519, HKDF-SHA256, AES-256-GCM, scrypt); nothing here invents one.
"""

from __future__ import annotations

from ._keys import DeviceKeys, fingerprint
from ._payload import Keyring, is_sealed, open_sealed, opener, seal, sealer
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

__all__ = [
    "DEFAULT_WINDOW_S",
    "MIN_PASSPHRASE_LENGTH",
    "SIGNATURE_HEADERS",
    "DeviceKeys",
    "Keyring",
    "NonceCache",
    "QueryLike",
    "SignedRequest",
    "canonical_request",
    "claimed_device",
    "fingerprint",
    "is_sealed",
    "open_sealed",
    "opener",
    "seal",
    "sealer",
    "sign_request",
    "unwrap_for_device",
    "unwrap_with_passphrase",
    "verify_request",
    "wrap_for_device",
    "wrap_with_passphrase",
]
