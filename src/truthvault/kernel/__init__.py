"""The governed kernel: every change as an action with a versioned contract, checked by
policy, approved by the user when it is risky, and recorded in a tamper-evident audit log.

``Kernel.run(name, input, actor=...)`` is the one path; the command line, the hub's
``POST /v1/actions/{name}`` and every later face call it.
"""

from __future__ import annotations

from ._contracts import (
    BUILTIN_CONTRACTS,
    BreakingChange,
    Contract,
    ContractBook,
    breaking_changes,
    check_schema,
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
    "BUILTIN_CONTRACTS",
    "ActionConflict",
    "ActionError",
    "ActionForbidden",
    "ActionNotFound",
    "ActionSpec",
    "Actor",
    "ApprovalRequired",
    "AuditRecord",
    "AuditSink",
    "BreakingChange",
    "Broker",
    "Context",
    "Contract",
    "ContractBook",
    "Kernel",
    "PolicyDecision",
    "PolicyEngine",
    "PolicyRequest",
    "Registry",
    "Risk",
    "Target",
    "ValidationFailed",
    "breaking_changes",
    "check_schema",
    "input_hash",
]
