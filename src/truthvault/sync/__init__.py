"""The sync client: pushes a vault's queued changes to a hub and pulls the hub's changes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names as _lazy_names
from ._approvals import BrokerRemote, BrokerSync, HttpBrokerRemote, sync_approvals
from ._audit import AuditStep, InclusionResult, audit_step
from ._connect import Joined, connect, device_keys, join_with_token, key_exchange, syncer_for
from ._contracts import add_contract, sync_contracts
from ._doctor import DoctorCheck, diagnose
from ._enrol import Enrolment, enrol_vault, recovery_keyring, rejoin_hub
from ._keys import KeyExchange
from ._policy import fetch_policy, push_policy, set_tenant_policy, sync_policy
from ._syncer import CheckResult, Progress, Syncer, SyncStats
from ._tls import cert_fingerprint, normalize_fingerprint, pin_certificate, pinned_context
from ._transport import HubClient, SigningAuth, check_hub_url, enroll
from ._webhooks import (
    HttpWebhookRemote,
    WebhookRemote,
    WebhookSecret,
    register_webhook,
    remove_webhook,
    sync_webhooks,
)

if TYPE_CHECKING:
    from ._actions import SYNC_ACTIONS, device_kernel
    from ._rotation import KeyRotation, device_engine, rotate_data_key, unfinished_rotations

__all__ = [
    "SYNC_ACTIONS",
    "AuditStep",
    "BrokerRemote",
    "BrokerSync",
    "CheckResult",
    "DoctorCheck",
    "Enrolment",
    "HttpBrokerRemote",
    "HttpWebhookRemote",
    "HubClient",
    "InclusionResult",
    "Joined",
    "KeyExchange",
    "KeyRotation",
    "Progress",
    "SigningAuth",
    "SyncStats",
    "Syncer",
    "WebhookRemote",
    "WebhookSecret",
    "add_contract",
    "audit_step",
    "cert_fingerprint",
    "check_hub_url",
    "connect",
    "device_engine",
    "device_kernel",
    "device_keys",
    "diagnose",
    "enrol_vault",
    "enroll",
    "fetch_policy",
    "join_with_token",
    "key_exchange",
    "normalize_fingerprint",
    "pin_certificate",
    "pinned_context",
    "push_policy",
    "recovery_keyring",
    "register_webhook",
    "rejoin_hub",
    "remove_webhook",
    "rotate_data_key",
    "set_tenant_policy",
    "sync_approvals",
    "sync_contracts",
    "sync_policy",
    "sync_webhooks",
    "syncer_for",
    "unfinished_rotations",
]

#: the device's hub actions load pydantic, its workflows the kernel: imported when first asked for
__getattr__, __dir__ = _lazy_names(
    __name__,
    {
        "SYNC_ACTIONS": "._actions",
        "device_kernel": "._actions",
        **{
            n: "._rotation"
            for n in ("KeyRotation", "device_engine", "rotate_data_key", "unfinished_rotations")
        },
    },
    __all__,
)
