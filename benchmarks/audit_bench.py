"""The audit log: appends/s under concurrent writers, verification rate, proofs at scale.

- appends/s: W writer threads appending to one tenant's log, each append durable when it
  returns, on PostgreSQL and on SQLite: single entries queued (`AuditQueue.enqueue`, as an
  action's or a push's entry is; timed until the sequencer has moved them all into the tree),
  single entries straight into the tree (`AuditLog.append`: group commit, every writer waiting
  shares one commit, on PostgreSQL one statement), and 10 entries an append (a device's signed
  batch). Afterwards the log is checked: its size is the number of
  entries appended (no fork, no loss) and it verifies.
- verification: `AuditLog.verify` over a log of --entries entries (every entry re-hashed,
  every stored node recomputed), in entries/s.
- proofs at --entries: inclusion and consistency proofs read from the store (O(log n) rows),
  their size, the time to make one and to verify one.

    .venv/bin/python benchmarks/audit_bench.py                      # 1M entries, 20,000 appends
    .venv/bin/python benchmarks/audit_bench.py --entries 10000 --appends 2000
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from _figures import Figures

from truthvault.hub.store import HubStore, open_store
from truthvault.kernel import (
    Actor,
    AuditRecord,
    encode_record,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)

PG_SERVER = os.environ.get("TRUTHVAULT_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
#: entries a bulk append writes at once when a big log is built
_BULK = 10_000


def _entry(tenant: str, i: int) -> bytes:
    actor = Actor("user:cli", device_id="", tenant_id=tenant)
    return encode_record(
        AuditRecord(
            tenant, "notes.create", "1.0.0", actor, "allowed", "2026-12-07T10:00:00.000Z", f"{i:064x}"
        )
    )


@contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    name = f"tv_audit_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_SERVER, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_SERVER.rpartition("/")[0] + "/" + name
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def store_at(backend: str, tmp: Path, tag: str) -> Iterator[HubStore]:
    if backend == "sqlite":
        store = open_store(str(tmp / f"{tag}.db"))
        try:
            yield store
        finally:
            store.close()
        return
    with pg_database() as url:
        store = open_store(url)
        try:
            yield store
        finally:
            store.close()


def appends(store: HubStore, writers: int, total: int, per: int = 1, queued: bool = False) -> float:
    """Entries/s appended by ``writers`` threads, ``per`` entries an append (each append waits
    for its commit), straight into the tree or ``queued`` (timed until all are sequenced);
    checks the log after: every entry in it once."""
    tenant = store.add_tenant(f"w{writers}-{per}-{queued}", "cloud_first").id
    add = store.audit_queue.enqueue if queued else store.audit.append
    each = max(per, total // writers // per * per)
    entries = [_entry(tenant, i) for i in range(each * writers)]
    barrier = threading.Barrier(writers + 1)

    def work(w: int) -> None:
        barrier.wait()
        mine = entries[w * each : (w + 1) * each]
        for start in range(0, each, per):
            add(tenant, mine[start : start + per])

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    store.audit_queue.flush(tenant)
    elapsed = time.perf_counter() - t0
    size = store.audit.verify(tenant)
    assert size == each * writers, (size, each * writers)  # every append once: no fork, no loss
    return size / elapsed


def bare_commits(url: str, writers: int, total: int) -> float:
    """The database's own ceiling beside it: commits/s of ``writers`` connections each
    inserting one row a transaction (what one entry an append costs without group commit)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS bench_commits (w int, i int)")
    each = total // writers
    barrier = threading.Barrier(writers + 1)

    def work(w: int) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            barrier.wait()
            for i in range(each):
                conn.execute("INSERT INTO bench_commits VALUES (%s, %s)", (w, i))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return each * writers / (time.perf_counter() - t0)


def build(store: HubStore, n: int) -> str:
    tenant = store.add_tenant("big", "cloud_first").id
    for start in range(0, n, _BULK):
        store.audit.append(tenant, [_entry(tenant, i) for i in range(start, min(n, start + _BULK))])
    return tenant


def proofs(store: HubStore, tenant: str, n: int, samples: int = 200) -> dict[str, float]:
    """Median times (µs) to make and verify proofs at size ``n``, and their sizes (hashes)."""
    rng = random.Random(7)
    _, root = store.audit.head(tenant)
    make, check, sizes, cmake, ccheck, csizes = [], [], [], [], [], []
    for _ in range(samples):
        index = rng.randrange(n)
        leaf = leaf_hash(store.audit.entries(tenant, index, 1)[0].entry)
        t0 = time.perf_counter()
        proof = store.audit.inclusion(tenant, index, n)
        t1 = time.perf_counter()
        assert verify_inclusion(leaf, index, n, proof, root)
        t2 = time.perf_counter()
        make.append(t1 - t0)
        check.append(t2 - t1)
        sizes.append(len(proof))
        first = rng.randrange(1, n)
        old = store.audit.root_at(tenant, first)
        t0 = time.perf_counter()
        cproof = store.audit.consistency(tenant, first, n)
        t1 = time.perf_counter()
        assert verify_consistency(first, n, old, root, cproof)
        t2 = time.perf_counter()
        cmake.append(t1 - t0)
        ccheck.append(t2 - t1)
        csizes.append(len(cproof))
    us = 1e6
    return {
        "inclusion hashes (max)": max(sizes),
        "inclusion make µs": statistics.median(make) * us,
        "inclusion verify µs": statistics.median(check) * us,
        "consistency hashes (max)": max(csizes),
        "consistency make µs": statistics.median(cmake) * us,
        "consistency verify µs": statistics.median(ccheck) * us,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000, help="size of the log proofs run on")
    parser.add_argument("--appends", type=int, default=20_000, help="appends per concurrency measurement")
    parser.add_argument("--backends", default="postgresql,sqlite")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    args = parser.parse_args()
    figures = Figures()
    backends = args.backends.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        print(f"\n{'entries/s appended':<36}{'8 writers':>12}{'32 writers':>12}")
        for backend in backends:
            for per, queued in ((1, True), (1, False), (10, False)):
                row = []
                for writers in (8, 32):
                    with store_at(backend, Path(tmp), f"w{writers}-{per}-{queued}") as store:
                        rate = appends(store, writers, args.appends, per, queued)
                    suffix = ", queued" if queued else "" if per == 1 else f", {per} entries an append"
                    figures.add(f"{backend}: appends/s, {writers} writers{suffix}", rate, "/s", "higher")
                    row.append(rate)
                how = "queued" if queued else "direct"
                label = f"{backend}, {how}, {per} entr{'y' if per == 1 else 'ies'} an append"
                print(f"{label:<36}" + "".join(f"{r:>12,.0f}" for r in row))
            if backend == "postgresql":
                with pg_database() as url:
                    ceiling = [bare_commits(url, w, args.appends) for w in (8, 32)]
                for w, rate in zip((8, 32), ceiling, strict=True):
                    figures.add(f"postgresql: bare one-row commits/s, {w} writers", rate, "/s", "higher")
                print(f"{'postgresql, bare one-row commits':<36}" + "".join(f"{r:>12,.0f}" for r in ceiling))
        print(f"\n{'log of ' + format(args.entries, ',') + ' entries':<36}{'value':>12}")
        for backend in backends:
            with store_at(backend, Path(tmp), "big") as store:
                t0 = time.perf_counter()
                tenant = build(store, args.entries)
                build_rate = args.entries / (time.perf_counter() - t0)
                t0 = time.perf_counter()
                assert store.audit.verify(tenant) == args.entries
                verify_rate = args.entries / (time.perf_counter() - t0)
                stats = proofs(store, tenant, args.entries)
            rows = {"bulk append entries/s": build_rate, "verify entries/s": verify_rate, **stats}
            for name, value in rows.items():
                print(f"{backend + ': ' + name:<36}{value:>12,.1f}")
                unit = "µs" if "µs" in name else "hashes" if "hashes" in name else "/s"
                better = "higher" if unit == "/s" else "lower"
                figures.add(f"{backend}: {name} at {args.entries} entries", value, unit, better)
    figures.write(args.json)
    print(f"({args.appends:,} appends per concurrency run, each checked after; proofs: median of 200)")


if __name__ == "__main__":
    main()
