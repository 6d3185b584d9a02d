"""The governed kernel: every change as an action with a versioned contract, checked by
policy, approved by the user when it is risky, and recorded in a tamper-evident audit log.

``Kernel.run(name, input, actor=...)`` is the one path; the command line, the hub's
``POST /v1/actions/{name}`` and every later face call it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names as _lazy_names
from ._audit import (
    ENTRY_FORMAT,
    AuditBatchTaken,
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
from ._broker import BrokerEvent, InputBroker, event_detail, hash_pin
from ._broker_store import (
    KINDS,
    REQUEST_COLUMNS,
    STATUSES,
    BrokerRequest,
    BrokerSettings,
    BrokerStore,
    PinRecord,
    request_from_row,
    request_row,
    status_rank,
    targets_from_json,
    targets_json,
)
from ._contracts import (
    BUILTIN_CONTRACTS,
    BreakingChange,
    Contract,
    ContractBook,
    breaking_changes,
    check_schema,
)
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
from ._policy import CedarPolicy, StoredPolicy, decision_key, role_of
from ._policy_compile import (
    CompiledPolicy,
    InvalidPolicy,
    PolicyRule,
    PolicyStore,
    PolicyVersion,
    builtin_rules,
    check_policy,
    compile_policy,
)
from ._policy_text import APPROVAL_KINDS, BUILTIN_POLICY, DEFAULT_POLICY, HARD_VERBS, SECURITY_DOMAINS
from ._ports import (
    AuditRecord,
    AuditSink,
    Broker,
    PolicyDecision,
    PolicyEngine,
    PolicyRequest,
)
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

if TYPE_CHECKING:
    from ._kernel import Kernel, input_hash
    from ._registry import ActionInput, ActionOutput, ActionSpec, Context, Registry

__all__ = [
    "APPROVAL_KINDS",
    "BUILTIN_CONTRACTS",
    "BUILTIN_POLICY",
    "DEFAULT_POLICY",
    "EMPTY_ROOT",
    "ENTRY_FORMAT",
    "HARD_VERBS",
    "KINDS",
    "REQUEST_COLUMNS",
    "SECURITY_DOMAINS",
    "STATUSES",
    "ActionConflict",
    "ActionError",
    "ActionForbidden",
    "ActionInput",
    "ActionNotFound",
    "ActionOutput",
    "ActionSpec",
    "Actor",
    "ApprovalRequired",
    "AuditBatchTaken",
    "AuditEntry",
    "AuditInconsistent",
    "AuditRecord",
    "AuditSink",
    "AuditTampered",
    "BreakingChange",
    "Broker",
    "BrokerEvent",
    "BrokerRequest",
    "BrokerSettings",
    "BrokerStore",
    "CedarPolicy",
    "Checkpoint",
    "CompiledPolicy",
    "Context",
    "Contract",
    "ContractBook",
    "DeviceBatch",
    "Frontier",
    "InputBroker",
    "InvalidPolicy",
    "Kernel",
    "MemoryTree",
    "NodeSource",
    "PinRecord",
    "PolicyDecision",
    "PolicyEngine",
    "PolicyRequest",
    "PolicyRule",
    "PolicyStore",
    "PolicyVersion",
    "Registry",
    "Risk",
    "StoredPolicy",
    "Target",
    "ValidationFailed",
    "breaking_changes",
    "builtin_rules",
    "check_policy",
    "check_schema",
    "compile_policy",
    "consistency_proof",
    "decision_key",
    "decode_entry",
    "encode_record",
    "event_detail",
    "hash_pin",
    "inclusion_proof",
    "input_hash",
    "leaf_hash",
    "merkle_root",
    "node_hash",
    "request_from_row",
    "request_row",
    "role_of",
    "root_of",
    "sign_batch",
    "sign_checkpoint",
    "status_rank",
    "targets_from_json",
    "targets_json",
    "verify_batch",
    "verify_checkpoint",
    "verify_consistency",
    "verify_inclusion",
]

#: the dispatcher and the registry load pydantic: imported when first asked for, so that a
#: client that only maps the kernel's errors does not pay for it
_LAZY = {
    "ActionInput": "._registry",
    "ActionOutput": "._registry",
    "ActionSpec": "._registry",
    "Context": "._registry",
    "Registry": "._registry",
    "Kernel": "._kernel",
    "input_hash": "._kernel",
}

__getattr__, __dir__ = _lazy_names(__name__, _LAZY, __all__)
