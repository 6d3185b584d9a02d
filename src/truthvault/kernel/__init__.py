"""The governed kernel: every change as an action with a versioned contract, checked by
policy, approved by the user when it is risky, and recorded in a tamper-evident audit log.

``Kernel.run(name, input, actor=...)`` is the one path; the command line, the hub's
``POST /v1/actions/{name}`` and every later face call it.
"""

from __future__ import annotations

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
    "Context",
    "Kernel",
    "PolicyDecision",
    "PolicyEngine",
    "PolicyRequest",
    "Registry",
    "Risk",
    "Target",
    "ValidationFailed",
    "input_hash",
]
