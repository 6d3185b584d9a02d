"""The sync side of a vault: what only :mod:`truthvault.sync` (and the command line's sync and
join commands) use. Reached as ``vault.replica``; the user's API stays on the vault."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence

from ..clock import HybridClock
from ..crypto import Keyring
from ..model import PullResponse, PushRequest, PushResponse, Refused, SyncItem
from ._apply import Applier
from ._db import KEY_FILE, VaultDB
from ._join import HubLink
from ._pull import ApplyStats, CheckedPage, Puller, check_page
from ._push import PushQueue
from ._refusals import Refusal, Refusals
from ._resync import Resync, ResyncState

__all__ = ["Replica"]


class Replica:
    """One vault as a replica of its hub's state: the hub it joined, the push queue and its
    acknowledgements, pulled pages, refusals, re-syncs, checksums and the tenant's keys."""

    def __init__(self, db: VaultDB, applier: Applier) -> None:
        self._db = db
        self._link = HubLink(db)
        self._queue = PushQueue(db)
        self._puller = Puller(db, applier)
        self._refusals = Refusals(db)
        self._resync = Resync(db)

    # -- the hub joined ----------------------------------------------------------------
    def join(
        self,
        hub_url: str,
        token: str | None,
        tenant_id: str,
        tenant_name: str,
        device_id: str,
        vault_mode: str,
        key_path: str | None = None,
        hub_cert: str | None = None,
    ) -> None:
        """Record the hub; when the tenant changes, what the hub never saw moves to it and the new device id.

        An enrolled device signs its requests with the key at ``key_path`` (and has no token);
        a device added with ``hub device add`` sends its bearer ``token``. ``hub_cert`` is the
        hub's TLS certificate (PEM), pinned: later requests trust it and nothing else.
        """
        self._link.join(hub_url, token, tenant_id, tenant_name, device_id, vault_mode, key_path, hub_cert)

    def set_key_path(self, key_path: str) -> None:
        """Where this enrolled device's private key file is now (kept relative to the home when in it)."""
        self._link.set_key_path(key_path)

    def set_hub_cert(self, pem: str) -> None:
        """Pin another TLS certificate (PEM) for this vault's https hub: it alone is trusted from now on."""
        self._link.set_hub_cert(pem)

    @property
    def hub_url(self) -> str | None:
        """The hub this vault syncs with, or None."""
        return self._db.meta_str("hub_url") or None

    @property
    def hub_token(self) -> str | None:
        """The device's bearer token for the hub, or None (never log it)."""
        return self._db.meta_str("hub_token") or None

    @property
    def hub_auth(self) -> str | None:
        """How this vault proves itself to its hub: "signed" (enrolled) or "token"; None if not joined."""
        return self._db.meta_str("hub_auth") or ("token" if self.hub_token else None)

    @property
    def key_path(self) -> str | None:
        """The device's private key file (enrolled devices), or None."""
        stored = self._db.meta_str("key_path")
        if not stored:
            return None
        home = self._db.home
        path = home / stored  # a relative path is the home's; an absolute one stays itself
        if not path.exists():
            # Vaults made before keys were kept by relative path name the key where the folder
            # was then: a moved or renamed folder still holds it.
            for moved in (home / path.name, home / KEY_FILE):
                if moved.exists():
                    return str(moved)
        return str(path)

    @property
    def hub_cert(self) -> str | None:
        """The hub's TLS certificate (PEM) this device pinned, or None (plain HTTP or not joined)."""
        return self._db.meta_str("hub_cert") or None

    @property
    def clock(self) -> HybridClock:
        """The vault's hybrid clock."""
        return self._db.clock

    # -- end-to-end encryption ------------------------------------------------------
    def keyring(self) -> Keyring | None:
        """The tenant's data keys (local-first tenants), or None until this device has them."""
        text = self._db.meta_str("keyring")
        return Keyring.deserialize(text.encode()) if text else None

    def set_keyring(self, keyring: Keyring) -> None:
        """Keep the tenant's data keys here (the file is 0600; they never leave it unwrapped),
        ``keyring``'s key current. A key kept here stays: what is written joins it (a keyring
        merged from a read another process's write came after must not drop that write's key)."""
        with self._db.tx():
            text = self._db.meta_str("keyring")
            if text:
                kept = Keyring.deserialize(text.encode())
                keys = {kid: key for ring in (kept, keyring) for kid in ring.kids if (key := ring.key(kid))}
                keyring = Keyring(keys, keyring.current)
            self._db.set_meta("keyring", keyring.serialize().decode("ascii"))
        self._db.keys_epoch += 1

    # -- pushing ---------------------------------------------------------------------
    def pending_batch(self, limit: int = 1000) -> PushRequest | None:
        """The oldest queued changes (at most ``limit`` items) as a push, or None if none."""
        return self._queue.pending_batch(limit)

    def pending_count(self) -> int:
        """How many changes wait to be pushed (entity versions, record items, decisions)."""
        return self._queue.pending_count()

    def renumber_pending(self, above: int) -> None:
        """Give every queued change a new number above ``above``, in the order they had (for a
        vault whose numbers fell behind what the hub has seen from this device)."""
        self._queue.renumber_pending(above)

    def ack(self, request: PushRequest, response: PushResponse) -> None:
        """The hub stored ``request``: unqueue what was pushed unless it changed since."""
        self._queue.ack(request, response)

    @property
    def acked_mutation(self) -> int | None:
        """The highest change number the hub acknowledged to this vault (None: not known yet)."""
        value = self._db.meta_str("acked_mutation")
        return int(value) if value else None

    # -- pulling ---------------------------------------------------------------------
    def apply_pull(
        self,
        response: PullResponse,
        refused: Sequence[Refused] = (),
        checked: CheckedPage | None = None,
        *,
        late: bool = False,
    ) -> ApplyStats:
        """Merge a pulled page into the vault in one transaction and advance the cursor; what
        does not check out (or ``refused`` names) is kept aside, and the rest applied.
        ``checked``: what :meth:`page_checker` made of the page, when it was checked already.
        ``late``: changes pulled before that open only now (see :meth:`Puller.apply`): the
        cursor stays, and one the hub's later changes beat is left."""
        return self._puller.apply(response, refused, checked, late=late)

    def page_checker(self) -> Callable[[PullResponse, Sequence[Refused]], CheckedPage]:
        """Checks pulled pages for :meth:`apply_pull` without touching the vault, so in any
        thread (the one that fetches them, while this one applies the page before)."""
        return functools.partial(check_page, tenant=self._db.meta_str("tenant_id"))

    @property
    def cursor(self) -> int:
        """The last hub sequence number pulled."""
        return int(self._db.meta_str("cursor") or 0)

    def set_cursor(self, cursor: int) -> None:
        """Remember the last hub sequence number pulled."""
        self._link.set_cursor(cursor)

    @property
    def history_mark(self) -> tuple[int, str] | None:
        """The latest hub commit this vault knows of, (its last sequence number, its tag): from
        a pull page (the commit its cursor points into) or a push (the commit it wrote). A hub
        that does not find that tag there has lost history (see PullResponse.tag)."""
        with self._db.lock:
            return self._db.history_mark()

    def checksum(self, *, recount: bool = False) -> str:
        """The state checksum over all entities, comparable with the hub's (``recount``: computed
        from every entity, which also corrects the running one)."""
        return self._queue.checksum(recount=recount)

    def records_checksum(self) -> str:
        """The checksum of the records this vault shares with the hub, comparable with the hub's."""
        return self._queue.records_checksum()

    # -- refusals --------------------------------------------------------------------
    def refuse_pushed(self, item: SyncItem, reason: str) -> None:
        """The hub refused ``item`` of a push: take it out of the queue and keep it aside."""
        self._refusals.refuse_pushed(item, reason)

    def refusals(self, direction: str | None = None) -> list[Refusal]:
        """What the hub refused of this vault's pushes and what this vault refused of pulls,
        newest first."""
        return self._refusals.find(direction)

    def retry_refused(self, refusal_id: int) -> bool:
        """Queue a version the hub refused again (True), or say it changed since (False); either
        way the refusal is forgotten."""
        return self._refusals.retry(refusal_id)

    def forget_refused(self, refusal_id: int) -> None:
        """Drop the note of a refusal (what the vault holds is not touched)."""
        self._refusals.forget(refusal_id)

    # -- re-sync ---------------------------------------------------------------------
    @property
    def resync_state(self) -> ResyncState:
        """Whether a re-sync is under way, and of which kind."""
        with self._db.lock:
            return ResyncState.of(self._db)

    @property
    def resyncing(self) -> bool:
        """True between begin_resync() and finish_resync()."""
        return self.resync_state is not ResyncState.NONE

    def begin_resync(self, *, hub_reset: bool = False) -> None:
        """Start a full re-pull: cursor 0; every entity id pulled from now on is noted
        (``hub_reset``: at the end, send the hub what it lacks rather than drop it here)."""
        self._resync.begin(hub_reset=hub_reset)

    def finish_resync(self, seen_ids: Iterable[str] = ()) -> int:
        """End a full re-pull: drop what the hub had and no longer has (an unpushed change to it
        is kept as a conflict record); after a hub reset, queue it again. Returns how many."""
        return self._resync.finish(seen_ids)
