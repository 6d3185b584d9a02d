"""Moves changes between a vault and a hub: the push queue out, the pull cursor in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..crypto import DeviceKeys, Keyring
from ..errors import HubReset, ResyncRequired, StorageError
from ..model import PullResponse, PushRequest, PushResponse
from ..vault import Vault
from ._e2e import Unreadable, open_page, seal_batch
from ._keys import KeyExchange
from ._transport import HubClient, pages

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
    #: pulled payloads that did not decrypt (kept out of the vault, recorded as events)
    unreadable: list[Unreadable] = field(default_factory=list)


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

    def __init__(
        self, vault: Vault, client: HubClient, *, batch: int = 1000, device_keys: DeviceKeys | None = None
    ) -> None:
        self.vault = vault
        self.client = client
        self.batch = batch
        #: local-first tenants are end-to-end encrypted: payloads are sealed on the way out
        self.e2e = vault.vault_mode == "local_first"
        self.keys = KeyExchange(vault, client, device_keys)
        self._keyring: Keyring | None = None

    def _ring(self) -> Keyring:
        """The tenant keyring, fetched, created or shared once per Syncer (local-first only)."""
        if self._keyring is None:
            self._keyring = self.keys.ensure()
        return self._keyring

    def _send(self, batch: PushRequest) -> PushResponse:
        if self.e2e:
            batch = seal_batch(batch, self._ring(), self.vault.tenant_id)
        return self.client.push(batch)

    def _open(self, page: PullResponse, stats: SyncStats) -> PullResponse:
        """Decrypt a pulled page; an unknown key id fetches this device's keys once and retries."""
        if not self.e2e:
            return page

        def refresh() -> Keyring | None:
            refreshed = self.keys.refresh(force=True)
            if refreshed is not None:
                self._keyring = refreshed
            return refreshed

        opened, failed = open_page(page, self._ring(), self.vault.tenant_id, refresh)
        for f in failed:
            self.vault.add_event(
                "DECRYPTION_FAILED",
                f.entity_id,
                entity_type=f.entity_type,
                version=f.version,
                reason=f.reason,
                message=f.message,
                record_id=f.record_id,
            )
        stats.unreadable.extend(failed)
        return opened

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
                response = self._send(batch)
            except ResyncRequired:
                self.resync(progress, stats)
                continue
            except HubReset:
                self.resync(progress, stats, hub_reset=True)
                continue
            if batch.items and response.last_mutation > max(i.mutation or 0 for i in batch.items):
                # The hub has seen higher numbers from this device than this vault has given:
                # its answers of "duplicate" were for other changes. Number the queue above
                # them and push it again (what the hub does hold comes back as a duplicate
                # version, which writes nothing).
                self.vault.renumber_pending(response.last_mutation)
                previous = None
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
        except HubReset:
            return self.resync(progress, stats, hub_reset=True)

    def sync(self, progress: Progress | None = None) -> SyncStats:
        """Push, then pull: afterwards the vault holds the hub's state plus nothing pending."""
        if self.e2e:
            self._ring()  # keys first: a device without the tenant key moves nothing
        stats = self.push(progress)
        stats = self.pull(progress, stats=stats)
        if stats.resynced and self.vault.pending_count():
            self.push(progress, stats)  # what a reset hub lost goes back to it now
        return stats

    def resync(
        self, progress: Progress | None = None, stats: SyncStats | None = None, *, hub_reset: bool = False
    ) -> SyncStats:
        """Re-sync from scratch: pull the hub's whole state and drop what it purged (or, after
        a ``hub_reset``, queue what it lost to be pushed again)."""
        stats = stats or SyncStats()
        stats.resynced = True
        self.vault.begin_resync(hub_reset=hub_reset)
        return self._finish_resync(progress, stats)

    def _finish_resync(self, progress: Progress | None, stats: SyncStats) -> SyncStats:
        # the vault notes every entity pulled while it is re-syncing; resumable after a crash
        self._pull_pages(progress, stats)
        self.vault.finish_resync()
        return stats

    def _pull_pages(self, progress: Progress | None, stats: SyncStats, wait: float = 0) -> SyncStats:
        """Pull and apply pages from the vault's cursor until the hub has no more."""
        for page in pages(self.client, self.vault.cursor, self.batch, wait):
            stats.pulled += len(page.items)
            stats.records += len(page.records)
            self.vault.apply_pull(self._open(page, stats))
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
