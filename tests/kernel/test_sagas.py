"""Sagas on the workflow engine (DBOS Transact on SQLite): steps in order, retries with backoff
and jitter, timeouts, compensation in reverse, and the ledger that keeps a completed step from
running twice. The kill -9 stories are in test_saga_crash.py."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from truthvault.errors import ConflictState, InvalidInput, NotFound
from truthvault.kernel._saga import (
    Retry,
    Saga,
    SagaRegistry,
    SqlStepLedger,
    Step,
    StepContext,
    StepFailed,
    attempt_step,
)
from truthvault.kernel._workflows import StepEvent, WorkflowEngine
from truthvault.vault import Vault

pytestmark = pytest.mark.timeout(120)


def _effect(ctx: StepContext) -> int:
    """A step's effect in the store's transaction: one row per run."""
    ctx.db.execute("INSERT INTO fx (wf, name) VALUES (?, ?)", (ctx.workflow_id, f"{ctx.step}:{ctx.phase}"))
    return len(ctx.results) + 1


def _effects(vault: Vault, workflow_id: str) -> list[str]:
    rows = vault._db.conn.execute("SELECT name FROM fx WHERE wf = ? ORDER BY n", (workflow_id,))
    return [r[0] for r in rows]


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    with Vault.open(tmp_path / "v", source="user:cli") as v:
        # the steps' effects, one row a run (no key: a step run twice would show twice)
        v._db.conn.execute("CREATE TABLE fx (n INTEGER PRIMARY KEY, wf TEXT, name TEXT)")
        yield v


def _ledger(vault: Vault) -> SqlStepLedger:
    return SqlStepLedger(vault._db.tx)


# -- retries --------------------------------------------------------------------------------
def test_retry_waits_grow_exponentially_within_their_jitter_and_cap() -> None:
    retry = Retry(attempts=6, first_s=1.0, factor=2.0, max_s=10.0, jitter=0.5)
    waits = list(retry.delays(random.Random(7)))
    assert len(waits) == 5
    for n, wait in enumerate(waits):
        base = min(2.0**n, 10.0)
        assert base * 0.5 <= wait <= base
    assert list(Retry(attempts=3, first_s=1, jitter=0).delays()) == [1.0, 2.0]
    with pytest.raises(InvalidInput):
        Retry(attempts=0)
    with pytest.raises(InvalidInput):
        Retry(jitter=1.5)


def test_a_failing_step_is_tried_as_often_as_its_retry_allows(vault: Vault) -> None:
    tries: list[int] = []
    waits: list[float] = []

    def flaky(ctx: StepContext) -> str:
        tries.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError("not yet")
        return "ok"

    step = Step("flaky", flaky, retry=Retry(attempts=4, first_s=0.2, jitter=0))
    ctx = StepContext("w1", "s", "flaky", "run", {}, {})
    assert attempt_step(_ledger(vault), ctx, step, 0, sleep=waits.append) == "ok"
    assert tries == [1, 2, 3] and waits == [0.2, 0.4]
    # done once: asked again, it answers from the ledger and does not run
    assert attempt_step(_ledger(vault), ctx, step, 0, sleep=waits.append) == "ok"
    assert tries == [1, 2, 3]

    always = Step("always", lambda c: 1 / 0, retry=Retry(attempts=2, first_s=0))
    with pytest.raises(StepFailed, match="ZeroDivisionError") as caught:
        attempt_step(
            _ledger(vault), StepContext("w1", "s", "always", "run", {}, {}), always, 1, sleep=waits.append
        )
    assert caught.value.attempts == 2
    # a refusal or bad input is not tried again
    refused = Step(
        "refused", lambda c: (_ for _ in ()).throw(InvalidInput("bad")), retry=Retry(attempts=5, first_s=0)
    )
    with pytest.raises(StepFailed, match="invalid_input: bad") as caught:
        attempt_step(
            _ledger(vault), StepContext("w1", "s", "refused", "run", {}, {}), refused, 2, sleep=waits.append
        )
    assert caught.value.attempts == 1


def test_an_attempt_past_its_timeout_rolls_back_and_the_next_one_counts(vault: Vault) -> None:
    release = threading.Event()
    runs: list[int] = []

    def slow(ctx: StepContext) -> int:
        runs.append(ctx.attempt)
        ctx.db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (f"slow:{ctx.attempt}", "x"))
        if ctx.attempt == 1:
            release.wait(30)  # hangs past its deadline
        return ctx.attempt

    step = Step("slow", slow, retry=Retry(attempts=2, first_s=0), timeout_s=0.5)
    ledger = SqlStepLedger(vault._db.tx)
    ctx = StepContext("w2", "s", "slow", "run", {}, {})
    result: list[Any] = []
    worker = threading.Thread(target=lambda: result.append(attempt_step(ledger, ctx, step, 0)))
    worker.start()
    deadline = time.monotonic() + 30
    while not runs and time.monotonic() < deadline:
        time.sleep(0.01)
    # the first attempt is abandoned at its deadline; it holds the vault's lock until released
    time.sleep(0.6)
    release.set()
    worker.join(30)
    assert result == [2] and runs == [1, 2]
    keys = [r[0] for r in vault._db.conn.execute("SELECT key FROM meta WHERE key LIKE 'slow:%'")]
    assert keys == ["slow:2"]  # the abandoned attempt's write rolled back


# -- the engine -----------------------------------------------------------------------------
def _three(fail_at: str | None = None, compensate_fails: bool = False) -> Saga:
    def run(name: str) -> Any:
        def body(ctx: StepContext) -> int:
            if name == fail_at:
                raise RuntimeError(f"{name} broke")
            return _effect(ctx)

        return body

    def undo(ctx: StepContext) -> None:
        if compensate_fails:
            raise RuntimeError("cannot undo")
        _effect(ctx)

    quick = Retry(attempts=2, first_s=0.01)
    return Saga(
        "test.three",
        "1.0.0",
        tuple(Step(n, run(n), undo, retry=quick, timeout_s=30) for n in ("one", "two", "three")),
    )


@pytest.fixture
def engine_for(tmp_path: Path, vault: Vault) -> Iterator[Any]:
    engines: list[WorkflowEngine] = []

    def make(*sagas: Saga, events: list[StepEvent] | None = None) -> WorkflowEngine:
        registry = SagaRegistry()
        for saga in sagas:
            registry.add(saga)
        engine = WorkflowEngine(
            registry,
            _ledger(vault),
            database_url=f"sqlite:///{tmp_path / 'workflows.sqlite'}",
            observe=None if events is None else events.append,
        )
        engines.append(engine.launch())
        return engine

    yield make
    for engine in engines:
        engine.close()


def test_a_saga_runs_its_steps_in_order_once_each(engine_for: Any, vault: Vault) -> None:
    events: list[StepEvent] = []
    engine = engine_for(_three(), events=events)
    wid = engine.start("test.three", {"n": 1}, actor={"source": "user:cli"})
    outcome = engine.result(wid)
    assert outcome["status"] == "completed"
    assert outcome["results"] == {"one": 1, "two": 2, "three": 3}
    assert _effects(vault, wid) == ["one:run", "two:run", "three:run"]
    assert [(e.step, e.outcome) for e in events] == [
        ("one", "started"), ("one", "completed"), ("two", "started"),
        ("two", "completed"), ("three", "started"), ("three", "completed"),
    ]  # fmt: skip
    assert all(e.actor == {"source": "user:cli"} for e in events)
    info = engine.info(wid)
    assert (info.saga, info.status, info.input) == ("test.three", "completed", {"n": 1})
    assert [(s, p, d) for s, p, d in info.steps] == [
        ("one", "run", "done"),
        ("two", "run", "done"),
        ("three", "run", "done"),
    ]
    # the same id again is the same workflow: nothing runs twice
    assert engine.start("test.three", {"n": 1}, workflow_id=wid) == wid
    assert engine.result(wid)["results"] == outcome["results"]
    assert _effects(vault, wid) == ["one:run", "two:run", "three:run"]
    assert [i.id for i in engine.list()] == [wid]


def test_a_step_that_fails_for_good_compensates_the_done_ones_in_reverse(
    engine_for: Any, vault: Vault
) -> None:
    engine = engine_for(_three(fail_at="three"))
    wid = engine.start("test.three")
    outcome = engine.result(wid)
    assert outcome["status"] == "compensated"
    assert outcome["failed"]["step"] == "three" and "three broke" in outcome["failed"]["error"]
    assert outcome["compensated"] == ["two", "one"]
    assert _effects(vault, wid) == ["one:run", "two:run", "two:compensate", "one:compensate"]
    assert engine.info(wid).status == "compensated"


def test_a_compensation_that_fails_for_good_fails_the_saga(engine_for: Any, vault: Vault) -> None:
    engine = engine_for(_three(fail_at="two", compensate_fails=True))
    wid = engine.start("test.three")
    with pytest.raises(Exception, match="cannot undo"):
        engine.result(wid)
    assert engine.info(wid).status == "failed"
    assert _effects(vault, wid) == ["one:run"]


def test_unknown_sagas_inputs_and_ids_are_named(engine_for: Any) -> None:
    engine = engine_for(_three())
    with pytest.raises(NotFound, match="no workflow 'nope'"):
        engine.start("nope")
    with pytest.raises(InvalidInput, match="input is not JSON"):
        engine.start("test.three", {"x": object()})
    with pytest.raises(NotFound):
        engine.info("no-such-id")
    wid = engine.start("test.three")
    engine.result(wid)
    with pytest.raises(ConflictState, match="completed"):
        engine.cancel(wid)
    with pytest.raises(ConflictState, match="completed already"):
        engine.resume(wid)


def test_sagas_and_steps_are_named_and_checked() -> None:
    with pytest.raises(InvalidInput):
        Saga("Bad Name", "1.0.0", (Step("a", lambda c: 1),))
    with pytest.raises(InvalidInput, match="no steps"):
        Saga("a.b", "1.0.0", ())
    with pytest.raises(InvalidInput, match="share a name"):
        Saga("a.b", "1.0.0", (Step("a", lambda c: 1), Step("a", lambda c: 2)))
    with pytest.raises(InvalidInput, match="timeout"):
        Step("a", lambda c: 1, timeout_s=0)


def test_a_failed_saga_resumed_once_its_cause_is_mended_compensates(engine_for: Any, vault: Vault) -> None:
    broken = {"undo": True}

    def undo(ctx: StepContext) -> None:
        if broken["undo"]:
            raise InvalidInput("cannot undo yet")
        _effect(ctx)

    def fail(ctx: StepContext) -> None:
        raise InvalidInput("two broke")

    quick = Retry(attempts=1, first_s=0.01)
    saga = Saga(
        "test.mend", "1.0.0", (Step("one", _effect, undo, retry=quick), Step("two", fail, retry=quick))
    )
    engine = engine_for(saga)
    wid = engine.start("test.mend")
    with pytest.raises(Exception, match="cannot undo"):
        engine.result(wid)
    assert engine.info(wid).status == "failed"
    broken["undo"] = False  # the person mends what the compensation needed, and resumes
    again = engine.resume(wid).id
    outcome = engine.result(again)
    assert outcome["status"] == "compensated" and outcome["compensated"] == ["one"]
    assert _effects(vault, wid) + _effects(vault, again) == ["one:run", "one:compensate"]
    with pytest.raises(ConflictState, match="resumed already"):
        engine.resume(wid)


def test_a_sqlite_system_database_is_the_owners_alone(engine_for: Any, tmp_path: Path) -> None:
    engine_for(_three())
    assert (tmp_path / "workflows.sqlite").stat().st_mode & 0o777 == 0o600


def test_where_no_workflow_ran_the_list_is_empty_and_no_file_is_made(tmp_path: Path, vault: Vault) -> None:
    """'truthvault workflow list' on a new vault said 'internal error: no such table', and made
    an empty system database readable by all."""
    path = tmp_path / "none-yet.sqlite"
    engine = WorkflowEngine(SagaRegistry(), _ledger(vault), database_url=f"sqlite:///{path}")
    assert engine.list() == []
    with pytest.raises(NotFound, match="none has run here"):
        engine.info("abc")
    assert not path.exists()
    path.touch()  # an empty file, as that bug left
    assert engine.list() == []
    engine.close()
