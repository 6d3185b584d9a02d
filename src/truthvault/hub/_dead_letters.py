"""The hub's dead-letter queue (:class:`~truthvault.kernel._dead_letters.SqlDeadLetters` over the
hub's database), and what keeps a failed workflow step of the hub's engine in it."""

from __future__ import annotations

import logging

from ..kernel._dead_letters import SqlDeadLetters
from ..kernel._saga import StepContext, StepFailed
from ._sql import SqlDatabase

__all__ = ["hub_dead_letters", "workflow_dead_letter"]

log = logging.getLogger("truthvault.hub")


def hub_dead_letters(database: SqlDatabase) -> SqlDeadLetters:
    """The dead letters in the hub's database."""
    return SqlDeadLetters(database.write, database.read, list_hint="'truthvault hub dlq list' lists them")


def workflow_dead_letter(dead_letters: SqlDeadLetters, ctx: StepContext, exc: StepFailed) -> None:
    """Keep a workflow step that failed for good as a dead letter of the workflow: its input
    (secrets masked), its error, its attempts, the tenant it acts for when it has one."""
    made = ctx.results.get("tenant")
    tenant_id = str(
        ctx.actor.get("tenant_id") or (made.get("tenant_id") if isinstance(made, dict) else "") or ""
    )
    source = f"{ctx.saga}/{ctx.step} ({ctx.phase})"
    try:
        kept = dead_letters.add(
            "workflow", ctx.workflow_id, source, exc.error,
            {"saga": ctx.saga, "input": dict(ctx.input)}, exc.attempts, tenant_id or None,
        )  # fmt: skip
    except Exception:
        # Raising here would end the saga uncompensated; the failure stays in the workflow's
        # record ('hub workflow show'), and this says loudly that its dead letter is missing.
        log.exception(
            "could not keep the dead letter of workflow %s (%s): %s", ctx.workflow_id, source, exc.error
        )
        return
    log.warning("dead letter %s: workflow %s, %s: %s", kept.id, ctx.workflow_id, source, exc.error)
