"""Moves changes between a vault and a hub: the push queue out, the pull cursor in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import ResyncRequired, StorageError
from ..vault import Vault
from ._transport import HubClient

__all__ = ["CheckResult", "Progress", "SyncStats", "Syncer"]

#: called with (done, total) as work advances; total may grow while pulling
Progress = Callable[[int, int], None]


@dataclass(slots=True)
class SyncStats:
    """What one sync did."""

    pushed: int = 0
    push_outcomes: dict[str, int] | None = None
    pulled: int = 0
    records: int = 0
    resynced: bool = False
    cursor: int = 0
    checksum: str | None = None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A comparison of the device's state with the hub's."""

    local: str
    hub: str | None
    cursor: int
    pending: int

    @property
    def in_sync(self) -> bool:
        return self.pending == 0 and self.hub == self.local


class Syncer:
    """Pushes a vault's queued changes to a hub and pulls the hub's changes into it."""

    def __init__(self, vault: Vault, client: HubClient, *, batch: int = 1000) -> None:
        self.vault = vault
        self.client = client
        self.batch = batch

    def push(self, progress: Progress | None = None, stats: SyncStats | None = None) -> SyncStats:
        """Push every queued change, a batch at a time, until the queue is empty."""
        stats = stats or SyncStats()
        outcomes: dict[str, int] = stats.push_outcomes or {}
        total = self.vault.pending_count()
        previous: tuple[object, ...] | None = None
        while (batch := self.vault.pending_batch(self.batch)) is not None:
            fingerprint = (
                [(i.entity_id, i.mutation) for i in batch.items],
                [(d.id, d.status) for d in batch.decisions],
            )
            if fingerprint == previous:
                # the hub took the batch but the queue did not move: stop rather than spin
                raise StorageError("the push queue did not advance after the hub acknowledged a batch")
            previous = fingerprint
            try:
                response = self.client.push(batch)
            except ResyncRequired:
                self.resync(progress, stats)
                continue
            self.vault.ack(batch, response)
            for result in response.results:
                outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
            stats.pushed += len(batch.items)
            if progress:
                progress(stats.pushed, max(total, stats.pushed))
            if not batch.items and not batch.decisions:
                break
        stats.push_outcomes = outcomes
        return stats

    def pull(
        self, progress: Progress | None = None, wait: float = 0, stats: SyncStats | None = None
    ) -> SyncStats:
        """Pull every change after the vault's cursor; with ``wait``, wait for the first."""
        stats = stats or SyncStats()
        if self.vault.resyncing:
            return self._finish_resync(progress, stats)
        try:
            return self._pull_pages(progress, stats, wait)
        except ResyncRequired:
            return self.resync(progress, stats)

    def sync(self, progress: Progress | None = None) -> SyncStats:
        """Push, then pull: afterwards the vault holds the hub's state plus nothing pending."""
        stats = self.push(progress)
        return self.pull(progress, stats=stats)

    def resync(self, progress: Progress | None = None, stats: SyncStats | None = None) -> SyncStats:
        """Re-sync from scratch: pull the hub's whole state and drop what it purged."""
        stats = stats or SyncStats()
        stats.resynced = True
        self.vault.begin_resync()
        return self._finish_resync(progress, stats)

    def _finish_resync(self, progress: Progress | None, stats: SyncStats) -> SyncStats:
        # the vault notes every entity pulled while it is re-syncing; resumable after a crash
        self._pull_pages(progress, stats)
        self.vault.finish_resync()
        return stats

    def _pull_pages(self, progress: Progress | None, stats: SyncStats, wait: float = 0) -> SyncStats:
        """Pull and apply pages from the vault's cursor until the hub has no more."""
        while True:
            page = self.client.pull(self.vault.cursor, self.batch, wait)
            wait = 0
            self.vault.apply_pull(page)
            stats.pulled += len(page.items)
            stats.records += len(page.records)
            stats.cursor = page.cursor
            if progress:
                progress(page.cursor, max(page.head, page.cursor))
            if not page.has_more:
                stats.checksum = page.checksum
                return stats

    def check(self) -> CheckResult:
        """Compare the vault's checksum with the hub's at the vault's cursor (after a pull)."""
        stats = self.pull()
        return CheckResult(
            local=self.vault.checksum(),
            hub=stats.checksum,
            cursor=self.vault.cursor,
            pending=self.vault.pending_count(),
        )
