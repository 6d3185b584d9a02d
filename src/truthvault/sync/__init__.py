"""The sync client: pushes a vault's queued changes to a hub and pulls the hub's changes."""

from __future__ import annotations

from ._enrol import Enrolment, enrol_vault, recovery_keyring, rejoin_hub
from ._syncer import CheckResult, Progress, Syncer, SyncStats
from ._tls import cert_fingerprint, normalize_fingerprint, pin_certificate, pinned_context
from ._transport import HubClient, SigningAuth, check_hub_url, enroll

__all__ = [
    "CheckResult",
    "Enrolment",
    "HubClient",
    "Progress",
    "SigningAuth",
    "SyncStats",
    "Syncer",
    "cert_fingerprint",
    "check_hub_url",
    "enrol_vault",
    "enroll",
    "normalize_fingerprint",
    "pin_certificate",
    "pinned_context",
    "recovery_keyring",
    "rejoin_hub",
]
