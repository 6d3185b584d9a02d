"""The hub's audit log on SQLite and PostgreSQL: appends, proofs, device batches, tamper
detection, and no fork under concurrent writers in several processes."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest

from truthvault.crypto import DeviceKeys
from truthvault.errors import InvalidInput
from truthvault.hub._audit import HubAuditSink
from truthvault.hub._audit_commit import BatchInfo, Request
from truthvault.hub.store import HubStore, open_store
from truthvault.kernel import (
    Actor,
    AuditBatchTaken,
    AuditRecord,
    AuditTampered,
    MemoryTree,
    encode_record,
    leaf_hash,
    sign_batch,
    verify_consistency,
    verify_inclusion,
)

SRC = Path(__file__).resolve().parents[2] / "src"


def _entry(i: int, device: str = "", tenant: str = "") -> bytes:
    actor = Actor("user:cli", device_id=device, tenant_id=tenant)
    return encode_record(
        AuditRecord(
            tenant, "notes.create", "1.0.0", actor, "allowed", f"2026-12-07T10:00:00.{i:03d}Z", f"{i:064x}"
        )
    )


def _tenant(store: HubStore) -> str:
    return store.add_tenant("t", "cloud_first").id


def test_appends_grow_one_tree_whose_proofs_verify(hub_store: HubStore) -> None:
    tid = _tenant(hub_store)
    log = hub_store.audit
    entries = [_entry(i, tenant=tid) for i in range(37)]
    assert log.append(tid, entries[:5]) == 0
    assert log.append(tid, entries[5:]) == 5
    mirror = MemoryTree(leaf_hash(e) for e in entries)
    size, root = log.head(tid)
    assert (size, root) == (37, mirror.root())
    assert [e.entry for e in log.entries(tid, 30, 100)] == entries[30:]
    for index in (0, 17, 36):
        proof = log.inclusion(tid, index, 37)
        assert verify_inclusion(leaf_hash(entries[index]), index, 37, proof, root)
    for first in (1, 5, 16, 36):
        proof = log.consistency(tid, first, 37)
        assert verify_consistency(first, 37, mirror.root(first), root, proof)
        assert log.root_at(tid, first) == mirror.root(first)
    assert log.verify(tid) == 37
    assert log.verify(tid, start_size=16, start_root=mirror.root(16)) == 37
    with pytest.raises(InvalidInput, match="index 37"):
        log.inclusion(tid, 37, 37)
    assert log.tenant_ids() == [tid]


def test_the_hub_sink_appends_each_record(hub_store: HubStore) -> None:
    tid = _tenant(hub_store)
    sink = HubAuditSink(hub_store.audit_queue)
    record = AuditRecord(
        tid, "device.revoke", "1.0.0", Actor("user:cli", tenant_id=tid), "denied", "x", "0" * 64
    )
    sink.append(record)
    sink.append(record)
    hub_store.audit_queue.flush(tid)  # the sequencer thread may have done it already
    assert [e.entry for e in hub_store.audit.entries(tid)] == [encode_record(record)] * 2
    assert hub_store.audit_queue.pending() == 0 and hub_store.audit.verify(tid) == 2


def test_a_device_batch_is_appended_once_under_the_devices_signature(hub_store: HubStore) -> None:
    tid = _tenant(hub_store)
    keys, other = DeviceKeys.generate(), DeviceKeys.generate()
    public = keys.public_bundle()["sign"]
    hub_store.audit.append(tid, [_entry(0, tenant=tid)])
    batch = sign_batch(keys.sign, tid, "dev-a", 1, [_entry(i, "dev-a", tid) for i in range(3)])
    assert hub_store.audit.append_batch(batch, public) == (1, True)
    assert hub_store.audit.append_batch(batch, public) == (1, False)
    assert hub_store.audit.head(tid)[0] == 4
    stored = hub_store.audit.entries(tid, 1)
    assert {(e.device_id, e.batch_seq) for e in stored} == {("dev-a", 1)}
    kept = hub_store.audit.batch(tid, "dev-a", 1)
    assert kept is not None and kept.signature == batch.signature and kept.sign_public == public
    with pytest.raises(InvalidInput, match="bad signature"):
        hub_store.audit.append_batch(batch, other.public_bundle()["sign"])
    forged = sign_batch(other.sign, tid, "dev-a", 2, [_entry(9, "dev-a", tid)])
    with pytest.raises(InvalidInput, match="bad signature"):
        hub_store.audit.append_batch(forged, public)
    again = sign_batch(keys.sign, tid, "dev-a", 1, [_entry(7, "dev-a", tid)])
    with pytest.raises(AuditBatchTaken, match="already received") as taken:
        hub_store.audit.append_batch(again, public)
    assert (taken.value.next_seq, taken.value.held, taken.value.status) == (2, (), 409)
    assert hub_store.audit.verify(tid) == 4


def test_a_batch_that_repeats_held_entries_is_refused_whole(hub_store: HubStore) -> None:
    """What a restored device (or a hostile one) sends again under a new number: nothing of it
    is appended, the stored entries stay as they are, and the hub says which it holds."""
    tid = _tenant(hub_store)
    keys = DeviceKeys.generate()
    public = keys.public_bundle()["sign"]
    first = [_entry(i, "dev-a", tid) for i in range(3)]
    hub_store.audit.append_batch(sign_batch(keys.sign, tid, "dev-a", 1, first), public)
    before = hub_store.audit.entries(tid)
    again = sign_batch(keys.sign, tid, "dev-a", 5, [_entry(8, "dev-a", tid), first[2], first[0]])
    with pytest.raises(AuditBatchTaken, match="repeats 2 entries") as taken:
        hub_store.audit.append_batch(again, public)
    assert (taken.value.next_seq, taken.value.held) == (2, (1, 2))
    twice = sign_batch(keys.sign, tid, "dev-a", 2, [_entry(8, "dev-a", tid)] * 2)
    with pytest.raises(InvalidInput, match=r"entries\[1\]: the same entry as entries\[0\]"):
        hub_store.audit.append_batch(twice, public)
    assert hub_store.audit.entries(tid) == before and hub_store.audit.verify(tid) == 3
    assert hub_store.audit.batch(tid, "dev-a", 5) is None
    # what is new goes up under the next number
    fresh = sign_batch(keys.sign, tid, "dev-a", 2, [_entry(8, "dev-a", tid)])
    assert hub_store.audit.append_batch(fresh, public) == (3, True)
    assert hub_store.audit.entries(tid)[:3] == before


def test_two_batches_of_one_group_cannot_share_a_number_or_an_entry(hub_store: HubStore) -> None:
    """Concurrent appends are written by one transaction (group commit): the checks see what the
    requests before in the group append, and a refused request fails alone."""
    tid = _tenant(hub_store)
    keys = DeviceKeys.generate()
    public = keys.public_bundle()["sign"]

    def request(seq: int, entries: list[bytes]) -> Request:
        batch = sign_batch(keys.sign, tid, "dev-a", seq, entries)
        return Request(entries, BatchInfo("dev-a", seq, public, batch.signature))

    one, two = [_entry(1, "dev-a", tid)], [_entry(2, "dev-a", tid)]
    a, same_entry, same_seq, other = request(1, one), request(2, one), request(1, two), request(3, two)
    hub_store.audit.group_commit._transaction(
        hub_store.audit.database.tenant_pk(tid), [a, same_entry, same_seq, other]
    )
    assert (a.error, a.first, other.error, other.first) == (None, 0, None, 1)
    assert isinstance(same_entry.error, AuditBatchTaken) and same_entry.error.held == (0,)
    assert isinstance(same_seq.error, AuditBatchTaken) and same_seq.error.next_seq == 2
    assert [e.entry for e in hub_store.audit.entries(tid)] == [*one, *two] and hub_store.audit.verify(
        tid
    ) == 2


# -- tampering -------------------------------------------------------------------------------
def _edit(sql: Callable[..., list[Any]], pk: int) -> None:
    row = sql("SELECT entry FROM audit_entries WHERE tenant_pk = ? AND idx = 5", (pk,))[0][0]
    changed = bytes(row).replace(b'"allowed"', b'"approved"')
    sql("UPDATE audit_entries SET entry = ? WHERE tenant_pk = ? AND idx = 5", (changed, pk))


def _edit_with_leaf(sql: Callable[..., list[Any]], pk: int) -> None:
    row = sql("SELECT entry FROM audit_entries WHERE tenant_pk = ? AND idx = 5", (pk,))[0][0]
    changed = bytes(row).replace(b'"allowed"', b'"approved"')
    sql(
        "UPDATE audit_entries SET entry = ?, leaf = ? WHERE tenant_pk = ? AND idx = 5",
        (changed, leaf_hash(changed), pk),
    )


def _delete(sql: Callable[..., list[Any]], pk: int) -> None:
    sql("DELETE FROM audit_entries WHERE tenant_pk = ? AND idx = 5", (pk,))


def _reorder(sql: Callable[..., list[Any]], pk: int) -> None:
    sql("UPDATE audit_entries SET idx = -1 WHERE tenant_pk = ? AND idx = 4", (pk,))
    sql("UPDATE audit_entries SET idx = 4 WHERE tenant_pk = ? AND idx = 5", (pk,))
    sql("UPDATE audit_entries SET idx = 5 WHERE tenant_pk = ? AND idx = -1", (pk,))


def _truncate(sql: Callable[..., list[Any]], pk: int) -> None:
    sql("DELETE FROM audit_entries WHERE tenant_pk = ? AND idx >= 5", (pk,))


@pytest.mark.parametrize(
    ("tamper", "index", "message"),
    [
        (_edit, 5, "entry 5 was changed"),
        (_edit_with_leaf, 4, "entries 4..5 do not match"),
        (_delete, 5, "entry 5 is missing"),
        (_reorder, 4, "entries 4..5 do not match"),
        (_truncate, 5, "entry 5 is missing"),
    ],
    ids=["edit", "edit-and-rehash", "delete", "reorder", "truncate"],
)
def test_tampering_is_detected_at_the_first_bad_index(
    hub_store: HubStore,
    hub_sql: Callable[..., list[Any]],
    tamper: Callable[..., None],
    index: int,
    message: str,
) -> None:
    tid = _tenant(hub_store)
    hub_store.audit.append(tid, [_entry(i, tenant=tid) for i in range(11)])
    assert hub_store.audit.verify(tid) == 11
    pk = hub_sql("SELECT pk FROM tenants WHERE id = ?", (tid,))[0][0]
    tamper(hub_sql, pk)
    with pytest.raises(AuditTampered, match=message) as caught:
        hub_store.audit.verify(tid)
    assert caught.value.index == index


def test_a_rewritten_history_fails_against_the_root_checked_before(hub_store: HubStore) -> None:
    tid = _tenant(hub_store)
    hub_store.audit.append(tid, [_entry(i, tenant=tid) for i in range(8)])
    _, old_root = hub_store.audit.head(tid)
    # another history of the same tenant, written from scratch (all its tables consistent)
    db = hub_store.audit.database
    with db.write() as conn:
        for table in ("audit_entries", "audit_nodes", "audit_heads"):
            conn.execute(f"DELETE FROM {table} WHERE tenant_pk = ?", (db.tenant_pk(tid),))
    hub_store.audit.append(tid, [_entry(100 + i, tenant=tid) for i in range(9)])
    assert hub_store.audit.verify(tid) == 9  # consistent in itself ...
    with pytest.raises(AuditTampered, match="no longer have the root"):
        hub_store.audit.verify(tid, start_size=8, start_root=old_root)  # ... not with what was seen


# -- concurrency ---------------------------------------------------------------------------
_WRITER = """
import sys, threading
sys.path.insert(0, {src!r})
from truthvault.hub.store import open_store
url, tid, name, threads, each = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
queued = sys.argv[6] == "queued"
store = open_store(url)
def work(t):
    for i in range(each):
        entry = f'{{{{"w":"{{name}}-{{t}}-{{i}}"}}}}'.encode()
        if queued:
            store.audit_queue.enqueue(tid, [entry])
        else:
            store.audit.append(tid, [entry])
ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
print(store.audit.group_commit.groups, store.audit.group_commit.one_statement)
store.close()
"""


@pytest.mark.postgres
@pytest.mark.parametrize("mode", ["direct", "queued"])
def test_eight_writers_in_two_hub_processes_never_fork_the_log(
    pg_dsn: str, tmp_path: Path, mode: str
) -> None:
    store = open_store(pg_dsn)
    try:
        tid = _tenant(store)
        script = tmp_path / "writer.py"
        script.write_text(textwrap.dedent(_WRITER.format(src=str(SRC))))
        threads, each = 8, 40
        procs = [
            subprocess.Popen(
                [sys.executable, str(script), pg_dsn, tid, name, str(threads), str(each), mode],
                stdout=subprocess.PIPE,
                text=True,
            )
            for name in ("a", "b")
        ]
        # and 8 writers in this process too, at the same time
        add = store.audit_queue.enqueue if mode == "queued" else store.audit.append
        local = [
            threading.Thread(
                target=lambda t=t: [add(tid, [f'{{"w":"c-{t}-{i}"}}'.encode()]) for i in range(each)]
            )
            for t in range(threads)
        ]
        for t in local:
            t.start()
        for t in local:
            t.join()
        outs = [p.communicate(timeout=300)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0]
        if mode == "direct":
            # every process's appends went through its group commit, in at most one commit each
            for groups, one_statement in (map(int, out.split()) for out in outs):
                assert 0 < groups <= threads * each and 0 <= one_statement <= groups
        store.audit_queue.sequence()  # what the writer processes' sequencers left (none, at close)
        assert store.audit_queue.pending() == 0
        total = 3 * threads * each
        entries = store.audit.entries(tid, 0, total + 10)
        assert [e.index for e in entries] == list(range(total))  # no gap, no duplicate index
        written = {e.entry for e in entries}
        expected = {
            f'{{"w":"{n}-{t}-{i}"}}'.encode() for n in "abc" for t in range(threads) for i in range(each)
        }
        assert written == expected and len(entries) == len(expected)  # each exactly once
        size, root = store.audit.head(tid)
        assert size == total
        assert root == MemoryTree(leaf_hash(e.entry) for e in entries).root()
        assert store.audit.verify(tid) == total
    finally:
        store.close()


def test_concurrent_appenders_in_one_process_share_transactions(hub_store: HubStore) -> None:
    tid = _tenant(hub_store)
    firsts: list[int] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        for i in range(25):
            first = hub_store.audit.append(tid, [_entry(i, tenant=tid), _entry(100 + t, tenant=tid)])
            with lock:
                firsts.append(first)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(firsts) == list(range(0, 400, 2))  # each append got its own two slots
    assert hub_store.audit.verify(tid) == 400
    assert msgspec.json.decode(hub_store.audit.entries(tid, 0, 1)[0].entry)["v"] == 1


@contextmanager
def _head_locked(hub_url: str, pk: int) -> Iterator[None]:
    """Hold the tenant's audit head locked from another connection (SQLite: the database's
    write lock) until the block ends, then roll back."""
    if hub_url.startswith("postgresql"):
        with psycopg.connect(hub_url) as conn:
            conn.execute("SELECT size FROM audit_heads WHERE tenant_pk = %s FOR UPDATE", (pk,))
            yield
            conn.rollback()
        return
    conn = sqlite3.connect(hub_url, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.rollback()
    finally:
        conn.close()


def _until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition`` holds (a minute at most, then fail)."""
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, "the appends never queued up"
        time.sleep(0.005)


def test_appends_waiting_for_a_commit_share_the_next_one(hub_store: HubStore, hub_url: str) -> None:
    tid = _tenant(hub_store)
    gc = hub_store.audit.group_commit
    assert hub_store.audit.append(tid, [_entry(0, tenant=tid)]) == 0
    pk = hub_store.database.tenant_pk(tid)
    groups, one_statement = gc.groups, gc.one_statement
    firsts: list[int] = []

    def work(t: int) -> None:
        first = hub_store.audit.append(tid, [_entry(1 + t, tenant=tid)])
        firsts.append(first)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    with _head_locked(hub_url, pk):
        for t in threads:
            t.start()
        _until(lambda: gc.pending(pk) == 8)  # one group blocked on the lock, the rest waiting
        assert firsts == []  # none returned before its commit
    for t in threads:
        t.join()
    assert sorted(firsts) == list(range(1, 9))
    assert gc.groups - groups <= 2  # 8 appends, at most 2 commits: the blocked one, then the rest
    if hub_store.database.backend == "postgresql":
        assert gc.one_statement - one_statement == gc.groups - groups  # from the head it wrote last
    assert hub_store.audit.verify(tid) == 9
    stored = {e.entry for e in hub_store.audit.entries(tid)}
    assert stored == {_entry(i, tenant=tid) for i in range(9)}


def test_a_failed_append_in_a_group_fails_alone(hub_store: HubStore, hub_url: str) -> None:
    tid = _tenant(hub_store)
    keys = DeviceKeys.generate()
    public = keys.public_bundle()["sign"]
    hub_store.audit.append(tid, [_entry(0, tenant=tid)])
    pk = hub_store.database.tenant_pk(tid)
    first = sign_batch(keys.sign, tid, "dev-a", 1, [_entry(1, "dev-a", tid)])
    clash = sign_batch(keys.sign, tid, "dev-a", 1, [_entry(2, "dev-a", tid)])  # the same number
    results: dict[str, Any] = {}

    def run(name: str, call: Callable[[], Any]) -> None:
        try:
            results[name] = call()
        except Exception as exc:
            results[name] = exc

    calls = {
        "first": lambda: hub_store.audit.append_batch(first, public),
        "plain": lambda: hub_store.audit.append(tid, [_entry(3, tenant=tid)]),
        "clash": lambda: hub_store.audit.append_batch(clash, public),
    }
    with _head_locked(hub_url, pk):
        threads = [threading.Thread(target=run, args=item) for item in calls.items()]
        for t in threads:
            t.start()
        _until(lambda: hub_store.audit.group_commit.pending(pk) == 3)
    for t in threads:
        t.join()
    # whichever batch came first is the device's batch 1; the other is refused, the plain
    # append is not failed with it
    batches = [results["first"], results["clash"]]
    refused = [r for r in batches if isinstance(r, AuditBatchTaken)]
    assert len(refused) == 1 and "already received" in str(refused[0])
    assert isinstance(results["plain"], int)
    size = hub_store.audit.verify(tid)
    assert size == 3
    kept = hub_store.audit.batch(tid, "dev-a", 1)
    assert kept is not None and kept.signature in {first.signature, clash.signature}


def test_appends_from_two_stores_and_inside_transactions_stay_one_log(hub_url: str) -> None:
    # two hub processes on one database (each its own store: its own idea of the head), and
    # appends joining a caller's transaction, one committed and one rolled back
    one, two = open_store(hub_url), open_store(hub_url)
    try:
        tid = _tenant(one)
        expected = []
        for i in range(6):
            store = (one, two)[i % 2]
            assert store.audit.append(tid, [_entry(i, tenant=tid)]) == i
            expected.append(_entry(i, tenant=tid))
        with one.database.write():
            assert one.audit.append(tid, [_entry(6, tenant=tid)]) == 6
        expected.append(_entry(6, tenant=tid))
        with pytest.raises(RuntimeError), two.database.write():
            two.audit.append(tid, [_entry(99, tenant=tid)])
            raise RuntimeError("the caller's transaction fails")
        assert two.audit.append(tid, [_entry(7, tenant=tid)]) == 7
        assert one.audit.append(tid, [_entry(8, tenant=tid)]) == 8
        expected += [_entry(7, tenant=tid), _entry(8, tenant=tid)]
        assert [e.entry for e in one.audit.entries(tid)] == expected
        assert one.audit.verify(tid) == two.audit.verify(tid) == 9
        assert one.audit.head(tid)[1] == MemoryTree(leaf_hash(e) for e in expected).root()
    finally:
        one.close()
        two.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "truthvault", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_hub_audit_verify_checks_the_database_and_names_the_bad_entry(
    hub_store: HubStore, hub_url: str, hub_sql: Callable[..., list[Any]]
) -> None:
    tid = _tenant(hub_store)
    hub_store.audit.append(tid, [_entry(i, tenant=tid) for i in range(12)])
    good = _cli("hub", "audit", "verify", "--db", hub_url)
    assert good.returncode == 0, good.stderr
    assert "tenant 't': 12 entries verified" in good.stdout
    pk = hub_sql("SELECT pk FROM tenants WHERE id = ?", (tid,))[0][0]
    _edit(hub_sql, pk)
    bad = _cli("hub", "audit", "verify", "--db", hub_url, "--tenant", "t")
    assert bad.returncode == 1
    assert (
        bad.stderr.splitlines()[0] == "error: tenant 't': entry 5 was changed: it does not hash to its leaf"
    )
