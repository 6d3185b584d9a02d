"""The device vault: a local SQLite store of entities under the truth hierarchy.

:class:`Vault` is the user's API; ``vault.replica`` (a :class:`Replica`) is its sync side.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names as _lazy_names
from ._apply import Applied, Applier
from ._audit import DeviceAudit
from ._codec import VaultRecord, payload_of
from ._db import DB_NAME, EVENT_TYPES, KEY_FILE, Event, WriteResult
from ._ids import new_id
from ._offline import OfflineState, Parked, ParkStats
from ._policy import VaultPolicies, check_setter, vault_policies
from ._pull import LOCAL_ONLY_REASON, ApplyStats, Overruled
from ._refusals import Refusal
from ._replica import Replica
from ._resync import RESYNC_REASON, ResyncState
from ._schema import HEAD_REVISION
from ._vault import Vault
from ._writes import MAX_PAYLOAD_BYTES

if TYPE_CHECKING:
    from ._actions import DEVICE_ACTIONS, EntitiesResult, EntityResult, RecordResult, Written
    from ._automations import Automations, RuleEntry
    from ._backup import (
        BACKUP_KEY_FILE,
        backup_key,
        open_backup,
        open_backup_to,
        read_key,
        schedule_of,
        set_schedule,
    )
    from ._broker import VaultBrokerStore
    from ._workflows import WORKFLOWS_FILE, vault_engine

__all__ = [
    "BACKUP_KEY_FILE",
    "DB_NAME",
    "DEVICE_ACTIONS",
    "EVENT_TYPES",
    "HEAD_REVISION",
    "KEY_FILE",
    "LOCAL_ONLY_REASON",
    "MAX_PAYLOAD_BYTES",
    "RESYNC_REASON",
    "WORKFLOWS_FILE",
    "Applied",
    "Applier",
    "ApplyStats",
    "Automations",
    "DeviceAudit",
    "EntitiesResult",
    "EntityResult",
    "Event",
    "OfflineState",
    "Overruled",
    "ParkStats",
    "Parked",
    "RecordResult",
    "Refusal",
    "Replica",
    "ResyncState",
    "RuleEntry",
    "Vault",
    "VaultBrokerStore",
    "VaultPolicies",
    "VaultRecord",
    "WriteResult",
    "Written",
    "backup_key",
    "check_setter",
    "new_id",
    "open_backup",
    "open_backup_to",
    "payload_of",
    "read_key",
    "schedule_of",
    "set_schedule",
    "vault_engine",
    "vault_policies",
]

#: the device actions and their result models load pydantic, the broker's store the kernel:
#: imported when first asked for
_LAZY = {
    **{
        name: "._actions"
        for name in ("DEVICE_ACTIONS", "EntitiesResult", "EntityResult", "RecordResult", "Written")
    },
    "VaultBrokerStore": "._broker",
    # automations and workflows load pydantic, and DBOS when an engine launches
    "Automations": "._automations",
    "RuleEntry": "._automations",
    "vault_engine": "._workflows",
    "WORKFLOWS_FILE": "._workflows",
    **{
        n: "._backup"
        for n in (
            "BACKUP_KEY_FILE",
            "backup_key",
            "open_backup",
            "open_backup_to",
            "read_key",
            "schedule_of",
            "set_schedule",
        )
    },
}

__getattr__, __dir__ = _lazy_names(__name__, _LAZY, __all__)
