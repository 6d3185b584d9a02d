"""A device's durable workflows: its sagas (an automation's run, ...), its step ledger in the
vault file and DBOS's system database beside it (``workflows.sqlite`` in the vault's folder).

Each completed step leaves, in the transaction of its effects, its ledger row, a
``WORKFLOW_STEP`` event and an audit entry (``workflow.run``/``workflow.compensate``, naming
the saga, the step and the workflow; never an input or output).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import NotFound
from ..kernel import (
    ActionForbidden,
    Actor,
    ApprovalRequired,
    AuditRecord,
    Retry,
    Saga,
    SagaRegistry,
    SqlStepLedger,
    Step,
    StepContext,
    StepFailed,
    WorkflowEngine,
)
from ..kernel._automation import ActAction, ActCreate, ActTag, fill, parse_rule
from ..truth import TruthLevel
from ._backup import backup_name, prune, write_backup
from ._inbox import AUTOMATION_TYPE

if TYPE_CHECKING:
    from ._db import VaultDB
    from ._vault import Vault

__all__ = ["WORKFLOWS_FILE", "automation_source", "device_sagas", "vault_engine"]

log = logging.getLogger("truthvault.vault")

#: DBOS's system database, in the vault's folder
WORKFLOWS_FILE = "workflows.sqlite"


def automation_source(rule_id: str) -> str:
    """The source an automation writes as (level 2)."""
    return f"automation:{rule_id}"


def vault_engine(vault: Vault, sagas: Iterable[Saga] = ()) -> WorkflowEngine:
    """The workflow engine of ``vault`` (launch it to run workflows; one per process), running
    the vault's own sagas and ``sagas`` (a layer above adds its own: the sync layer's
    ``keys.rotate``, see ``truthvault.sync.device_engine``)."""
    db: VaultDB = vault._db
    ledger = SqlStepLedger(db.tx, on_record=lambda ctx, out: _trace(vault, ctx))
    registry = device_sagas(vault)
    for saga in sagas:
        registry.add(saga)
    engine = WorkflowEngine(
        registry,
        ledger,
        database_url=f"sqlite:///{vault.home / WORKFLOWS_FILE}",
        name="truthvault",
        on_dead_letter=lambda ctx, exc: _dead_letter(vault, ctx, exc),
    )
    # a dead letter of a workflow or an automation's run is retried by running it again
    for kind in ("workflow", "automation"):
        vault.dead_letters.on_retry(kind, lambda letter: engine.restart(letter.ref))
    return engine


def _dead_letter(vault: Vault, ctx: StepContext, exc: StepFailed) -> None:
    """Keep a step that failed for good (an automation's run is kind ``automation``), its
    input's secrets masked; never raises (the saga must still compensate)."""
    kind = "automation" if ctx.saga == "automation.run" else "workflow"
    try:
        vault.dead_letters.add(
            kind, ctx.workflow_id, f"{ctx.saga}/{ctx.step} ({ctx.phase})", exc.error,
            {"saga": ctx.saga, "input": dict(ctx.input)}, exc.attempts,
        )  # fmt: skip
    except Exception:
        log.exception("could not keep the dead letter of workflow %s: %s", ctx.workflow_id, exc.error)


def _trace(vault: Vault, ctx: StepContext) -> None:
    detail = {"workflow": ctx.workflow_id, "saga": ctx.saga, "step": ctx.step, "phase": ctx.phase}
    vault._db.add_event("WORKFLOW_STEP", None, **detail)
    actor = Actor(
        str(ctx.actor.get("source") or vault.source or "user:device"), vault.device_id, vault.tenant_id
    )
    vault.audit.append(
        AuditRecord(
            vault.tenant_id,
            f"workflow.{ctx.phase}",
            "1.0.0",
            actor,
            "allowed",
            vault._db.stamp(),
            _hash(ctx),
            reason=f"{ctx.saga} {ctx.step} ({ctx.workflow_id})",
        )
    )


def _hash(ctx: StepContext) -> str:
    import hashlib
    import json

    return hashlib.sha256(
        json.dumps({"input": ctx.input, "step": ctx.step}, sort_keys=True).encode()
    ).hexdigest()


# -- automation.run -------------------------------------------------------------------------
def device_sagas(vault: Vault) -> SagaRegistry:
    """The device's sagas, acting on ``vault``."""

    def act(ctx: StepContext) -> dict[str, Any]:
        delivery = ctx.input.get("delivery")
        return run_automation(
            vault,
            str(ctx.input["rule_id"]),
            ctx.input.get("entity_id"),
            delivery if isinstance(delivery, dict) else None,
        )

    def export(ctx: StepContext) -> dict[str, Any]:
        made = write_backup(vault, Path(str(ctx.input["to"])), backup_name(str(ctx.input["slot"])))
        return {"file": str(made), "bytes": made.stat().st_size}

    def keep_newest(ctx: StepContext) -> dict[str, Any]:
        return {"deleted": prune(Path(str(ctx.input["to"])), int(ctx.input.get("keep") or 7))}

    registry = SagaRegistry()
    registry.add(
        Saga(
            "vault.export.scheduled",
            "1.0.0",
            (
                Step("export", export, transactional=False, timeout_s=3600),  # idempotent: one file a slot
                Step("prune", keep_newest, transactional=False),
            ),
            summary="An encrypted backup of the vault into a folder, keeping the newest few.",
        )
    )
    registry.add(
        Saga(
            "automation.run",
            "1.0.0",
            (Step("act", act, retry=Retry(attempts=3, first_s=0.5)),),
            summary="One run of an automation rule on one match, as automation:<rule-id> at level 2.",
        )
    )
    return registry


def run_automation(
    vault: Vault, rule_id: str, entity_id: str | None, delivery: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run rule ``rule_id`` on ``entity_id`` (None: a scheduled rule's run with no entity) or
    on a webhook's ``delivery`` (``{"id", "received_at", "body"}``: its body's fields are the
    match's ``{payload.<field>}``) as ``automation:<rule-id>``, through the kernel; what it did.
    A refusal by policy is an outcome (audited by the kernel), not a failure to retry."""
    try:
        rule_item = vault.get(rule_id)
    except NotFound:
        return {"skipped": "the rule is gone"}
    if rule_item.entity_type != AUTOMATION_TYPE or rule_item.truth_level != TruthLevel.USER:
        return {"skipped": "not a rule the user wrote"}
    rule = parse_rule(rule_item.data())
    if rule.paused:
        return {"skipped": "paused"}
    match: dict[str, Any] = {}
    entity = None
    if delivery is not None:
        body = delivery.get("body")
        match = {"id": delivery.get("id"), "type": "webhook", "version": 0, "payload": body or {}}
    elif entity_id is not None:
        try:
            entity = vault.get(entity_id)
        except NotFound:
            return {"skipped": f"entity {entity_id} is gone"}
        match = {
            "id": entity.entity_id,
            "type": entity.entity_type,
            "version": entity.version,
            "payload": entity.data(),
        }
    actor = vault.actor(automation_source(rule_id))
    action = rule.action
    if isinstance(action, ActTag):
        if entity is None:
            return {"skipped": "a tag needs an entity"}
        tags = list(match["payload"].get("tags") or [])
        new = [t for t in action.tags if t not in tags]
        if not new:
            return {"unchanged": entity.entity_id}
        name, params = "entity.edit", {"id": entity.entity_id, "changes": {"tags": tags + new}}
    elif isinstance(action, ActCreate):
        name, params = "entity.put", {"type": action.type, "data": fill(action.payload, match)}
    else:
        assert isinstance(action, ActAction)
        name, params = action.name, fill(action.input, match)
    try:
        out = vault.kernel.run(name, params, actor=actor)
    except ActionForbidden as exc:
        return {"refused": exc.code, "reason": exc.message, "action": name}
    except ApprovalRequired as exc:  # the request is kept: the user decides, then runs it again
        return {"refused": exc.code, "reason": exc.message, "action": name, "request": exc.request_id}
    done = out.model_dump(mode="json")
    return {
        "action": name,
        "outcome": done.get("outcome"),
        "entity": (done.get("item") or {}).get("entity_id"),
    }
