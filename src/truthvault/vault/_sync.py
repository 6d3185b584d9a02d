"""Sync plumbing for the sync client: joining a hub, the push queue, applying pulls, re-sync."""

from __future__ import annotations

import contextlib
import sqlite3
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ..clock import future_limit
from ..errors import ConflictState, InvalidInput, NotFound, TruthvaultError
from ..intake import prepare_item, sort_out
from ..merge import Loss, plan_merge
from ..model import (
    Decision,
    OriginStep,
    PullResponse,
    PushRequest,
    PushResponse,
    Record,
    Refused,
    SyncItem,
    checksum_hex,
    record_digest,
    refuse,
)
from ..truth import Outcome, TruthLevel, record_id
from . import _search
from ._codec import (
    ENTITY_SELECT,
    NO_SIZE_LIMIT,
    Current,
    current_from_row,
    encode_chain,
    item_from_row,
)
from ._records import RecordsMixin

__all__ = [
    "LOCAL_ONLY_REASON",
    "RESYNC_REASON",
    "VAULT_MODES",
    "ApplyStats",
    "Overruled",
    "Refusal",
    "SyncMixin",
]

VAULT_MODES = ("local_first", "cloud_first")
#: How far ahead of this device's clock a pulled stamp may be. The hub refuses pushes beyond its
#: own skew limit (15 minutes unless its operator chose more); a stamp far beyond that comes
#: from a broken or hostile hub, and taking it in would move this vault's clock there for good.
PULL_CLOCK_SKEW_MS = 24 * 3600 * 1000
RESYNC_REASON = "deleted on the hub while this device was offline"
LOCAL_ONLY_REASON = "lost here to a version the hub refused, so the hub never keeps it"
_EVENT_OF_KIND = {"suggestion": "AI_SUGGESTION_GENERATED", "conflict": "CONFLICT_DETECTED"}
_item_decoder = msgspec.json.Decoder(SyncItem)


def _copy(item: SyncItem) -> SyncItem:
    """A pulled item as a version to merge: without the hub's seq (a copy, the page stays as pulled)."""
    return msgspec.structs.replace(item, seq=None, mutation=None, kept=False)


_chain_decoder = msgspec.json.Decoder(tuple[OriginStep, ...])
_encoder = msgspec.json.Encoder()


@dataclass(slots=True)
class ApplyStats:
    """What one pulled page did to the vault."""

    applied: int = 0  # pulled versions that became current
    suggestions: int = 0  # new suggestion records kept here
    conflicts: int = 0  # new conflict records kept here
    records: int = 0  # pulled records stored or updated
    new_records: int = 0  # pulled records this vault did not hold
    requeued: int = 0  # versions the hub had lost, queued to be pushed again
    #: pulled items and records this vault would not take in (kept aside, see ``refusals``)
    refused: list[Refused] = field(default_factory=list)
    #: this vault's decisions that gave way to another device's, which reached the hub first
    overruled: list[Overruled] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Overruled:
    """A decision made here on a record that another device decided differently first."""

    record_id: str
    entity_id: str
    mine: str  # this vault's status ...
    my_resolution: str | None  # ... and resolution (keep / restore)
    status: str  # the decision that stands
    resolution: str | None

    def describe(self) -> str:
        """How one line says it: ``record R on E: another device restored it first (you kept it)``."""
        return (
            f"{self.record_id} on {self.entity_id}: another device's decision came first "
            f"({self.resolution or self.status}; yours: {self.my_resolution or self.mine})"
        )


@dataclass(frozen=True, slots=True)
class Refusal:
    """An item kept aside: one the hub refused when this vault pushed it (``push``), or one of
    a pulled page this vault would not take in (``pull``)."""

    id: int
    direction: str
    kind: str  # item | record
    entity_id: str | None
    record_id: str | None
    reason: str
    at: str
    item: str  # its JSON as it was sent or received (cut at 4 KiB when pulled)


def _pulled(item: SyncItem, where: str, tenant: str, max_clock: str) -> SyncItem:
    """A copy of a pulled version, checked as the hub checks pushed ones (no size limit: the hub
    applied its own when it took the version)."""
    return prepare_item(
        _copy(item),
        where,
        tenant_id=tenant,
        device_id=None,
        max_payload_bytes=NO_SIZE_LIMIT,
        max_clock=max_clock,
    )


def _checked_record(rec: Record, n: int, tenant: str, max_clock: str) -> Record:
    """A pulled record checked as the hub checks pushed items, bound to its item (its id is the
    one its item gives, its kind the one its level gives), with its base dropped when the base is
    not the suggestion's."""
    where = f"records[{n}]"
    item = _pulled(rec.item, f"{where}.item", tenant, max_clock)
    if rec.id != record_id(item.entity_id, item.last_modified_at, item.device_id):
        raise InvalidInput(f"{where}.id: {rec.id!r} is not the id of the version it keeps")
    if (rec.entity_id, rec.entity_type) != (item.entity_id, item.entity_type):
        raise InvalidInput(f"{where}: names another entity than the version it keeps")
    if (rec.kind == "conflict") != (item.truth_level == TruthLevel.USER):
        # a conflict keeps a user's version, a suggestion a lower one: a record that says
        # otherwise would let a restore turn an AI's text into the user's
        raise InvalidInput(f"{where}.kind: a {rec.kind} cannot keep a level-{item.truth_level} version")
    base = None
    if rec.base is not None:
        # a base that does not check out is only a base unknown
        with contextlib.suppress(TruthvaultError):
            base = _pulled(rec.base, f"{where}.base", tenant, max_clock)
        if base is not None and (base.entity_id, base.version, base.last_modified_at) != (
            item.entity_id,
            item.base_version,
            item.base_clock,
        ):
            base = None
    return msgspec.structs.replace(rec, item=item, base=base)


class SyncMixin(RecordsMixin):
    """join / set_cursor / pending_batch / ack / apply_pull / checksum / re-sync."""

    # -- identity ------------------------------------------------------------------
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
        if vault_mode not in VAULT_MODES:
            raise InvalidInput(f"vault_mode must be one of {', '.join(VAULT_MODES)}, not {vault_mode!r}")
        for name, value in (
            ("hub_url", hub_url),
            ("token or key_path", token or key_path),
            ("tenant_id", tenant_id),
            ("device_id", device_id),
        ):
            if not value:
                raise InvalidInput(f"{name} must not be empty")
        with self._tx() as conn:
            old_hub, old_tenant = self._meta_str("hub_url"), self._meta_str("tenant_id")
            old_device = self._meta_str("device_id")
            synced = (
                int(self._meta("cursor") or 0) > 0
                or conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM entities WHERE hub_known = 1) "
                    "OR EXISTS (SELECT 1 FROM records WHERE hub_known = 1)"
                ).fetchone()[0]
            )
            if synced and (hub_url != old_hub or tenant_id != old_tenant):
                raise ConflictState(
                    f"this vault already syncs with tenant {old_tenant!r} at {old_hub}; "
                    "it cannot join another hub or tenant",
                    hint="create a new vault (another TRUTHVAULT_HOME) to join a different tenant",
                )
            if tenant_id != old_tenant:
                self._move_unsynced(conn, tenant_id, old_device, device_id)
            # Joining the same tenant again (a revoked device enrolled anew) changes who this
            # vault is from now on, not who wrote what it holds: the old device id is a device
            # of this tenant, and a queued version the hub may already hold (a push whose answer
            # was lost) must come back a duplicate, not look like another device's version.
            for key, value in (
                ("hub_url", hub_url),
                ("hub_token", "" if key_path else token or ""),
                ("hub_auth", "signed" if key_path else "token"),
                ("key_path", self._home_relative(key_path) if key_path else ""),
                ("hub_cert", hub_cert or ""),
                ("tenant_id", tenant_id),
                ("tenant_name", tenant_name),
                ("device_id", device_id),
                ("vault_mode", vault_mode),
            ):
                self._set_meta(key, value)
            self._recount()  # versions the hub never saw now name this device

    def set_key_path(self, key_path: str) -> None:
        """Where this enrolled device's private key file is now (kept relative to the home when in it)."""
        if not self._meta_str("key_path"):
            raise ConflictState("this vault is not enrolled: it has no device key")
        with self._tx():
            self._set_meta("key_path", self._home_relative(key_path))

    def _move_unsynced(
        self, conn: sqlite3.Connection, tenant_id: str, old_device: str, device_id: str
    ) -> None:
        """Move what the hub never saw to the tenant joined and this vault's device id there."""
        conn.execute("UPDATE entities SET tenant_id = ? WHERE hub_known = 0", (tenant_id,))
        conn.execute(
            "UPDATE entities SET device_id = ? WHERE hub_known = 0 AND device_id = ?",
            (device_id, old_device),
        )
        renamed: dict[str, str] = {}
        for rid, blob in conn.execute("SELECT id, item FROM records WHERE hub_known = 0").fetchall():
            item = _item_decoder.decode(blob)
            item.tenant_id = tenant_id
            if item.device_id == old_device:
                item.device_id = device_id
            # The hub derives a record's id from its item, so the id follows the item.
            new_rid = record_id(item.entity_id, item.last_modified_at, item.device_id)
            conn.execute(
                "UPDATE records SET id = ?, item = ? WHERE id = ?", (new_rid, _encoder.encode(item), rid)
            )
            if new_rid != rid:
                renamed[rid] = new_rid
        if renamed:
            _follow_renamed_records(conn, renamed)

    def set_hub_cert(self, pem: str) -> None:
        """Pin another TLS certificate (PEM) for this vault's https hub: it alone is trusted from now on."""
        hub = self._meta_str("hub_url")
        if not hub.lower().startswith("https://"):
            raise ConflictState(
                f"this vault's hub is {hub or 'not set'}: only an https hub has a certificate to pin"
            )
        try:
            ssl.PEM_cert_to_DER_cert(pem)
        except ValueError:
            raise InvalidInput("not a PEM certificate") from None
        with self._tx():
            self._set_meta("hub_cert", pem)

    def _home_relative(self, path: str) -> str:
        """``path`` relative to the vault's home when it lies inside it, so the folder can move."""
        target = Path(path)
        try:
            return str(target.resolve().relative_to(self.home.resolve()))
        except ValueError:
            return str(target.resolve())

    def set_cursor(self, cursor: int) -> None:
        """Remember the last hub sequence number pulled."""
        if cursor < 0:
            raise InvalidInput(f"cursor must be >= 0, not {cursor}")
        with self._tx():
            self._set_meta("cursor", cursor)
            self._forget_history()  # a cursor set by hand comes with no tag

    # -- push ----------------------------------------------------------------------
    def pending_batch(self, limit: int = 1000) -> PushRequest | None:
        """The oldest queued changes (at most ``limit`` items) as a push, or None if none."""
        with self._read() as conn:
            queued: list[tuple[int, SyncItem, str | None]] = []
            for row in conn.execute(
                f"{ENTITY_SELECT} WHERE mutation IS NOT NULL ORDER BY mutation LIMIT ?", (limit,)
            ):
                queued.append((row[16], item_from_row(row), None))
            base_of: dict[str, bytes] = {}
            for rid, blob, mutation, base in conn.execute(
                "SELECT id, item, mutation, base_item FROM records WHERE push_item = 1 ORDER BY mutation LIMIT ?",
                (limit,),
            ):
                # A record's item lost here: the hub keeps it as a record too (see SyncItem.kept).
                item = _item_decoder.decode(blob)
                item.kept = True
                queued.append((mutation, item, rid))
                if base is not None:
                    base_of[rid] = base
            queued.sort(key=lambda q: q[0])
            del queued[limit:]
            sent_records = {rid for _, _, rid in queued if rid is not None}
            # what the suggestions sent were made on, so every device can accept only what they changed
            bases = list({base_of[rid]: None for rid in sent_records if rid in base_of})
            decisions = [
                Decision(id=rid, status=status, at=at, resolution=resolution)
                for rid, status, at, resolution, hub_known in conn.execute(
                    "SELECT id, status, decided_at, resolution, hub_known FROM records "
                    "WHERE push_decision = 1 ORDER BY mutation"
                )
                # A decision on a record the hub has not received yet waits for its item.
                if hub_known or rid in sent_records
            ]
            cursor = int(self._meta("cursor") or 0)
            mark = self._history_mark()
        if not queued and not decisions:
            return None
        items = []
        for mutation, item, _ in queued:
            item.mutation = mutation
            items.append(item)
        return PushRequest(
            items=items,
            decisions=decisions,
            cursor=cursor,
            tag=None if mark is None else mark[1],
            tag_seq=None if mark is None else mark[0],
            bases=[_item_decoder.decode(blob) for blob in bases],
        )

    @property
    def history_mark(self) -> tuple[int, str] | None:
        """The latest hub commit this vault knows of, (its last sequence number, its tag): from
        a pull page (the commit its cursor points into) or a push (the commit it wrote). A hub
        that does not find that tag there has lost history (see PullResponse.tag)."""
        with self._lock:
            return self._history_mark()

    def _history_mark(self) -> tuple[int, str] | None:
        tag = self._meta("tag")
        return (int(self._meta("tag_seq") or 0), tag) if tag else None

    def _note_history(self, seq: int, tag: str | None) -> None:
        """Move the history mark to commit ``seq`` (tag ``tag``) when it is the latest known."""
        if tag and seq >= int(self._meta("tag_seq") or 0):
            self._set_meta("tag", tag)
            self._set_meta("tag_seq", seq)

    def _forget_history(self) -> None:
        self._set_meta("tag", "")
        self._set_meta("tag_seq", 0)

    @property
    def acked_mutation(self) -> int | None:
        """The highest change number the hub acknowledged to this vault (None: not known yet)."""
        value = self._meta_str("acked_mutation")
        return int(value) if value else None

    def renumber_pending(self, above: int) -> None:
        """Give every queued change a new number above ``above``, in the order they had.

        For a vault whose numbers fell behind what the hub has seen from this device (a
        restored copy of the vault file, or a new vault given an old device's token): the hub
        would take those numbers for changes it already applied and drop them.
        """
        with self._tx() as conn:
            queued = sorted(
                [
                    (m, "entities", "entity_id", key)
                    for m, key in conn.execute(
                        "SELECT mutation, entity_id FROM entities WHERE mutation IS NOT NULL"
                    )
                ]
                + [
                    (m, "records", "id", key)
                    for m, key in conn.execute("SELECT mutation, id FROM records WHERE mutation IS NOT NULL")
                ]
            )
            first = max(above + 1, int(self._meta("next_mutation") or 1))
            for n, (_, table, column, key) in enumerate(queued):
                conn.execute(f"UPDATE {table} SET mutation = ? WHERE {column} = ?", (first + n, key))
            self._set_meta("next_mutation", first + len(queued))

    def pending_count(self) -> int:
        """How many changes wait to be pushed (entity versions, record items, decisions)."""
        with self._read() as conn:
            return int(
                conn.execute(
                    "SELECT (SELECT count(*) FROM entities WHERE mutation IS NOT NULL)"
                    " + (SELECT count(*) FROM records WHERE push_item = 1)"
                    " + (SELECT count(*) FROM records WHERE push_decision = 1 AND push_item = 0)"
                ).fetchone()[0]
            )

    def ack(self, request: PushRequest, response: PushResponse) -> None:
        """The hub stored ``request``: unqueue what was pushed unless it changed since."""
        with self._tx() as conn:
            self._note_history(response.head, response.tag)
            top = max([i.mutation or 0 for i in request.items], default=0)
            if top > (self.acked_mutation or 0):
                self._set_meta("acked_mutation", top)
            # An edit made while the push was in flight has a newer number: it stays queued.
            conn.executemany(
                "UPDATE entities SET hub_known = 1, "
                "mutation = CASE WHEN mutation = ? THEN NULL ELSE mutation END WHERE entity_id = ?",
                [(item.mutation, item.entity_id) for item in request.items],
            )
            # Kept losers queued for the hub are few: only items of their entities can be one.
            sql = "SELECT entity_id FROM records WHERE mutation IS NOT NULL AND push_item = 1"
            queued = {row[0] for row in conn.execute(sql)}
            conn.executemany(
                "UPDATE records SET push_item = 0, hub_known = 1, "
                "mutation = CASE WHEN push_decision = 1 THEN mutation END WHERE id = ? AND push_item = 1",
                [
                    (record_id(item.entity_id, item.last_modified_at, item.device_id),)
                    for item in request.items
                    if item.entity_id in queued
                ],
            )
            conn.executemany(
                "UPDATE records SET push_decision = 0, "
                "mutation = CASE WHEN push_item = 1 THEN mutation END WHERE id = ?",
                [(decision.id,) for decision in request.decisions],
            )

    # -- pull ----------------------------------------------------------------------
    def apply_pull(self, response: PullResponse, refused: Sequence[Refused] = ()) -> ApplyStats:
        """Merge a pulled page into the vault in one transaction and advance the cursor.

        Every item and record is checked as the hub checks a push; one that fails (or that
        ``refused`` names: what did not even decode) is kept aside in ``refused`` with an event,
        and the rest of the page is applied: one bad item never stops a pull.
        """
        stats = ApplyStats()
        with self._tx() as conn:
            tenant = self._meta_str("tenant_id")
            max_clock = future_limit(PULL_CLOCK_SKEW_MS)
            items, bad = sort_out(
                list(map(_copy, response.items)),
                tenant_id=tenant,
                max_payload_bytes=NO_SIZE_LIMIT,
                max_clock=max_clock,
            )
            aside = [*refused, *(refuse("item", item, exc) for item, exc in bad)]
            records = []
            for n, rec in enumerate(response.records):
                try:
                    records.append(_checked_record(rec, n, tenant, max_clock))
                except TruthvaultError as exc:
                    aside.append(refuse("record", rec.item, exc, rec.id))
            clocks = [item.last_modified_at for item in (*items, *(rec.item for rec in records))]
            if clocks:
                # canonical stamps sort as strings: observing the greatest is observing them all
                self._clock.observe(max(clocks))
            current = self._currents(item.entity_id for item in items)
            now = self._stamp()
            plan = plan_merge({eid: cur.item for eid, cur in current.items()}, items, now)
            self._put_rows(list(plan.entities.values()), True, current)
            for item, outcome, _ in plan.results:
                if outcome is Outcome.APPLIED:
                    stats.applied += 1
                elif outcome is Outcome.DUPLICATE and item.entity_id not in plan.entities:
                    # The hub already holds our queued version exactly: nothing left to push.
                    conn.execute(
                        "UPDATE entities SET mutation = NULL WHERE entity_id = ? AND last_modified_at = ? "
                        "AND device_id = ?",
                        (item.entity_id, item.last_modified_at, item.device_id),
                    )
            ids = _encoder.encode(list(dict.fromkeys(item.entity_id for item in items)))
            conn.execute(
                "UPDATE entities SET hub_known = 1 WHERE entity_id IN (SELECT value FROM json_each(?))",
                (ids,),
            )
            if self._meta("resyncing") in ("1", "2"):
                # an item kept aside is at the hub all the same: a re-sync must not drop it here
                seen = [*(item.entity_id for item in items), *(r.entity_id for r in aside if r.entity_id)]
                conn.execute(
                    "INSERT OR IGNORE INTO resync_seen SELECT value FROM json_each(?)",
                    (_encoder.encode(seen),),
                )
            requeue: list[str] = []
            for loss in plan.losses:
                kept = self._keep_pulled_loss(loss, current.get(loss.record.entity_id), requeue)
                if kept:
                    stats.conflicts += loss.kind == "conflict"
                    stats.suggestions += loss.kind == "suggestion"
                    self.add_event(_EVENT_OF_KIND[loss.kind], loss.record.entity_id, record_id=loss.record.id)
            for rec in records:
                stats.records += 1
                stats.new_records += not self._has_record(rec.id)
                overruled = self._upsert_pulled_record(rec)
                if overruled is not None:
                    stats.overruled.append(overruled)
            if requeue:
                stats.requeued = len(requeue)
                first = self._take_mutations(len(requeue))
                conn.executemany(
                    "UPDATE entities SET mutation = ? WHERE entity_id = ? AND mutation IS NULL",
                    [(first + n, eid) for n, eid in enumerate(requeue)],
                )
            for r in aside:
                self._keep_aside("pull", r.kind, r.entity_id, r.record_id, r.reason, r.raw.encode())
            stats.refused.extend(aside)
            self._set_meta("cursor", response.cursor)
            self._note_history(response.cursor, response.tag)
        return stats

    def _keep_pulled_loss(self, loss: Loss, cur: Current | None, requeue: list[str]) -> bool:
        """Keep what lost when a pulled version met this vault's; True when a record was kept.

        Records converge as entities do: this vault keeps only its own versions that lose, and
        the hub decides everything else. Its own unpushed version is kept queued (it reaches
        the hub marked ``kept``); a version the hub will never see (one it refused) stays here.
        A version the hub holds that loses, or a pulled version that loses to this vault's, is
        the hub's to keep: it has done so already, or will when this vault's version reaches it,
        and its feed brings the record. Keeping one here could keep a version no other replica
        keeps (the hub may have a successor of it that this vault has not seen yet).
        """
        if cur is None:
            return False
        here = loss.record.item is cur.item
        if cur.mutation is not None:
            if not here:
                return False  # our unpushed version won: the hub decides when it gets it
            return self._insert_record(loss.record, mutation=cur.mutation, push_item=True)
        if cur.hub_known:
            if not here:
                # The hub sends a version that this one, which the hub had, beats: the hub lost
                # this one (a purged tombstone, a restore). Sending it again puts the winner back
                # there; otherwise the replicas would differ for good.
                requeue.append(cur.item.entity_id)
            return False
        # this vault's version is one the hub never took: nothing of this reaches the hub
        return self._insert_record(loss.record, reason=LOCAL_ONLY_REASON)

    def _has_record(self, rid: str) -> bool:
        return self._conn.execute("SELECT 1 FROM records WHERE id = ?", (rid,)).fetchone() is not None

    def _upsert_pulled_record(self, rec: Record) -> Overruled | None:
        """Store a pulled record, or take the hub's decision on one this vault holds (the first
        decision to reach the hub stands everywhere); the decision of this vault's that gave
        way, if one did."""
        row = self._conn.execute("SELECT status, resolution FROM records WHERE id = ?", (rec.id,)).fetchone()
        if row is None:
            self._insert_record(rec, hub_known=True, base=self._base_for(rec))
            if rec.status == "open":
                self.add_event(_EVENT_OF_KIND[rec.kind], rec.entity_id, record_id=rec.id)
            return None
        overruled = None
        if rec.status != "open" and (row[0], row[1]) != (rec.status, rec.resolution):
            if row[0] != "open":
                # Another device's decision came first: what this one wrote for its own (an
                # accepted or restored version) stays, as an edit of its own.
                overruled = Overruled(rec.id, rec.entity_id, row[0], row[1], rec.status, rec.resolution)
                self.add_event(
                    "DECISION_OVERRULED",
                    rec.entity_id,
                    record_id=rec.id,
                    mine=row[1] or row[0],
                    kept=rec.resolution or rec.status,
                )
            self._conn.execute(
                "UPDATE records SET status = ?, decided_at = ?, resolution = ?, push_decision = 0 "
                "WHERE id = ?",
                (rec.status, rec.decided_at, rec.resolution, rec.id),
            )
        self._conn.execute(
            "UPDATE records SET hub_known = 1, push_item = 0, "
            "mutation = CASE WHEN push_decision = 1 THEN mutation END WHERE id = ?",
            (rec.id,),
        )
        if rec.base is not None:
            self._conn.execute(
                "UPDATE records SET base = ?, base_item = ? WHERE id = ? AND base_item IS NULL",
                (bytes(rec.base.payload), _encoder.encode(rec.base), rec.id),
            )
        return overruled

    def _base_for(self, rec: Record) -> SyncItem | None:
        """The version a pulled suggestion was made on: the one it came with, or this vault's
        current version when it is that one (None: unknown here)."""
        item = rec.item
        if rec.kind != "suggestion" or item.base_clock is None:
            return None
        if rec.base is not None:
            return rec.base
        cur = self._current(rec.entity_id)
        if (
            cur is not None
            and not cur.item.deleted
            and (cur.item.version, cur.item.last_modified_at) == (item.base_version, item.base_clock)
        ):
            return cur.item
        return None

    # -- refusals --------------------------------------------------------------------
    def _keep_aside(
        self,
        direction: str,
        kind: str,
        entity_id: str | None,
        record_id: str | None,
        reason: str,
        raw: bytes,
        mutation: int | None = None,
    ) -> None:
        self._conn.execute(
            "INSERT INTO refused (direction, kind, entity_id, record_id, reason, at, item, mutation) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (direction, kind, entity_id, record_id, reason, self._stamp(), raw, mutation),
        )
        event = "PULL_REFUSED" if direction == "pull" else "PUSH_REFUSED"
        self.add_event(event, entity_id, kind=kind, record_id=record_id, reason=reason)

    def refuse_pushed(self, item: SyncItem, reason: str) -> None:
        """The hub refused ``item`` of a push: take it out of the queue and keep it aside.

        The version stays in the vault as it is; ``sync rejected`` lists it and ``retry``
        queues it again (after the hub's limits changed, say). An edit made since stays queued.
        """
        with self._tx() as conn:
            if item.kept:
                rid = record_id(item.entity_id, item.last_modified_at, item.device_id)
                # a decision on it cannot travel either (the hub never has the record): it stays
                # here, and nothing waits to be pushed that never can be
                conn.execute(
                    "UPDATE records SET push_item = 0, push_decision = 0, mutation = NULL "
                    "WHERE id = ? AND mutation = ?",
                    (rid, item.mutation),
                )
                kind, rec_id = "record", rid
            else:
                # The hub does not hold this version: when another one of the entity arrives and
                # wins, this one is kept here as a record rather than dropped (_keep_pulled_loss).
                conn.execute(
                    "UPDATE entities SET mutation = NULL, hub_known = 0 WHERE entity_id = ? AND mutation = ?",
                    (item.entity_id, item.mutation),
                )
                kind, rec_id = "item", None
            bare = msgspec.structs.replace(item, mutation=None, kept=False)
            self._keep_aside(
                "push", kind, item.entity_id, rec_id, reason, _encoder.encode(bare), item.mutation
            )

    def refusals(self, direction: str | None = None) -> list[Refusal]:
        """What the hub refused of this vault's pushes and what this vault refused of pulls,
        newest first."""
        sql = "SELECT id, direction, kind, entity_id, record_id, reason, at, item FROM refused"
        args: list[Any] = []
        if direction is not None:
            sql += " WHERE direction = ?"
            args.append(direction)
        with self._read() as conn:
            rows = conn.execute(sql + " ORDER BY id DESC", args).fetchall()
        return [
            Refusal(r[0], r[1], r[2], r[3], r[4], r[5], r[6], bytes(r[7]).decode(errors="replace"))
            for r in rows
        ]

    def retry_refused(self, refusal_id: int) -> bool:
        """Queue a version the hub refused again (True), or say it changed since (False: the
        newer version is queued or pushed already); either way the refusal is forgotten."""
        with self._tx() as conn:
            row = conn.execute(
                "SELECT direction, kind, entity_id, record_id, item FROM refused WHERE id = ?", (refusal_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no refusal {refusal_id}", hint="list them with 'truthvault sync rejected'")
            direction, kind, entity_id, rid, blob = row
            if direction != "push":
                raise ConflictState(
                    f"refusal {refusal_id} is of a pulled item, which only the hub can send again",
                    hint="'truthvault sync resync' pulls everything again; 'sync rejected forget' drops the note",
                )
            item = _item_decoder.decode(blob)
            queued = False
            if kind == "record":
                cur = conn.execute(
                    "UPDATE records SET push_item = 1, mutation = coalesce(mutation, ?) "
                    "WHERE id = ? AND push_item = 0 AND hub_known = 0",
                    (self._take_mutations(), rid),
                )
                queued = cur.rowcount > 0
            else:
                cur = conn.execute(
                    "UPDATE entities SET mutation = ? WHERE entity_id = ? AND mutation IS NULL "
                    "AND last_modified_at = ? AND device_id = ?",
                    (self._take_mutations(), entity_id, item.last_modified_at, item.device_id),
                )
                if not cur.rowcount:
                    # another version won here since: the refused one was kept as a record, which
                    # goes to the hub as a kept loser
                    cur = conn.execute(
                        "UPDATE records SET push_item = 1, mutation = ?, reason = NULL "
                        "WHERE id = ? AND push_item = 0 AND hub_known = 0",
                        (
                            self._take_mutations(),
                            record_id(item.entity_id, item.last_modified_at, item.device_id),
                        ),
                    )
                queued = cur.rowcount > 0
            conn.execute("DELETE FROM refused WHERE id = ?", (refusal_id,))
            return queued

    def forget_refused(self, refusal_id: int) -> None:
        """Drop the note of a refusal (what the vault holds is not touched)."""
        with self._tx() as conn:
            if conn.execute("DELETE FROM refused WHERE id = ?", (refusal_id,)).rowcount == 0:
                raise NotFound(f"no refusal {refusal_id}", hint="list them with 'truthvault sync rejected'")

    def checksum(self, *, recount: bool = False) -> str:
        """The state checksum over all entities, comparable with the hub's: the running one every
        write keeps, or with ``recount`` one computed from every entity (which also corrects
        the running one)."""
        if recount:
            with self._tx():
                return checksum_hex(self._recount())
        return checksum_hex(int(self._meta_str("checksum") or 0))

    def records_checksum(self) -> str:
        """The checksum of the records this vault shares with the hub (their ids and statuses),
        comparable with the hub's ``records_checksum``."""
        total = 0
        with self._read() as conn:
            for rid, status, resolution in conn.execute(
                "SELECT id, status, resolution FROM records WHERE hub_known = 1"
            ):
                total += record_digest(rid, status, resolution)
        return checksum_hex(total)

    # -- re-sync from scratch ------------------------------------------------------
    def begin_resync(self, *, hub_reset: bool = False) -> None:
        """Start a full re-pull: cursor 0; every entity id pulled from now on is noted.

        ``hub_reset``: the hub lost history (restored from a backup), so at the end what it
        lacks is sent to it again rather than dropped here.
        """
        with self._tx() as conn:
            conn.execute("DELETE FROM resync_seen")
            self._set_meta("resyncing", 2 if hub_reset else 1)
            self._set_meta("cursor", 0)
            self._forget_history()

    def finish_resync(self, seen_ids: Iterable[str] = ()) -> int:
        """End a full re-pull: drop what the hub had and no longer has; return how many.

        An entity the hub knew that is absent from its full snapshot was deleted and
        purged there. It is dropped here so it cannot come back; an unpushed local change
        to it is kept as an open conflict record (never pushed) so nothing is lost. After a
        hub reset, such entities (and every record) are queued to be sent again instead.
        """
        with self._tx() as conn:
            mode = self._meta("resyncing")
            if mode not in ("1", "2"):
                raise ConflictState("no re-sync in progress", hint="call begin_resync() first")
            conn.executemany("INSERT OR IGNORE INTO resync_seen VALUES (?)", ((i,) for i in seen_ids))
            if mode == "2":
                return self._resend_what_the_hub_lost(conn)
            doomed = [
                current_from_row(row)
                for row in conn.execute(
                    f"{ENTITY_SELECT} WHERE hub_known = 1 AND entity_id NOT IN (SELECT entity_id FROM resync_seen)"
                ).fetchall()
            ]
            now = self._stamp()
            for cur in doomed:
                item = cur.item
                if cur.mutation is not None and not item.deleted:
                    rid = record_id(item.entity_id, item.last_modified_at, item.device_id)
                    record = Record(
                        kind="conflict",
                        id=rid,
                        entity_id=item.entity_id,
                        entity_type=item.entity_type,
                        status="open",
                        item=item,
                        created_at=now,
                    )
                    if self._insert_record(record, reason=RESYNC_REASON):
                        self.add_event(
                            "CONFLICT_DETECTED", item.entity_id, record_id=rid, reason=RESYNC_REASON
                        )
                # Queued record items would recreate the entity at the hub: keep them local.
                conn.execute(
                    "UPDATE records SET push_item = 0, push_decision = push_decision * hub_known, "
                    "reason = coalesce(reason, ?) WHERE entity_id = ? AND push_item = 1",
                    (RESYNC_REASON, item.entity_id),
                )
                conn.execute(
                    "UPDATE records SET mutation = NULL WHERE entity_id = ? AND push_item = 0 AND push_decision = 0",
                    (item.entity_id,),
                )
                _search.unindex(conn, cur.rowid)
                conn.execute("DELETE FROM entities WHERE rowid = ?", (cur.rowid,))
                self._count([], [cur.item])
            conn.execute("DELETE FROM resync_seen")
            self._set_meta("resyncing", 0)
        return len(doomed)

    def _resend_what_the_hub_lost(self, conn: sqlite3.Connection) -> int:
        """Queue every entity and record to be pushed again; return how many entities.

        The hub may lack an entity, or hold an older version of it, and this vault does not
        know which: it sends everything, and what the hub holds already comes back as a
        duplicate version, which writes nothing.
        """
        lost = [
            row[0]
            for row in conn.execute("SELECT entity_id FROM entities WHERE mutation IS NULL ORDER BY rowid")
        ]
        first = self._take_mutations(len(lost)) if lost else 0
        conn.executemany(
            "UPDATE entities SET mutation = ? WHERE entity_id = ?",
            [(first + n, eid) for n, eid in enumerate(lost)],
        )
        # Records the hub has are kept once there (by id); a decision it has taken stands.
        shared = [row[0] for row in conn.execute("SELECT id FROM records WHERE hub_known = 1 ORDER BY rowid")]
        first = self._take_mutations(len(shared)) if shared else 0
        conn.executemany(
            "UPDATE records SET hub_known = 0, push_item = 1, push_decision = (status != 'open'), "
            "mutation = ? WHERE id = ?",
            [(first + n, rid) for n, rid in enumerate(shared)],
        )
        conn.execute("DELETE FROM resync_seen")
        self._set_meta("resyncing", 0)
        return len(lost)


def _renamed_chain(chain: tuple[OriginStep, ...], renamed: dict[str, str]) -> tuple[OriginStep, ...] | None:
    """The chain with its refs to renamed records following them, or None when none did."""
    if not any(step.ref in renamed for step in chain):
        return None
    return tuple(
        msgspec.structs.replace(step, ref=renamed[step.ref]) if step.ref in renamed else step
        for step in chain
    )


def _follow_renamed_records(conn: sqlite3.Connection, renamed: dict[str, str]) -> None:
    """Point origin-chain steps that name a renamed record (an accepted suggestion) at its new id."""
    rows = conn.execute("SELECT rowid, origin_chain FROM entities WHERE instr(origin_chain, '\"ref\"') > 0")
    for rowid, blob in rows.fetchall():
        chain = _renamed_chain(_chain_decoder.decode(blob), renamed)
        if chain is not None:
            conn.execute("UPDATE entities SET origin_chain = ? WHERE rowid = ?", (encode_chain(chain), rowid))
    for rid, blob in conn.execute("SELECT id, item FROM records").fetchall():
        item = _item_decoder.decode(blob)
        chain = _renamed_chain(item.origin_chain, renamed)
        if chain is not None:
            item.origin_chain = chain
            conn.execute("UPDATE records SET item = ? WHERE id = ?", (_encoder.encode(item), rid))
