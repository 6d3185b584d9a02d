"""Property: random writes by random levels on several vaults, synced through a real hub
store in random orders, always converge; U1 is never replaced from below; nothing is lost."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from truthvault.clock import HybridClock
from truthvault.errors import ConflictState, NotFound
from truthvault.hub.store import HubStore, open_store
from truthvault.model import PullResponse, SyncItem
from truthvault.sync import Syncer
from truthvault.truth import Outcome, record_id, resolution_key
from truthvault.vault import Vault

from .test_resync import StoreClient as _StoreClient

SOURCES = {1: "user:cli", 2: "automation:rule", 3: "ai-local:m", 4: "ai-lan:m", 5: "ai-cloud:p/m"}
REPLICAS = 3


class StoreClient(_StoreClient):
    """The sync client's view of a hub, straight onto a store, in small pages (which exercise
    paging)."""

    def pull(
        self,
        since: int,
        limit: int = 1000,
        wait: float = 0,
        tag: str | None = None,
        refused: object = None,
        tag_seq: int | None = None,
    ) -> PullResponse:
        return super().pull(since, min(limit, 7), wait, tag, refused, tag_seq)


def _skewed(vault: Vault, skew_ms: int) -> None:
    """Give the vault a wall clock that runs ``skew_ms`` ahead (or behind) of the real one."""
    vault._db.clock = HybridClock(
        vault.replica.clock.last, wall=lambda: time.time_ns() // 1_000_000 + skew_ms
    )


@contextmanager
def world(url_for: Any, skews: tuple[int, ...] = ()) -> Iterator[tuple[HubStore, list[Vault], list[Syncer]]]:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        store = open_store(url_for(Path(tmp)))
        stack.callback(store.close)
        tenant = store.add_tenant("t", "cloud_first")
        vaults, syncers = [], []
        for n in range(REPLICAS):
            device, token = store.add_device("t", f"d{n}")
            vault = Vault.open(Path(tmp) / f"v{n}", source="user:cli")
            stack.callback(vault.close)
            if skews:
                _skewed(vault, skews[n])
            vault.replica.join(
                hub_url="store://",
                token=token,
                tenant_id=tenant.id,
                tenant_name=tenant.name,
                device_id=device.id,
                vault_mode=tenant.vault_mode,
            )
            vaults.append(vault)
            syncers.append(Syncer(vault, StoreClient(store, token), batch=5, page=5))  # type: ignore[arg-type]
        yield store, vaults, syncers


operations = st.lists(
    st.tuples(
        st.integers(0, REPLICAS - 1),
        st.sampled_from(
            ["write", "write", "write", "delete", "accept", "reject", "resolve", "sync", "sync", "pull"]
        ),
        st.integers(1, 5),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=40,
)


def run(url_for: Any, ops: list[tuple[int, str, int, int]], skews: tuple[int, ...] = ()) -> None:
    with world(url_for, skews) as (_store, vaults, syncers):
        written: list[SyncItem] = []
        had_user_truth: set[str] = set()
        for n, (r, kind, level, slot) in enumerate(ops):
            vault, eid, source = vaults[r], f"e{slot}", SOURCES[level]
            if kind == "sync":
                syncers[r].sync()
                continue
            if kind == "pull":  # while this replica's own changes wait to be pushed
                syncers[r].pull()
                continue
            if kind == "accept":
                open_ = vault.records(kind="suggestion", status="open")
                if open_:
                    written.append(vault.accept(open_[0].id, force=True))
                    had_user_truth.add(open_[0].entity_id)
                continue
            if kind == "reject":
                open_ = vault.records(kind="suggestion", status="open")
                if open_:
                    vault.reject(open_[slot % len(open_)].id)
                continue
            if kind == "resolve":
                open_ = vault.records(kind="conflict", status="open")
                if open_:
                    target = open_[slot % len(open_)]
                    vault.resolve_conflict(target.id, "restore" if level % 2 else "keep")
                    if level % 2:
                        written.append(vault.get(target.entity_id))
                continue
            try:
                if kind == "delete":
                    result = vault.delete(eid, source=source)
                else:
                    result = vault.put("note", {"text": f"op {n} by {source}"}, entity_id=eid, source=source)
            except (NotFound, ConflictState):  # deleting what this replica never had, or twice
                continue
            written.append(result.item)
            if result.outcome is Outcome.APPLIED and result.item.truth_level == 1:
                had_user_truth.add(eid)

        for syncer in syncers:
            syncer.sync()
        for syncer in syncers:
            syncer.pull()

        # (a) convergence: the same winner everywhere, and the hub agrees
        def state(v: Vault) -> dict[str, tuple[str, str, int, bool]]:
            return {
                i.entity_id: (i.last_modified_at, i.device_id, i.truth_level, i.deleted)
                for i in v.list(include_deleted=True, limit=1000)
            }

        states = [state(v) for v in vaults]
        assert states[0] == states[1] == states[2]
        hub_items, hub_records, checksum = _pull_everything(syncers[0].client)  # type: ignore[arg-type]
        assert {
            i.entity_id: (i.last_modified_at, i.device_id, i.truth_level, i.deleted) for i in hub_items
        } == states[0]
        assert {v.replica.checksum() for v in vaults} == {checksum}
        assert all(v.replica.pending_count() == 0 for v in vaults)

        # (d) the kept records converge too: every replica holds the hub's records, no more, no
        # fewer, each with the hub's status
        hub_kept = {r.id: (r.status, r.resolution) for r in _latest(hub_records)}
        for v in vaults:
            assert {r.id: (r.status, r.resolution) for r in v.records(status=None)} == hub_kept
        # and every replica's sync says so: entities and records by checksum, nothing differs
        for syncer in syncers:
            result = syncer.check()
            assert result.in_sync, result
            assert syncer.sync().diverged == []

        # (b) no U1 content is ever replaced by a lower level
        for eid in had_user_truth:
            assert states[0][eid][2] == 1, f"{eid} fell below user truth: {states[0][eid]}"

        # (c) nothing is lost: every version written is current, kept, or built upon
        kept = {r.id for r in hub_records}
        for v in vaults:
            kept |= {r.id for r in v.records(status=None)}
        winners = {(eid, s[0], s[1]) for eid, s in states[0].items()}
        for w in written:
            key = (w.entity_id, w.last_modified_at, w.device_id)
            if key in winners or record_id(*key) in kept:
                continue
            built_on = any(
                o.entity_id == w.entity_id
                and (
                    (o.device_id == w.device_id and o.last_modified_at > w.last_modified_at)
                    or (o.base_clock == w.last_modified_at and o.base_version == w.version)
                )
                for o in written
            )
            covered = w.deleted and any(
                o.deleted
                and o.entity_id == w.entity_id
                and resolution_key(o.truth_level, o.last_modified_at, o.device_id)
                > resolution_key(w.truth_level, w.last_modified_at, w.device_id)
                for o in written
            )
            assert built_on or covered, f"lost: {w}"


def _latest(records: list[Any]) -> list[Any]:
    """Each record as last seen in the feed (a decided record comes again with its new status)."""
    return list({r.id: r for r in records}.values())


def _pull_everything(client: StoreClient) -> tuple[list[SyncItem], list[Any], str | None]:
    items: dict[str, SyncItem] = {}
    records: list[Any] = []
    since = 0
    while True:
        page = client.pull(since)
        for item in page.items:
            items[item.entity_id] = item
        records += page.records
        since = page.cursor
        if not page.has_more:
            return list(items.values()), records, page.checksum


def test_a_replica_that_missed_a_version_keeps_the_hubs_records_not_its_own() -> None:
    # d1 holds e0 at C5; d0 raises it to LN4 (an edit of its own: nothing to keep), then d2's U1
    # beats LN4 at the hub, which keeps LN4 as a suggestion. d1 never saw LN4: it must not keep
    # "C5 lost to U1" of its own, which no other replica has.
    run(
        lambda tmp: str(tmp / "hub.db"),
        [
            (0, "write", 5, 0),
            (0, "sync", 1, 0),
            (1, "sync", 1, 0),
            (0, "write", 4, 0),
            (0, "sync", 1, 0),
            (2, "write", 1, 0),
            (2, "sync", 1, 0),
        ],
    )


def test_a_pull_while_changes_wait_converges_records_too() -> None:
    # Issue 9, item 2: d0 puts e0 at C5; d2 writes its own U1 e0 and pulls while it is queued;
    # d1 edits the AI draft. d2 used to keep the draft as a suggestion no other replica had.
    run(
        lambda tmp: str(tmp / "hub.db"),
        [
            (0, "write", 5, 0),
            (0, "sync", 1, 0),
            (2, "write", 1, 0),
            (2, "pull", 1, 0),
            (1, "sync", 1, 0),
            (1, "write", 1, 0),
            (0, "sync", 1, 0),
            (1, "sync", 1, 0),
            (2, "sync", 1, 0),
        ],
    )


#: each replica's clock off by up to ten minutes either way (the hub refuses 15 minutes ahead)
skews = st.tuples(*[st.integers(-600_000, 600_000)] * REPLICAS)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations, skews)
def test_replicas_converge_on_sqlite(ops: list[tuple[int, str, int, int]], skews: tuple[int, ...]) -> None:
    run(lambda tmp: str(tmp / "hub.db"), ops, skews)


@pytest.mark.postgres
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=operations, skews=skews)
def test_replicas_converge_on_postgresql(
    pg_database: str, ops: list[tuple[int, str, int, int]], skews: tuple[int, ...]
) -> None:
    import uuid

    import psycopg

    schema = f"p_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        run(lambda tmp: f"{pg_database}?options=-csearch_path%3D{schema}", ops, skews)
    finally:
        with psycopg.connect(pg_database, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
