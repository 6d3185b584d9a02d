"""The governed kernel: every change as an action with a versioned contract, checked by
policy, approved by the user when it is risky, and recorded in a tamper-evident audit log.

``Kernel.run(name, input, actor=...)`` is the one path; the command line, the hub's
``POST /v1/actions/{name}`` and every later face call it.
"""

from __future__ import annotations

from ._audit import (
    ENTRY_FORMAT,
    AuditEntry,
    AuditInconsistent,
    AuditTampered,
    Checkpoint,
    DeviceBatch,
    decode_entry,
    encode_record,
    sign_batch,
    sign_checkpoint,
    verify_batch,
    verify_checkpoint,
)
from ._kernel import Kernel, input_hash
from ._merkle import (
    EMPTY_ROOT,
    Frontier,
    MemoryTree,
    NodeSource,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)
from ._merkle import root as merkle_root
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
    "EMPTY_ROOT",
    "ENTRY_FORMAT",
    "ActionConflict",
    "ActionError",
    "ActionForbidden",
    "ActionNotFound",
    "ActionSpec",
    "Actor",
    "ApprovalRequired",
    "AuditEntry",
    "AuditInconsistent",
    "AuditRecord",
    "AuditSink",
    "AuditTampered",
    "Broker",
    "Checkpoint",
    "Context",
    "DeviceBatch",
    "Frontier",
    "Kernel",
    "MemoryTree",
    "NodeSource",
    "PolicyDecision",
    "PolicyEngine",
    "PolicyRequest",
    "Registry",
    "Risk",
    "Target",
    "ValidationFailed",
    "consistency_proof",
    "decode_entry",
    "encode_record",
    "inclusion_proof",
    "input_hash",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "root_of",
    "sign_batch",
    "sign_checkpoint",
    "verify_batch",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
]
