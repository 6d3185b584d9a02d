"""The hub's dead-letter queue (:class:`~truthvault.kernel._dead_letters.SqlDeadLetters` over the
hub's database), and what keeps a failed workflow step of the hub's engine in it."""

from __future__ import annotations

import logging
from typing import Any

from ..kernel._dead_letters import SqlDeadLetters
from ._sql import SqlDatabase

__all__ = ["hub_dead_letters", "workflow_dead_letter"]

log = logging.getLogger("truthvault.hub")


def hub_dead_letters(database: SqlDatabase) -> SqlDeadLetters:
    """The dead letters in the hub's database."""
    return SqlDeadLetters(database.write, database.read, list_hint="'truthvault hub dlq list' lists them")


def workflow_dead_letter(dead_letters: SqlDeadLetters, ctx: Any, exc: Any) -> None:
    """Keep a workflow step that failed for good (``ctx``: its StepContext, ``exc``: its
    StepFailed) as a dead letter of the workflow: its input (secrets masked), its error, its
    attempts, the tenant it acts for when it has one."""
    made = ctx.results.get("tenant") if isinstance(ctx.results.get("tenant"), dict) else {}
    tenant_id = str(ctx.actor.get("tenant_id") or (made or {}).get("tenant_id") or "") or None
    kept = dead_letters.add(
        "workflow", ctx.workflow_id, f"{ctx.saga}/{ctx.step} ({ctx.phase})", exc.error,
        {"saga": ctx.saga, "input": dict(ctx.input)}, exc.attempts, tenant_id,
    )  # fmt: skip
    log.warning("dead letter %s: workflow %s, %s: %s", kept.id, ctx.workflow_id, kept.source, exc.error)
