"""The sync client: pushes a vault's queued changes to a hub and pulls the hub's changes."""

from __future__ import annotations

from ._audit import AuditStep, InclusionResult, audit_step
from ._connect import Joined, connect, device_keys, join_with_token, key_exchange, syncer_for
from ._enrol import Enrolment, enrol_vault, recovery_keyring, rejoin_hub
from ._keys import KeyExchange
from ._syncer import CheckResult, Progress, Syncer, SyncStats
from ._tls import cert_fingerprint, normalize_fingerprint, pin_certificate, pinned_context
from ._transport import HubClient, SigningAuth, check_hub_url, enroll

__all__ = [
    "AuditStep",
    "CheckResult",
    "Enrolment",
    "HubClient",
    "InclusionResult",
    "Joined",
    "KeyExchange",
    "Progress",
    "SigningAuth",
    "SyncStats",
    "Syncer",
    "audit_step",
    "cert_fingerprint",
    "check_hub_url",
    "connect",
    "device_keys",
    "enrol_vault",
    "enroll",
    "join_with_token",
    "key_exchange",
    "normalize_fingerprint",
    "pin_certificate",
    "pinned_context",
    "recovery_keyring",
    "rejoin_hub",
    "syncer_for",
]
