"""The workflow engine's dead letters, on a device's vault (SQLite): a saga whose step fails for
good leaves one dead letter, its input masked; a compensation that fails too joins it; a retry
restarts the workflow from its first step as a new workflow, which leaves its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from truthvault.kernel._dead_letters import MASK
from truthvault.kernel._saga import Retry, Saga, SagaRegistry, SqlStepLedger, Step, StepContext
from truthvault.kernel._workflows import WorkflowEngine
from truthvault.vault import Vault

pytestmark = pytest.mark.timeout(120)

_ONCE = Retry(attempts=2, first_s=0.01)


def _run(ctx: StepContext) -> str:
    if ctx.step == "two":
        raise RuntimeError("two broke")
    return ctx.step


def _undo(ctx: StepContext) -> None:
    raise RuntimeError("cannot undo")


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    with Vault.open(tmp_path / "v", source="user:cli") as v:
        yield v


@pytest.fixture
def engine(tmp_path: Path, vault: Vault) -> Iterator[WorkflowEngine]:
    registry = SagaRegistry()
    registry.add(
        Saga("test.undo", "1.0.0", (Step("one", _run, _undo, retry=_ONCE), Step("two", _run, retry=_ONCE)))
    )
    registry.add(
        Saga("test.plain", "1.0.0", (Step("one", _run, retry=_ONCE), Step("two", _run, retry=_ONCE)))
    )
    running = WorkflowEngine(
        registry,
        SqlStepLedger(vault._db.tx),
        database_url=f"sqlite:///{tmp_path / 'workflows.sqlite'}",
        on_dead_letter=lambda ctx, exc: vault.dead_letters.add(
            "workflow", ctx.workflow_id, f"{ctx.saga}/{ctx.step} ({ctx.phase})", exc.error,
            dict(ctx.input), exc.attempts,
        ),
    )  # fmt: skip
    vault.dead_letters.on_retry("workflow", lambda letter: running.restart(letter.ref))
    with running:
        yield running


def test_a_failed_compensation_joins_the_dead_letter_of_its_step(
    engine: WorkflowEngine, vault: Vault
) -> None:
    wid = engine.start("test.undo", {"password": "hunter2", "n": 1})
    with pytest.raises(Exception, match="cannot undo"):
        engine.result(wid)
    [letter] = vault.dead_letters.list()
    assert letter.ref == wid and letter.attempts == 4
    assert letter.source == "test.undo/two (run); test.undo/one (compensate)"
    assert "two broke" in letter.error and "cannot undo" in letter.error
    assert letter.input == {"password": MASK, "n": 1}


def test_a_retry_restarts_the_workflow_from_its_first_step(engine: WorkflowEngine, vault: Vault) -> None:
    wid = engine.start("test.plain", {"n": 2})
    assert engine.result(wid)["status"] == "compensated"
    [letter] = vault.dead_letters.list()
    done = vault.dead_letters.retry(letter.id, "user:cli")
    assert done.status == "retried" and done.retried_as not in (None, wid)
    assert done.retried_as is not None
    again = engine.result(done.retried_as)
    assert again["status"] == "compensated" and again["results"] == {"one": "one"}
    assert engine.info(done.retried_as).input == {"n": 2}  # its input, unmasked, from DBOS
    assert {x.ref for x in vault.dead_letters.list(status="open")} == {done.retried_as}


def test_restarting_an_unknown_workflow_is_not_found(engine: WorkflowEngine) -> None:
    from truthvault.errors import NotFound

    with pytest.raises(NotFound, match="no workflow 'no-such'"):
        engine.restart("no-such")
