"""Entity contracts: the cost of checking payloads against their contract version.

Prints one table: per note payload, validation with ``jsonschema-rs`` (what truthvault uses)
and, when it is installed, the ``jsonschema`` package (Draft 2020-12, a cached validator);
the hub's screen of a 1,000-item cloud-first push (decode + validate every payload, note the
versions in use); in-process pushes of 1,000-item batches into a SQLite hub store with the
screen on and off, alternating (the medians); and one breaking-change check of the built-in
note against a new version.

    .venv/bin/python benchmarks/contracts_bench.py
    .venv/bin/python benchmarks/contracts_bench.py --items 1000 --json figures.json
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from _figures import Figures

from truthvault.clock import HybridClock
from truthvault.hub.store import Limits, open_store
from truthvault.kernel import BUILTIN_CONTRACTS, breaking_changes
from truthvault.model import PushRequest, SyncItem, encode

NOTE = BUILTIN_CONTRACTS[0]
NOTE_V2 = {
    **NOTE.schema,
    "properties": {**NOTE.schema["properties"], "pinned": {"type": "boolean"}, "due": {"type": "string"}},
}


def _payload(n: int) -> dict[str, object]:
    # ~300 bytes of JSON, like the sync benchmark's notes
    return {"title": f"note {n}", "text": f"note {n}: " + secrets.token_hex(120), "tags": ["bench", "sync"]}


def per_call_us(fn: Callable[[], object], number: int) -> float:
    """The median of five timings of ``number`` calls, per call, in µs."""
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - start) / number * 1e6)
    return statistics.median(runs)


def bench_validation(number: int) -> dict[str, float]:
    import jsonschema_rs

    payload = _payload(1)
    rs = jsonschema_rs.Draft202012Validator(dict(NOTE.schema))
    found = {"jsonschema-rs: validate one note (µs)": per_call_us(lambda: rs.is_valid(payload), number)}
    try:
        import jsonschema
    except ImportError:
        return found
    py = jsonschema.Draft202012Validator(dict(NOTE.schema))
    found["jsonschema: validate one note (µs)"] = per_call_us(
        lambda: py.is_valid(payload), max(1, number // 20)
    )
    return found


def _batch(ctx: Any, clock: HybridClock, start: int, items: int) -> list[SyncItem]:
    return [
        SyncItem(
            entity_type="note",
            entity_id=f"n{n}",
            tenant_id=ctx.tenant_id,
            truth_level=1,
            origin_source="user:bench",
            last_modified_at=clock.now(),
            device_id=ctx.device_id,
            payload=msgspec.Raw(encode(_payload(n))),
            mutation=n + 1,
        )
        for n in range(start, start + items)
    ]


def bench_push(items: int, batches: int) -> tuple[float, float]:
    """Items/s of in-process pushes with the contract screen on and off, alternating (medians)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'hub.db'}")
        try:
            store.add_tenant("bench", "cloud_first")
            _, token = store.add_device("bench", "d")
            ctx = store.authenticate(token)
            clock, engine = HybridClock(), store.engine  # type: ignore[attr-defined]
            screen, rates = engine.screen, {True: [], False: []}
            for n in range(2 * batches):
                on = n % 2 == 0
                batch = PushRequest(
                    items=_batch(ctx, clock, n * items, items), cursor=store.head(ctx.tenant_id)
                )
                engine.screen = screen if on else None
                start = time.perf_counter()
                response = store.push(ctx, batch, Limits(), time.time_ns() // 1_000_000)
                rates[on].append(items / (time.perf_counter() - start))
                assert {r.outcome for r in response.results} == {"applied"}
            return statistics.median(rates[True]), statistics.median(rates[False])
        finally:
            store.close()


def bench_screen(items: int) -> float:
    """The hub's screen of one cloud-first push of ``items`` notes, in ms (median of 5)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(f"sqlite:///{Path(tmp) / 'hub.db'}")
        try:
            store.add_tenant("bench", "cloud_first")
            _, token = store.add_device("bench", "d")
            ctx = store.authenticate(token)
            batch = _batch(ctx, HybridClock(), 0, items)
            store.contracts.screen(ctx, batch)  # the first notes the versions in use
            runs = []
            for _ in range(5):
                start = time.perf_counter()
                refused = store.contracts.screen(ctx, batch)
                runs.append((time.perf_counter() - start) * 1e3)
                assert not refused
            return statistics.median(runs)
        finally:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--items", type=int, default=1000, help="items of the screened push (default 1,000)")
    parser.add_argument("--batches", type=int, default=10, help="pushes with the screen on, and as many off")
    parser.add_argument("--number", type=int, default=20_000, help="calls per timing of one validation")
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    args = parser.parse_args()
    figures = Figures()
    rows: list[tuple[str, float, str]] = []
    for name, value in bench_validation(args.number).items():
        rows.append((name, value, "µs"))
    screen = bench_screen(args.items)
    rows.append((f"hub screen of a {args.items:,}-item cloud-first push (ms)", screen, "ms"))
    rows.append(("hub screen per item (µs)", screen * 1e3 / args.items, "µs"))
    on, off = bench_push(args.items, args.batches)
    rows.append(("in-process push items/s, screen on", on, "items/s"))
    rows.append(("in-process push items/s, screen off", off, "items/s"))
    rows.append(
        (
            "breaking-change check, note v1 -> v2 (µs)",
            per_call_us(lambda: breaking_changes(NOTE.schema, NOTE_V2), 2000),
            "µs",
        )
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'figure'.ljust(width)} | value")
    print(f"{'-' * width}-|-------")
    for name, value, unit in rows:
        print(f"{name.ljust(width)} | {value:,.2f}")
        figures.add(name, value, unit, "higher" if unit == "items/s" else "lower")
    figures.write(args.json)


if __name__ == "__main__":
    main()
