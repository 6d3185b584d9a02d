"""The governed kernel: every change as an action with a versioned contract, checked by
policy, approved by the user when it is risky, and recorded in a tamper-evident audit log.

``Kernel.run(name, input, actor=...)`` is the one path; the command line, the hub's
``POST /v1/actions/{name}`` and every later face call it.
"""

from __future__ import annotations

from ._broker import BrokerEvent, InputBroker, event_detail, hash_pin
from ._broker_store import (
    KINDS,
    STATUSES,
    BrokerRequest,
    BrokerSettings,
    BrokerStore,
    PinRecord,
    status_rank,
    targets_from_json,
    targets_json,
)
from ._kernel import Kernel, input_hash
from ._ports import (
    AuditRecord,
    AuditSink,
    Broker,
    PolicyDecision,
    PolicyEngine,
    PolicyRequest,
)
from ._registry import ActionSpec, Context, Registry
from ._types import (
    ActionConflict,
    ActionError,
    ActionForbidden,
    ActionNotFound,
    Actor,
    ApprovalRequired,
    Risk,
    Target,
    ValidationFailed,
)

__all__ = [
    "KINDS",
    "STATUSES",
    "ActionConflict",
    "ActionError",
    "ActionForbidden",
    "ActionNotFound",
    "ActionSpec",
    "Actor",
    "ApprovalRequired",
    "AuditRecord",
    "AuditSink",
    "Broker",
    "BrokerEvent",
    "BrokerRequest",
    "BrokerSettings",
    "BrokerStore",
    "Context",
    "InputBroker",
    "Kernel",
    "PinRecord",
    "PolicyDecision",
    "PolicyEngine",
    "PolicyRequest",
    "Registry",
    "Risk",
    "Target",
    "ValidationFailed",
    "event_detail",
    "hash_pin",
    "input_hash",
    "status_rank",
    "targets_from_json",
    "targets_json",
]
