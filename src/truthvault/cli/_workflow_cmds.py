"""``truthvault hub workflow list|show|resume|cancel``, and tenant provisioning as a workflow.

Listing, showing, cancelling and resuming read DBOS's system database as a client: they run no
workflow (a running ``hub serve`` runs them; one resumed here runs there, or at its next start).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from ._common import json_option, out, plural, print_json, table

if TYPE_CHECKING:
    from ..kernel import WorkflowEngine, WorkflowInfo
    from ._output import Struck

__all__ = ["as_dict", "register_hub", "show_workflow", "when"]

_STATUS_HELP = "Only workflows in this state."


@contextmanager
def _engine(db_url: str | None) -> Iterator[WorkflowEngine]:
    from ..hub import hub_engine
    from ._hub_cmds import default_hub_db, open_hub_store

    url = db_url or default_hub_db()
    with open_hub_store(db_url) as store:
        engine = hub_engine(store, url)
        try:
            yield engine
        finally:
            engine.close()


def when(ms: int | None) -> str:
    return "" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def as_dict(info: WorkflowInfo) -> dict[str, object]:
    return {
        "id": info.id,
        "saga": info.saga,
        "status": info.status,
        "created_at": when(info.created_at),
        "updated_at": when(info.updated_at),
        "outcome": info.outcome,
        "error": info.error,
        "steps": [{"step": s, "phase": p, "result": r} for s, p, r in info.steps],
    }


def show_workflow(info: WorkflowInfo) -> None:
    out.print(f"workflow {info.id}: {info.saga}, {info.status}")
    out.print(f"started {when(info.created_at)}, last changed {when(info.updated_at)}")
    if info.error:
        out.print(f"error: {info.error}")
    failed = (info.outcome or {}).get("failed")
    if failed:
        out.print(
            f"failed at step {failed.get('step')!r} after {plural(int(failed.get('attempts', 0)), 'attempt')}: {failed.get('error')}"
        )
    rows: list[list[str | Struck]] = [
        [str(n), step, phase, result] for n, (step, phase, result) in enumerate(info.steps, 1)
    ]
    out.print(
        table("steps", ["#", "step", "phase", "result"], rows, squeeze=3) if rows else "no step has run yet"
    )


def register_hub(hub: click.Group) -> None:
    """Add ``hub workflow`` to the hub group."""
    from ._hub_cmds import db_option

    @hub.group("workflow")
    def workflow() -> None:
        """The hub's durable workflows (tenant.provision, ...): list, show, resume, cancel."""

    @workflow.command("list")
    @click.option(
        "--status",
        type=click.Choice(["running", "queued", "completed", "compensated", "failed", "cancelled"]),
        help=_STATUS_HELP,
    )
    @click.option(
        "--limit",
        type=click.IntRange(1, 10_000),
        default=50,
        show_default=True,
        help="At most this many, newest first.",
    )
    @db_option
    @json_option
    def workflow_list(status: str | None, limit: int, db_url: str | None, as_json: bool) -> None:
        """List the newest workflows with their state."""
        with _engine(db_url) as engine:
            infos = engine.list(status=status, limit=limit)
        if as_json:
            print_json([as_dict(i) for i in infos])
            return
        rows: list[list[str | Struck]] = [
            [i.id, i.saga, i.status, when(i.created_at), when(i.updated_at)] for i in infos
        ]
        out.print(
            table(None, ["id", "workflow", "status", "started", "changed"], rows, squeeze=1)
            if rows
            else "no workflows"
        )

    @workflow.command("show")
    @click.argument("workflow_id")
    @db_option
    @json_option
    def workflow_show(workflow_id: str, db_url: str | None, as_json: bool) -> None:
        """Show a workflow: its state, its steps and how each went."""
        with _engine(db_url) as engine:
            info = engine.info(workflow_id)
        if as_json:
            print_json(as_dict(info))
        else:
            show_workflow(info)

    @workflow.command("cancel")
    @click.argument("workflow_id")
    @db_option
    @json_option
    def workflow_cancel(workflow_id: str, db_url: str | None, as_json: bool) -> None:
        """Stop a running workflow before its next step (what it did stays; resume goes on)."""
        with _engine(db_url) as engine:
            info = engine.cancel(workflow_id)
        if as_json:
            print_json(as_dict(info))
        else:
            out.print(
                f"workflow {workflow_id} cancelled; 'truthvault hub workflow resume {workflow_id}' goes on with it"
            )

    @workflow.command("resume")
    @click.argument("workflow_id")
    @db_option
    @json_option
    def workflow_resume(workflow_id: str, db_url: str | None, as_json: bool) -> None:
        """Go on with a cancelled or failed workflow from its last completed step (it runs
        where 'truthvault hub serve' runs: now, or when the hub next starts)."""
        with _engine(db_url) as engine:
            info = engine.resume(workflow_id)
        if as_json:
            print_json(as_dict(info))
        else:
            out.print(f"workflow {info.id} resumed ({info.status}); the serving hub runs it")
