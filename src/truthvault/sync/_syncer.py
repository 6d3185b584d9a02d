"""Moves changes between a vault and a hub: the push queue out, the pull cursor in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import msgspec

from ..crypto import DeviceKeys, Keyring
from ..errors import (
    DeviceRevoked,
    Forbidden,
    HubReset,
    InvalidInput,
    PayloadTooLarge,
    ResyncRequired,
    StorageError,
)
from ..kernel import Checkpoint
from ..model import PullResponse, PushRequest, PushResponse, Refused, SyncItem
from ..vault import Overruled, Vault
from ._approvals import BrokerSync, sync_approvals
from ._audit import audit_step
from ._contracts import fetch_contracts, sync_contracts
from ._e2e import Unreadable, open_page, seal_batch
from ._keys import KeyExchange
from ._policy import sync_policy
from ._transport import HubClient, pages
from ._webhooks import sync_webhooks

__all__ = ["CheckResult", "Progress", "SyncStats", "Syncer"]

#: called with (done, total) as work advances; total may grow while pulling
Progress = Callable[[int, int], None]

#: How many batches a push reads from the queue at once.
PLAN_BATCHES = 4
#: How many push batches' worth of items a pull page holds by default (5,000: the most a hub
#: gives by default).
PULL_PAGE_BATCHES = 5


def _fingerprint(batch: PushRequest) -> tuple[object, ...]:
    """What tells one push from the next: a queue that did not move yields the same again."""
    return ([(i.entity_id, i.mutation) for i in batch.items], [(d.id, d.status) for d in batch.decisions])


def _plain(batch: PushRequest) -> bool:
    """Whether a push holds only versions (no decisions, no kept versions, no bases), so that
    it can be split and its successors read before it is acknowledged."""
    return not batch.decisions and not batch.bases and not any(i.kept for i in batch.items)


@dataclass(slots=True)
class SyncStats:
    """What one sync did."""

    pushed: int = 0
    push_outcomes: dict[str, int] | None = None
    #: items pulled (echoes of this device's own pushes included) ...
    pulled: int = 0
    #: ... and how many of them changed something here (new versions from other devices)
    applied: int = 0
    records: int = 0
    #: entity contract versions fetched from the hub
    contracts: int = 0
    #: records new to this device (suggestions and conflicts kept elsewhere)
    new_records: int = 0
    #: versions of this device's that the hub had lost, sent again
    requeued: int = 0
    resynced: bool = False
    #: why it re-synced: "purged" (its cursor was behind the hub's purge horizon), "reset" (the
    #: hub lost history) or "asked"
    resync_reason: str | None = None
    cursor: int = 0
    checksum: str | None = None
    #: pulled payloads that did not decrypt (kept out of the vault, recorded as events)
    unreadable: list[Unreadable] = field(default_factory=list)
    #: pushed items the hub refused: (entity id, why); kept here, out of the queue
    refused_pushes: list[tuple[str, str]] = field(default_factory=list)
    #: pulled items and records this device would not take in (kept aside)
    refused_pulls: list[Refused] = field(default_factory=list)
    #: decisions made here that another device's decision, first at the hub, overruled
    overruled: list[Overruled] = field(default_factory=list)
    #: after a whole sync: what differs from the hub although nothing waits to be pushed
    #: ("entities", "records"); empty when this device holds what the hub holds
    diverged: list[str] = field(default_factory=list)
    #: the hub's records checksum at ``cursor`` (given with ``checksum``)
    records_checksum: str | None = None
    #: what the broker's step moved (approvals and requests for input); None: the hub has no broker
    approvals: BrokerSync | None = None
    #: webhook deliveries taken for the rules this device runs; None: it runs none (or no hub webhooks)
    webhooks: int | None = None
    #: queued items upcast to the newest version of their contract before the push (entity ids)
    upcast: list[str] = field(default_factory=list)
    #: queued items parked before the push (a newer major version broke theirs): (entity id, why)
    parked: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CheckResult:
    """A comparison of the device's state with the hub's."""

    local: str
    hub: str | None
    cursor: int
    pending: int
    local_records: str = ""
    hub_records: str | None = None
    #: items kept aside (refused by the hub, or by this device when pulled): they explain a difference
    refused: int = 0

    @property
    def in_sync(self) -> bool:
        return self.pending == 0 and self.hub == self.local and self.hub_records == self.local_records

    @property
    def differs(self) -> list[str]:
        """What differs from the hub: "entities", "records" (empty when in sync or pending)."""
        if self.pending:
            return []
        return [
            what
            for what, mine, theirs in (
                ("entities", self.local, self.hub),
                ("records", self.local_records, self.hub_records),
            )
            if mine != theirs
        ]


class Syncer:
    """Pushes a vault's queued changes to a hub and pulls the hub's changes into it."""

    def __init__(
        self,
        vault: Vault,
        client: HubClient,
        *,
        batch: int = 1000,
        page: int | None = None,
        device_keys: DeviceKeys | None = None,
    ) -> None:
        self.vault = vault
        #: the vault's sync side, which this syncer moves
        self.replica = vault.replica
        self.client = client
        #: items a push sends at most
        self.batch = batch
        #: items a pull asks for a page at most (a hub may answer fewer): by default PULL_PAGE_BATCHES
        #: push batches, as a page costs the device a transaction and the hub a request of its own
        self.page = page or PULL_PAGE_BATCHES * batch
        #: local-first tenants are end-to-end encrypted: payloads are sealed on the way out
        self.e2e = vault.vault_mode == "local_first"
        self.keys = KeyExchange(vault, client, device_keys)
        self._keyring: Keyring | None = None
        #: called with each page once the vault applied it (see :meth:`follow`)
        self._on_page: Callable[[PullResponse], None] | None = None
        #: the hub's audit checkpoint the last sync accepted (None: not checked)
        self.checkpoint: Checkpoint | None = None
        #: contract versions the last push fetched first (None: the hub has no contracts)
        self._fetched: int | None = 0

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
        if failed:  # kept, still sealed, to be applied once they open (truthvault dlq retry)
            from ._event_letters import keep_unreadable

            keep_unreadable(self.vault, failed)
        stats.unreadable.extend(failed)
        return opened

    def push(
        self, progress: Progress | None = None, stats: SyncStats | None = None, *, screen: bool = True
    ) -> SyncStats:
        """Push every queued change, a batch at a time, until the queue is empty.

        First (unless ``screen`` is false) the hub's new contract versions are fetched and the
        queue screened: what waits under a version a newer major version broke is upcast (when
        the contracts say how) or parked here, never pushed (``stats.upcast``, ``stats.parked``).

        The queue is read a few batches at a time (see :meth:`_plan`). Once the hub has answered
        one batch, the next goes out and the answered one is acknowledged while the hub works on
        it; the last of those read is in flight while the queue after it is read. So the
        device's work and the hub's overlap.
        """
        stats = stats or SyncStats()
        if screen:
            self._fetched = fetch_contracts(self.vault, self.client)
            screened = self.vault.offline.screen_queue()
            stats.upcast += screened.upcast
            stats.parked += screened.parked
        outcomes: dict[str, int] = stats.push_outcomes or {}
        total = self.replica.pending_count()
        previous: tuple[object, ...] | None = None
        limit = self.batch
        if self.e2e:
            self._ring()  # here, not first in the sending thread: it may write to the vault
        #: batches read from the queue, to send in order; and the push of the first, once sent
        planned: list[PushRequest] = []
        sent: Future[PushResponse] | None = None
        with ThreadPoolExecutor(1, thread_name_prefix="truthvault-push") as wire:
            while planned or (planned := self._plan(limit)):
                batch = planned.pop(0)
                sending = sent if sent is not None else wire.submit(self._send, batch)
                sent = None
                fingerprint = _fingerprint(batch)
                if fingerprint == previous:
                    # the hub took the batch but the queue did not move: stop rather than spin
                    sending.cancel()
                    raise StorageError("the push queue did not advance after the hub acknowledged a batch")
                previous = fingerprint
                if not planned and len(batch.items) == limit and _plain(batch):
                    # what follows, read while the hub works on this batch
                    planned = self._plan(limit, after=max(i.mutation or 0 for i in batch.items))
                try:
                    response = sending.result()
                except (ResyncRequired, HubReset, InvalidInput, PayloadTooLarge, Forbidden) as exc:
                    planned, previous = [], None
                    limit = self._recover(batch, exc, stats, limit, progress)
                    continue
                if batch.items and self._behind(batch, response):
                    # The hub has seen numbers from this device that this vault never had
                    # acknowledged: its answers of "duplicate" may be for other changes. Number the
                    # queue above them and push it again (what the hub does hold comes back as a
                    # duplicate version, which writes nothing).
                    planned, previous = [], None
                    self.replica.renumber_pending(response.last_mutation)
                    continue
                if planned:
                    # checked above: the hub's numbers are this vault's, so the next may go
                    sent = wire.submit(self._send, planned[0])
                self.replica.ack(batch, response)
                self._keep_refused(batch, response, stats)
                for result in response.results:
                    outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
                stats.pushed += len(batch.items)
                if progress:
                    progress(stats.pushed, max(total, stats.pushed))
                if not batch.items and not batch.decisions:
                    break
        stats.push_outcomes = outcomes
        return stats

    def _recover(
        self,
        batch: PushRequest,
        exc: ResyncRequired | HubReset | InvalidInput | PayloadTooLarge | Forbidden,
        stats: SyncStats,
        limit: int,
        progress: Progress | None,
    ) -> int:
        """Go on after the hub refused a push: re-sync when it asks, else set the item it will
        never take aside (see :meth:`_set_aside`); the batch size to go on with."""
        if isinstance(exc, ResyncRequired):
            stats.resync_reason = "purged"
            self.resync(progress, stats)  # the queue was rebuilt: the same batch may rightly go again
            return limit
        if isinstance(exc, HubReset):
            self.resync(progress, stats, hub_reset=True)
            return limit
        return self._set_aside(batch, exc, stats, limit)

    def _set_aside(
        self,
        batch: PushRequest,
        exc: InvalidInput | PayloadTooLarge | Forbidden,
        stats: SyncStats,
        limit: int,
    ) -> int:
        """Keep the item the hub will never take aside (``sync rejected``), so that it does not
        jam the queue, and return the batch size to go on with: smaller when the batch as a
        whole was over the hub's body limit. Raise ``exc`` when it names no item."""
        index = exc.item
        if index is None and isinstance(exc, PayloadTooLarge) and batch.items:
            if len(batch.items) > 1:
                return max(1, len(batch.items) // 2)  # send smaller batches
            index = 0  # one item alone is over it
        if index is None or isinstance(exc, DeviceRevoked) or not 0 <= index < len(batch.items):
            raise exc
        refused = batch.items[index]
        reason = exc.message.removeprefix("hub: ")
        self.replica.refuse_pushed(refused, reason)
        stats.refused_pushes.append((refused.entity_id, reason))
        return limit

    def _keep_refused(self, batch: PushRequest, response: PushResponse, stats: SyncStats) -> None:
        """Keep aside the items the hub refused one by one (it took the rest of the batch)."""
        refused = {(r.entity_id, r.mutation): r.reason for r in response.results if r.outcome == "refused"}
        for item in batch.items if refused else ():
            reason = refused.get((item.entity_id, item.mutation))
            if reason is not None:
                self.replica.refuse_pushed(item, reason)
                stats.refused_pushes.append((item.entity_id, reason))

    def _plan(self, limit: int, after: int | None = None) -> list[PushRequest]:
        """The next batches to push (empty when the queue is): up to PLAN_BATCHES of ``limit``
        items, read from the queue at once, or one batch when decisions or kept versions are
        queued (their order against the items is the vault's to give).

        With ``after`` (the highest number of the batch in flight, not yet acknowledged), the
        versions numbered above it, or nothing when they cannot be told apart from that
        batch's. A version edited while its batch is at the hub gets a number above every
        other, so it stays queued and goes later, in order (the ack keeps it queued).
        """
        ahead = 0 if after is None else limit
        queued = self.replica.pending_batch(PLAN_BATCHES * limit + ahead)
        if queued is None:
            return []
        if not _plain(queued):
            if after is not None:
                return []  # read once this batch is acknowledged
            one = self.replica.pending_batch(limit)
            return [] if one is None else [one]
        items = queued.items if after is None else [i for i in queued.items if (i.mutation or 0) > after]
        return [
            msgspec.structs.replace(queued, items=items[n : n + limit]) for n in range(0, len(items), limit)
        ]

    def _behind(self, batch: PushRequest, response: PushResponse) -> bool:
        """Whether this vault's change numbers fell behind the hub's (a restored copy of the vault
        file, a new vault given an old device's token): numbers the hub took as already applied
        that this vault never had acknowledged."""
        top = max(i.mutation or 0 for i in batch.items)
        if response.last_mutation > top:
            return True
        acked = self.replica.acked_mutation
        low = min(i.mutation or 0 for i in batch.items)
        return acked is not None and response.previous_mutation > acked and low <= response.previous_mutation

    def pull(
        self, progress: Progress | None = None, wait: float = 0, stats: SyncStats | None = None
    ) -> SyncStats:
        """Pull every change after the vault's cursor; with ``wait``, wait for the first."""
        stats = stats or SyncStats()
        if self.replica.resyncing:
            return self._finish_resync(progress, stats)
        try:
            return self._pull_pages(progress, stats, wait)
        except ResyncRequired:
            stats.resync_reason = "purged"
            return self.resync(progress, stats)
        except HubReset:
            return self.resync(progress, stats, hub_reset=True)

    def sync(self, progress: Progress | None = None) -> SyncStats:
        """Push, then pull: afterwards the vault holds the hub's state plus nothing pending.

        Then the checksums the last page came with are compared with this vault's (cheap: the
        vault keeps its own as it writes): ``stats.diverged`` says what differs, so a sync never
        reports success while this device and the hub disagree.
        """
        if self.e2e:
            self._ring()  # keys first: a device without the tenant key moves nothing
        # the push fetches the contracts first: what waits under a version a new major version
        # broke is upcast (when the contracts say how) or parked here, never pushed
        stats = self.push(progress)
        stats = self.pull(progress, stats=stats)
        sync_policy(self.vault, self.client, stats.diverged)  # every device decides with the tenant's rules
        if (stats.resynced or stats.requeued) and self.replica.pending_count():
            self.push(progress, stats, screen=False)  # what the hub lost goes back to it now
            stats = self.pull(progress, stats=stats)
        stats.contracts = sync_contracts(self.vault, self.client, fetched=self._fetched, fetch=False)
        if stats.checksum is not None and not self.replica.pending_count():
            if self.replica.checksum() != stats.checksum:
                stats.diverged.append("entities")
            if (
                stats.records_checksum is not None
                and self.replica.records_checksum() != stats.records_checksum
            ):
                stats.diverged.append("records")
        stats.approvals = sync_approvals(self.vault, self.client)
        stats.webhooks = sync_webhooks(self.vault, self.client)  # kept here for the automation runner
        # the audit log: this device's entries up, the hub's checkpoint checked against the kept one
        self.checkpoint = audit_step(self.vault, self.client, self.keys.device_keys)
        self.vault.offline.note_synced()  # the device's own offline risk starts again from now
        return stats

    def resync(
        self, progress: Progress | None = None, stats: SyncStats | None = None, *, hub_reset: bool = False
    ) -> SyncStats:
        """Re-sync from scratch: pull the hub's whole state and drop what it purged (or, after
        a ``hub_reset``, queue what it lost to be pushed again)."""
        stats = stats or SyncStats()
        stats.resynced = True
        mark = self.replica.history_mark
        if not hub_reset and mark is not None:
            # A re-pull drops what the hub no longer has, as purged: first make sure the hub has
            # not lost history instead (a restore), whose changes must be sent to it, not dropped.
            try:
                self.client.pull(mark[0], 1, 0, mark[1], [], mark[0])
            except HubReset:
                hub_reset = True
            except ResyncRequired:
                pass
        if stats.resync_reason is None or hub_reset:
            stats.resync_reason = "reset" if hub_reset else "asked"
        self.replica.begin_resync(hub_reset=hub_reset)
        return self._finish_resync(progress, stats)

    def _finish_resync(self, progress: Progress | None, stats: SyncStats) -> SyncStats:
        # the vault notes every entity pulled while it is re-syncing; resumable after a crash
        self._pull_pages(progress, stats)
        self.replica.finish_resync()
        return stats

    def _pull_pages(self, progress: Progress | None, stats: SyncStats, wait: float = 0) -> SyncStats:
        """Pull and apply pages from the vault's cursor until the hub has no more."""
        # an end-to-end encrypted page is checked once opened, here; a plain one as it arrives
        check = None if self.e2e else self.replica.page_checker()
        for page, refused, checked in pages(
            self.client, self.replica.cursor, self.page, wait, self.replica.history_mark, check
        ):
            stats.pulled += len(page.items)
            stats.records += len(page.records)
            opened = self._open(page, stats)
            applied = self.replica.apply_pull(opened, refused, checked)
            if self._on_page is not None:
                self._on_page(opened)
            stats.applied += applied.applied
            stats.new_records += applied.new_records
            stats.requeued += applied.requeued
            stats.refused_pulls += applied.refused
            stats.overruled += applied.overruled
            stats.cursor = page.cursor
            if progress:
                progress(page.cursor, max(page.head, page.cursor))
            if not page.has_more:
                stats.checksum = page.checksum
                stats.records_checksum = page.records_checksum
        return stats

    def follow(self, wait: float = 30.0, until: Callable[[], bool] | None = None) -> Iterator[SyncItem]:
        """Subscribe to changes: yield every version the hub sends this vault, as it arrives and
        once the vault has applied it. Each round is a pull that long-polls the hub for up to
        ``wait`` seconds when nothing is new; ``until()``, checked after each round, ends the
        iteration (without it, it goes on for as long as it is iterated)."""
        while True:
            pulled: list[SyncItem] = []
            self._on_page = lambda page, into=pulled: into.extend(page.items)
            try:
                self.pull(wait=wait)
            finally:
                self._on_page = None
            yield from pulled
            if until is not None and until():
                return

    def check(self) -> CheckResult:
        """Compare this vault's entities and records with the hub's, by checksum, at the vault's
        cursor (after a pull); the entity checksum is computed afresh from every entity."""
        stats = self.pull()
        return CheckResult(
            local=self.replica.checksum(recount=True),
            hub=stats.checksum,
            cursor=self.replica.cursor,
            pending=self.replica.pending_count(),
            local_records=self.replica.records_checksum(),
            hub_records=stats.records_checksum,
            refused=len(self.replica.refusals()),
        )
