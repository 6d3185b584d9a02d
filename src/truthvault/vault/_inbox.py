"""The automation inbox: each entity written (here or by sync) while an automation rule exists,
noted in the write's own transaction, for the runner to match against the rules.

The inbox keeps one row an entity, its newest write (the runner looks at the entity's current
version only), so it grows with the vault, not with each write, when no runner runs. While the
vault holds no rule of the user's (level 1: a rule an AI proposed runs only once accepted)
nothing is noted, and finding that out costs a query only when
another process has committed since (SQLite's data_version, read as the transaction began).
Writes made by automations are not noted: rules do not feed each other in a loop.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..model import SyncItem
    from ._db import VaultDB

__all__ = ["AUTOMATION_TYPE", "AutomationInbox"]

#: the entity type of an automation rule (see truthvault.kernel._automation)
AUTOMATION_TYPE = "automation"

_AUTOMATION_SOURCE = "automation:"


class AutomationInbox:
    """One vault's inbox; ``ready`` is set when a transaction that noted writes commits."""

    def __init__(self, db: VaultDB) -> None:
        self._db = db
        self._mark: tuple[int, int] | None = None
        self._watched = False
        self._noted = False
        self.ready = threading.Event()

    def note(self, items: Iterable[SyncItem]) -> None:
        """Note ``items`` (inside their write's transaction) when a rule may look at them."""
        items = list(items)
        if any(
            i.entity_type == AUTOMATION_TYPE and (i.truth_level == 1 or i.accepted_by_user) for i in items
        ):
            self._watched = True  # a rule written now: data_version does not move for our own writes
        mark = self._db.epoch()
        if mark != self._mark:
            self._mark = mark
            self._watched = (
                self._watched
                or self._db.conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM entities WHERE entity_type = ? AND deleted = 0 "
                    "AND truth_level = 1)",
                    (AUTOMATION_TYPE,),
                ).fetchone()[0]
                == 1
            )
        if not self._watched:
            return
        rows = [
            (i.entity_id, i.version)
            for i in items
            if not i.deleted
            and i.entity_type != AUTOMATION_TYPE
            and not i.origin_source.startswith(_AUTOMATION_SOURCE)
        ]
        if rows:
            conn = self._db.conn
            conn.executemany("DELETE FROM automation_inbox WHERE entity_id = ?", [(r[0],) for r in rows])
            conn.executemany("INSERT INTO automation_inbox (entity_id, version) VALUES (?, ?)", rows)
            self._noted = True

    def ended(self, committed: bool) -> None:
        """The write's transaction ended: wake the runner when what it noted committed."""
        if self._noted and committed:
            self.ready.set()
        self._noted = False
