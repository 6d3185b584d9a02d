"""The input broker's cost: approvals asked, decided and redeemed per second on each store, and
the time a PIN check takes (scrypt at its default cost, on purpose slow).

One round trip is what a risky action costs beyond itself: ``ask_approval`` (a pending row),
``approve`` (a compare-and-set), ``redeem`` (another compare-and-set); each a transaction of
its own, on a vault file, a SQLite hub and a PostgreSQL hub. The vault's broker seals each
decision and checks the seal before it redeems (HMAC-SHA256 under the vault's own key: it joined
no hub), as a device's does; the hub's seals none, as the hub's own broker does.

    .venv/bin/python benchmarks/broker_bench.py                 # 2,000 round trips a store
    .venv/bin/python benchmarks/broker_bench.py --count 200 --no-pg
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from _figures import Figures

from truthvault.hub.store import open_store
from truthvault.kernel import Actor, ApprovalSealer, BrokerSettings, BrokerStore, InputBroker, Risk
from truthvault.vault import Vault

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
AI, ME = Actor("ai-local:bench", "dev-a", ""), Actor("user:cli", "dev-b", "")


@contextmanager
def stores(tmp: Path, pg: bool) -> Iterator[list[tuple[str, BrokerStore, Actor, ApprovalSealer | None]]]:
    """(name, store, the AI that asks there, sealer) for a vault file, a SQLite hub and, with
    ``pg``, a PostgreSQL hub (a vault seals only what is asked on it before it holds a keyring)."""
    vault = Vault.open(tmp / "vault", source="user:cli")
    hubs = [("hub on SQLite", str(tmp / "hub.db"))]
    pg_name = f"tv_broker_bench_{uuid.uuid4().hex[:8]}"
    if pg:
        with psycopg.connect(PG_ADMIN, autocommit=True) as con:
            con.execute(f"CREATE DATABASE {pg_name}")
        hubs.append(("hub on PostgreSQL", PG_ADMIN.rsplit("/", 1)[0] + f"/{pg_name}"))
    opened = [open_store(url, create=True) for _, url in hubs]
    try:
        found: list[tuple[str, BrokerStore, Actor, ApprovalSealer | None]] = [
            ("vault (SQLite file)", vault.broker.store, vault.actor(AI.source), vault.broker.sealer)
        ]
        for (name, _), hub in zip(hubs, opened, strict=True):
            tenant = hub.add_tenant("bench", "cloud_first")
            found.append((name, hub.broker.store(tenant.id), Actor(AI.source, AI.device_id, tenant.id), None))  # type: ignore[attr-defined]
        yield found
    finally:
        for hub in opened:
            hub.close()
        vault.close()
        if pg:
            with psycopg.connect(PG_ADMIN, autocommit=True) as con:
                con.execute(f"DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)")


def round_trips(store: BrokerStore, ai: Actor, count: int, sealer: ApprovalSealer | None) -> float:
    """Ask (as ``ai``), approve and redeem ``count`` approvals; round trips a second."""
    broker = InputBroker(store, tenant_id=ai.tenant_id, sealer=sealer)
    start = time.perf_counter()
    for n in range(count):
        rid = broker.ask_approval(
            actor=ai, action="notes.delete", risk=Risk.DESTRUCTIVE, kind="approval",
            input_hash=f"h{n}", targets=(), reason="bench",
        )  # fmt: skip
        broker.approve(rid, actor=ME)
        broker.redeem(rid, actor=ai, action="notes.delete", input_hash=f"h{n}")
    return count / (time.perf_counter() - start)


def pin_check_ms(store: BrokerStore, tenant: str, tries: int) -> float:
    """The median time of a right PIN's check at the default scrypt cost, in ms."""
    broker = InputBroker(store, settings=BrokerSettings(), tenant_id=tenant)
    broker.set_pin("246810", actor=ME)
    times = []
    for _ in range(tries):
        start = time.perf_counter()
        broker.check_pin("246810")
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=2000, help="round trips a store")
    parser.add_argument("--no-pg", action="store_true", help="leave PostgreSQL out")
    parser.add_argument("--json", default=None, help="write the figures here")
    args = parser.parse_args()
    figures = Figures()
    with tempfile.TemporaryDirectory() as tmp, stores(Path(tmp), not args.no_pg) as found:
        print(f"{'store':<22} {'ask+approve+redeem/s':>21} {'PIN check (ms)':>15}")
        for name, store, ai, sealer in found:
            rate = round_trips(store, ai, args.count, sealer)
            pin = pin_check_ms(store, ai.tenant_id, 5)
            print(f"{name:<22} {rate:>21,.0f} {pin:>15.1f}")
            figures.add(f"{name}: approvals asked, decided and redeemed/s", rate, "1/s", "higher")
            figures.add(f"{name}: PIN check (scrypt n=2^15)", pin, "ms", "lower")
    figures.write(args.json)


if __name__ == "__main__":
    main()
