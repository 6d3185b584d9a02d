"""Durable workflows: a 3-step saga through truthvault's engine against a plain DBOS workflow
doing the same steps, in the same process and run, on SQLite and on local PostgreSQL; and an
automation reacting to a write.

- workflows/s: each step writes one event into a hub store. Through the engine each step also
  keeps its ledger row, its WORKFLOW_STEP event and its audit entry in that write's transaction
  (what makes a completed step never run twice, and every step audited); the plain DBOS
  workflow's step only writes the event. The two alternate in batches, so a busy machine slows
  both alike. DBOS's system database: a SQLite file beside the hub's, or the hub's PostgreSQL.
- automation latency: a vault with a rule that tags notes mentioning a date, its runner
  watching (as `truthvault automation run --watch` does); the time from a note's commit to the
  suggestion existing, p50 and p95.

    .venv/bin/python benchmarks/workflow_bench.py                 # 3 rounds of 100 workflows
    .venv/bin/python benchmarks/workflow_bench.py --rounds 1 --workflows 20 --notes 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
from _figures import Figures

from truthvault.hub import hub_engine, open_store
from truthvault.hub.store import HubStore
from truthvault.kernel import Saga, SagaRegistry, Step, StepContext, WorkflowEngine
from truthvault.vault import Vault, vault_engine

PG_SERVER = os.environ.get("TRUTHVAULT_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
STEPS = ("one", "two", "three")

_store: HubStore | None = None
_tenant = ""


def _plain_registered() -> Any:
    """A plain DBOS workflow of the same three steps (registered before DBOS launches)."""
    from dbos import DBOS

    @DBOS.step(name="bench.plain.step")
    def step(name: str) -> str:
        assert _store is not None
        _store.add_event(_tenant, "WORKFLOW_STEP", {"plain": name})
        return name

    @DBOS.workflow(name="bench.plain")
    def plain() -> list[str]:
        return [step(n) for n in STEPS]

    return plain


def _saga() -> SagaRegistry:
    def run(ctx: StepContext) -> str:
        assert _store is not None
        _store.add_event(_tenant, "WORKFLOW_STEP", {"saga": ctx.step})
        return ctx.step

    registry = SagaRegistry()
    registry.add(Saga("bench.three", "1.0.0", tuple(Step(n, run) for n in STEPS)))
    return registry


def _rate(run_one: Any, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        run_one()
    return n / (time.perf_counter() - start)


def workflows(url: str, rounds: int, n: int, plain: Any) -> tuple[float, float]:
    """(ours, plain DBOS) workflows/s, medians of alternating rounds."""
    global _store, _tenant
    _store = open_store(url)
    _tenant = _store.add_tenant(f"bench-{uuid.uuid4().hex[:6]}", "cloud_first").id
    engine: WorkflowEngine = hub_engine(_store, url, sagas=_saga()).launch()
    actor = {"source": "user:bench", "tenant_id": _tenant}
    try:
        ours_one = lambda: engine.run("bench.three", {}, actor=actor)  # noqa: E731
        for _ in range(5):  # warm both: imports, prepared statements, the files' first pages
            ours_one(), plain()
        ours, theirs = [], []
        for _ in range(rounds):
            ours.append(_rate(ours_one, n))
            theirs.append(_rate(plain, n))
    finally:
        engine.close()
        _store.close()
    return statistics.median(ours), statistics.median(theirs)


def automation_latency(notes: int) -> tuple[float, float]:
    """p50 and p95 ms from a note's commit to the rule's suggestion existing."""
    with tempfile.TemporaryDirectory() as tmp, Vault.open(Path(tmp) / "v", source="user:bench") as vault:
        rule = vault.automations.add(
            {
                "name": "dated",
                "trigger": {"on": "write", "type": "note", "matches": r"\d{4}-\d{2}-\d{2}"},
                "action": {"do": "tag", "tags": ["dated"]},
            }
        )
        del rule
        stop = threading.Event()
        with vault_engine(vault) as engine:
            runner = threading.Thread(target=vault.automations.watch, args=(engine, stop), daemon=True)
            runner.start()
            took = []
            for i in range(notes):
                start = time.perf_counter()
                note = vault.put("note", {"text": f"dentist on 2026-12-{i % 28 + 1:02d}"}).item
                while not vault.records(kind="suggestion", entity_id=note.entity_id):
                    time.sleep(0.0005)
                took.append((time.perf_counter() - start) * 1000)
            stop.set()
            vault._db.inbox.ready.set()
            runner.join(10)
    q = statistics.quantiles(took, n=100)
    return q[49], q[94]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workflows", type=int, default=100, help="workflows per round and path")
    parser.add_argument("--notes", type=int, default=200, help="notes for the automation latency")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()
    figures = Figures()
    flow = _plain_registered()
    with tempfile.TemporaryDirectory() as tmp:
        ours, plain = workflows(str(Path(tmp) / "hub.db"), args.rounds, args.workflows, flow)
    figures.add("3-step workflows/s, SQLite, truthvault", ours, "/s", "higher")
    figures.add("3-step workflows/s, SQLite, plain DBOS", plain, "/s", "higher")
    figures.add("  ratio, SQLite (target >= 0.7)", ours / plain, "x", "higher")
    name = f"tv_wf_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_SERVER, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        ours, plain = workflows(f"{PG_SERVER.rsplit('/', 1)[0]}/{name}", args.rounds, args.workflows, flow)
    finally:
        with psycopg.connect(PG_SERVER, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    figures.add("3-step workflows/s, PostgreSQL, truthvault", ours, "/s", "higher")
    figures.add("3-step workflows/s, PostgreSQL, plain DBOS", plain, "/s", "higher")
    figures.add("  ratio, PostgreSQL (target >= 0.7)", ours / plain, "x", "higher")
    p50, p95 = automation_latency(args.notes)
    figures.add("automation: write to suggestion p50, ms", p50, "ms", "lower")
    figures.add("automation: write to suggestion p95, ms (target < 100)", p95, "ms", "lower")
    print(
        f"{args.rounds} rounds of {args.workflows} workflows each way; {args.notes} notes for the latency\n"
    )
    print(f"| {'measure':<56} | {'value':>9} |\n|{'-' * 58}|{'-' * 11}:|")
    for label, row in figures.rows.items():
        print(f"| {label:<56} | {row['value']:>9.2f} |")
    figures.write(args.json)


if __name__ == "__main__":
    main()
