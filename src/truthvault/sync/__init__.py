"""The sync client: pushes a vault's queued changes to a hub and pulls the hub's changes."""

from __future__ import annotations

from ._syncer import CheckResult, Progress, Syncer, SyncStats
from ._transport import HubClient, SigningAuth, enroll

__all__ = ["CheckResult", "HubClient", "Progress", "SigningAuth", "SyncStats", "Syncer", "enroll"]
