"""The device vault: a local SQLite store of entities under the truth hierarchy."""

from __future__ import annotations

from ._base import EVENT_TYPES, Event, WriteResult
from ._codec import VaultRecord, payload_of
from ._entities import MAX_PAYLOAD_BYTES
from ._ids import new_id
from ._refusals import Refusal
from ._resync import RESYNC_REASON
from ._schema import HEAD_REVISION
from ._store import DB_NAME, KEY_FILE, Vault
from ._sync import LOCAL_ONLY_REASON, ApplyStats, Overruled

__all__ = [
    "DB_NAME",
    "EVENT_TYPES",
    "HEAD_REVISION",
    "KEY_FILE",
    "LOCAL_ONLY_REASON",
    "MAX_PAYLOAD_BYTES",
    "RESYNC_REASON",
    "ApplyStats",
    "Event",
    "Overruled",
    "Refusal",
    "Vault",
    "VaultRecord",
    "WriteResult",
    "new_id",
    "payload_of",
]
