"""The sync client: pushes a vault's queued changes to a hub and pulls the hub's changes."""

from __future__ import annotations

from ._syncer import CheckResult, Progress, Syncer, SyncStats
from ._tls import cert_fingerprint, normalize_fingerprint, pin_certificate, pinned_context
from ._transport import HubClient, SigningAuth, check_hub_url, enroll

__all__ = [
    "CheckResult",
    "HubClient",
    "Progress",
    "SigningAuth",
    "SyncStats",
    "Syncer",
    "cert_fingerprint",
    "check_hub_url",
    "enroll",
    "normalize_fingerprint",
    "pin_certificate",
    "pinned_context",
]
