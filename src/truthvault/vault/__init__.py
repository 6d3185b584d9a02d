"""The device vault: a local SQLite store of entities under the truth hierarchy.

:class:`Vault` is the user's API; ``vault.replica`` (a :class:`Replica`) is its sync side.
"""

from __future__ import annotations

from ._apply import Applied, Applier
from ._audit import DeviceAudit
from ._codec import VaultRecord, payload_of
from ._db import DB_NAME, EVENT_TYPES, KEY_FILE, Event, WriteResult
from ._ids import new_id
from ._pull import LOCAL_ONLY_REASON, ApplyStats, Overruled
from ._refusals import Refusal
from ._replica import Replica
from ._resync import RESYNC_REASON, ResyncState
from ._schema import HEAD_REVISION
from ._vault import Vault
from ._writes import MAX_PAYLOAD_BYTES

__all__ = [
    "DB_NAME",
    "EVENT_TYPES",
    "HEAD_REVISION",
    "KEY_FILE",
    "LOCAL_ONLY_REASON",
    "MAX_PAYLOAD_BYTES",
    "RESYNC_REASON",
    "Applied",
    "Applier",
    "ApplyStats",
    "DeviceAudit",
    "Event",
    "Overruled",
    "Refusal",
    "Replica",
    "ResyncState",
    "Vault",
    "VaultRecord",
    "WriteResult",
    "new_id",
    "payload_of",
]
