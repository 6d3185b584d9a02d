"""kill -9 of a process running a 3-step saga, at every step boundary, with its steps' effects
in a hub store on SQLite and on PostgreSQL (and DBOS's system database beside it): the next
process resumes it, zero steps run twice, none is left stuck, and a saga whose last step fails
compensates in reverse order even when killed in the middle of compensating.

One chain of processes per backend: each resumes the workflow the one before was killed in,
then starts the next workflow and is killed at the next boundary."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[2]
STEPS = ("one", "two", "three")
#: every boundary: as a step starts (the one before is checkpointed) and as it completes (its
#: effects and ledger row committed, DBOS's checkpoint not yet written); then two while it
#: compensates
BOUNDARIES = [f"{s}:run:{o}" for s in STEPS for o in ("started", "completed")]
COMPENSATING = ["two:compensate:started", "two:compensate:completed"]


def _child(
    hub: str, dbos: str, schema: str, wait: str, start: str, kill_at: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.kernel._saga_child", hub, dbos, schema, wait, start, kill_at],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _effects(hub_url: str, wid: str) -> list[str]:
    """The effects of workflow ``wid``'s steps, in the order they committed."""
    sql = "SELECT name FROM fx WHERE wf = %s ORDER BY n"
    if hub_url.startswith("postgresql"):
        with psycopg.connect(hub_url) as conn:
            return [r[0] for r in conn.execute(sql, (wid,))]
    with closing(sqlite3.connect(hub_url)) as conn:
        return [r[0] for r in conn.execute(sql.replace("%s", "?"), (wid,))]


def test_killed_at_every_step_boundary_each_saga_resumes_and_runs_each_step_once(
    hub_url: str, tmp_path: Path
) -> None:
    if hub_url.startswith("postgresql"):
        dbos, schema = hub_url.split("?")[0], f"dbos_{uuid.uuid4().hex[:10]}"
    else:
        dbos, schema = f"sqlite:///{tmp_path / 'workflows.sqlite'}", "-"
    plan = [(f"w{n}", b, False) for n, b in enumerate(BOUNDARIES)]
    plan += [(f"c{n}", b, True) for n, b in enumerate(COMPENSATING)]
    try:
        waiting = "-"
        outcomes: dict[str, dict[str, object]] = {}
        for wid, kill_at, fails in plan:
            killed = _child(hub_url, dbos, schema, waiting, f"{wid}:fail" if fails else wid, kill_at)
            assert killed.returncode == -9, (kill_at, killed.stderr)
            outcomes |= json.loads(killed.stdout.splitlines()[0])
            waiting = wid
        last = _child(hub_url, dbos, schema, waiting, "-", "-")
        assert last.returncode == 0, last.stderr
        outcomes |= json.loads(last.stdout)
    finally:
        if schema != "-":
            with psycopg.connect(dbos, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    for wid, kill_at, fails in plan:
        outcome = outcomes[wid]
        if fails:
            assert outcome["status"] == "compensated" and outcome["compensated"] == ["two", "one"], kill_at
            assert _effects(hub_url, wid) == ["one:run", "two:run", "two:compensate", "one:compensate"], (
                kill_at
            )
        else:
            assert outcome["status"] == "completed" and outcome["results"] == {s: s for s in STEPS}, kill_at
            assert _effects(hub_url, wid) == [f"{s}:run" for s in STEPS], kill_at  # each once, in order
