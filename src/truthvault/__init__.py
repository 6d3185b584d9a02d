"""truthvault: a local-first, cloud-augmented vault in which the user is the source of truth.

The public API, which docs/python-api.md shows in use::

    from truthvault import Vault

    with Vault.open("~/notes", source="user:me") as vault:
        vault.put("note", {"text": "milk"})

Names load when first used, so ``import truthvault`` (and every command of the CLI, which
imports it first) costs almost nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_names as _lazy_names
from .errors import (
    ConflictState,
    DecryptionFailed,
    Forbidden,
    HubReset,
    HubUnavailable,
    InvalidInput,
    InvalidSource,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ResyncRequired,
    StorageError,
    SyncIncomplete,
    TruthvaultError,
    Unauthorized,
)

if TYPE_CHECKING:
    from .clock import HybridClock
    from .hub import Hub
    from .model import Record, SyncItem
    from .sync import (
        CheckResult,
        HubClient,
        Syncer,
        SyncStats,
        connect,
        enrol_vault,
        join_with_token,
        syncer_for,
    )
    from .truth import Outcome, TruthLevel, is_higher_truth
    from .vault import Event, Vault, VaultRecord, WriteResult

__version__ = "0.1.0"

#: each lazily loaded name and the module that defines it
_LAZY = {
    "HybridClock": ".clock",
    "Hub": ".hub",
    "Record": ".model",
    "SyncItem": ".model",
    "CheckResult": ".sync",
    "HubClient": ".sync",
    "SyncStats": ".sync",
    "Syncer": ".sync",
    "connect": ".sync",
    "enrol_vault": ".sync",
    "join_with_token": ".sync",
    "syncer_for": ".sync",
    "Outcome": ".truth",
    "TruthLevel": ".truth",
    "is_higher_truth": ".truth",
    "Event": ".vault",
    "Vault": ".vault",
    "VaultRecord": ".vault",
    "WriteResult": ".vault",
}

__all__ = [
    "CheckResult",
    "ConflictState",
    "DecryptionFailed",
    "Event",
    "Forbidden",
    "Hub",
    "HubClient",
    "HubReset",
    "HubUnavailable",
    "HybridClock",
    "InvalidInput",
    "InvalidSource",
    "NotFound",
    "Outcome",
    "PayloadTooLarge",
    "RateLimited",
    "Record",
    "ResyncRequired",
    "StorageError",
    "SyncIncomplete",
    "SyncItem",
    "SyncStats",
    "Syncer",
    "TruthLevel",
    "TruthvaultError",
    "Unauthorized",
    "Vault",
    "VaultRecord",
    "WriteResult",
    "__version__",
    "connect",
    "enrol_vault",
    "is_higher_truth",
    "join_with_token",
    "syncer_for",
]


__getattr__, __dir__ = _lazy_names(__name__, _LAZY, __all__)
