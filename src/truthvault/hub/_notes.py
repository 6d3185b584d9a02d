"""The background writer of pull events and last-seen times.

Pull events and last-seen times are noted in memory and written in the background, so a pull
is a pure read (one-change pulls stay well under 2 ms). A crash loses at most the last half
second of SYNC_PULL events, never sync data.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping

from ..model import encode
from ._port import now
from ._sql import SqlDatabase

__all__ = ["INSERT_EVENTS", "PullNotes"]

log = logging.getLogger("truthvault.hub")
#: how often noted pull events are written
_NOTES_EVERY_S = 0.5
#: How long a device's last_seen_at may lag before a pull writes it again (pulls are frequent).
_SEEN_EVERY_S = 30.0

INSERT_EVENTS = (
    "INSERT INTO sync_events (tenant_pk, type, at, device_id, entity_id, detail) VALUES (?, ?, ?, ?, ?, ?)"
)


class PullNotes:
    """Pull events and last-seen times, kept in memory and written by a thread of their own."""

    def __init__(self, database: SqlDatabase) -> None:
        self._database = database
        self._seen: dict[str, float] = {}
        self._seen_lock = threading.Lock()
        self._events: list[tuple[int, str, str, str, str | None, str]] = []
        self._last_seen: dict[str, str] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None

    def note(self, pk: int, device_id: str, detail: Mapping[str, object] | None) -> None:
        """Note a pull (see :meth:`~._port.SyncStorage.note_pull`)."""
        if detail is None:
            if not self._seen_due(device_id):
                return
            with self._lock:
                self._last_seen[device_id] = now()
        else:
            at = now()
            with self._lock:
                self._events.append((pk, "SYNC_PULL", at, device_id, None, encode(detail).decode()))
                if self._seen_due(device_id):
                    self._last_seen[device_id] = at
        if self._thread is None:
            self._start()

    def flush(self) -> None:
        """Write the pull events and last-seen times noted so far."""
        with self._lock:
            events, self._events = self._events, []
            seen, self._last_seen = self._last_seen, {}
        if not events and not seen:
            return
        with self._database.write_note() as db:
            if events:
                db.executemany(INSERT_EVENTS, events)
            if seen:
                db.executemany(
                    "UPDATE devices SET last_seen_at = ? WHERE id = ?", [(at, d) for d, at in seen.items()]
                )

    def stop(self) -> None:
        """Write what is noted and stop the background writer (before the database closes)."""
        self._stop = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        self.flush()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._loop, name="truthvault-notes", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop:
            self._wake.wait(_NOTES_EVERY_S)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the next round retries; a hub must not die for a note
                log.warning("could not write pull events", exc_info=True)

    def _seen_due(self, device_id: str) -> bool:
        """True (and noted) when a device's last_seen_at is due to be written again."""
        at = time.monotonic()
        with self._seen_lock:
            if at - self._seen.get(device_id, -_SEEN_EVERY_S) < _SEEN_EVERY_S:
                return False
            self._seen[device_id] = at
            return True
