"""kill -9 of a process running a 3-step saga, at every step boundary, with its steps' effects
in a hub store on SQLite and on PostgreSQL (and DBOS's system database beside it): the next
process resumes it, zero steps run twice, none is left stuck, and a saga whose last step fails
compensates in reverse order even when killed in the middle of compensating."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
STEPS = ("one", "two", "three")
#: every boundary: as a step starts (the one before is checkpointed) and as it completes (its
#: effects and ledger row committed, DBOS's checkpoint not yet written)
BOUNDARIES = [f"{s}:run:{o}" for s in STEPS for o in ("started", "completed")]


def _child(
    hub: str, dbos: str, schema: str, wid: str, kill_at: str, fail_at: str = "-"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.kernel._saga_child", hub, dbos, schema, wid, kill_at, fail_at],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _urls(hub_url: str, tmp_path: Path) -> tuple[str, str, str]:
    if hub_url.startswith("postgresql"):
        schema = f"dbos_{uuid.uuid4().hex[:10]}"
        return hub_url, hub_url.split("?")[0], schema
    return hub_url, f"sqlite:///{tmp_path / 'workflows.sqlite'}", "-"


def _effects(hub_url: str, wid: str) -> list[str]:
    """The effects of workflow ``wid``'s steps, in the order they committed."""
    sql = "SELECT name FROM fx WHERE wf = %s ORDER BY n"
    if hub_url.startswith("postgresql"):
        with psycopg.connect(hub_url) as conn:
            return [r[0] for r in conn.execute(sql, (wid,))]
    import sqlite3

    with closing(sqlite3.connect(hub_url)) as conn:
        return [r[0] for r in conn.execute(sql.replace("%s", "?"), (wid,))]


def _drop(dbos: str, schema: str) -> None:
    if schema != "-":
        with psycopg.connect(dbos, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.mark.parametrize("kill_at", BOUNDARIES)
def test_killed_at_a_step_boundary_the_saga_resumes_and_runs_each_step_once(
    hub_url: str, tmp_path: Path, kill_at: str
) -> None:
    hub, dbos, schema = _urls(hub_url, tmp_path)
    wid = f"w-{uuid.uuid4().hex[:8]}"
    try:
        killed = _child(hub, dbos, schema, wid, kill_at)
        assert killed.returncode == -9, killed.stderr
        resumed = _child(hub, dbos, schema, wid, "-")
        assert resumed.returncode == 0, resumed.stderr
        outcome = json.loads(resumed.stdout)
        assert outcome["status"] == "completed"
        assert outcome["results"] == {s: s for s in STEPS}
        assert _effects(hub, wid) == [f"{s}:run" for s in STEPS]  # each once, in order
    finally:
        _drop(dbos, schema)


@pytest.mark.parametrize("kill_at", ["two:compensate:completed"])
def test_killed_while_compensating_the_saga_still_compensates_in_reverse_once(
    hub_url: str, tmp_path: Path, kill_at: str
) -> None:
    hub, dbos, schema = _urls(hub_url, tmp_path)
    wid = f"w-{uuid.uuid4().hex[:8]}"
    try:
        assert _child(hub, dbos, schema, wid, kill_at, fail_at="three").returncode == -9
        resumed = _child(hub, dbos, schema, wid, "-", fail_at="three")
        assert resumed.returncode == 0, resumed.stderr
        outcome = json.loads(resumed.stdout)
        assert outcome["status"] == "compensated"
        assert outcome["compensated"] == ["two", "one"]
        assert _effects(hub, wid) == ["one:run", "two:run", "two:compensate", "one:compensate"]
    finally:
        _drop(dbos, schema)
