"""The hub's durable workflows: its sagas, its step ledger and where DBOS keeps their progress.

Each completed step leaves, in the transaction of its effects, its ledger row, a
``WORKFLOW_STEP`` sync event and an audit entry (``workflow.run`` or ``workflow.compensate``,
naming the saga, the step and the workflow; never the step's input or output). DBOS's system
database sits beside the hub's: a SQLite file next to a SQLite hub, the ``dbos`` schema of a
PostgreSQL hub's database (which several hub processes share).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, NotFound
from ..kernel import Actor, AuditRecord, encode_record
from ..kernel._policy_text import DEFAULT_POLICY
from ..kernel._saga import Retry, Saga, SagaRegistry, SqlStepLedger, Step, StepContext
from ..kernel._workflows import WorkflowEngine
from ._dead_letters import workflow_dead_letter
from ._governance import HUB_ADMIN, run_as_admin
from ._port import now
from .store import HubStore

__all__ = ["dbos_url", "hub_engine", "hub_sagas", "provision_input", "provision_tenant", "run_workflows"]

log = logging.getLogger("truthvault.hub")

#: how long the first enrolment code of a provisioned tenant stays valid
_CODE_TTL_S = 15 * 60


def dbos_url(hub_url: str) -> tuple[str, str | None]:
    """Where DBOS keeps a hub's workflows, and in which schema: the hub's own PostgreSQL
    database (schema ``dbos``), or a SQLite file beside the hub's."""
    if hub_url.startswith(("postgresql://", "postgres://")):
        return hub_url.split("?", 1)[0], "dbos"
    path = Path(hub_url.removeprefix("sqlite:///")).expanduser()
    return f"sqlite:///{path.with_name(path.name + '.workflows')}", None


def hub_engine(store: HubStore, hub_url: str, sagas: SagaRegistry | None = None) -> WorkflowEngine:
    """The workflow engine of the hub store at ``hub_url`` (launch it to run workflows), with
    the hub's sagas or ``sagas``: each step's ledger row, event and audit entry kept in the
    hub's database."""
    url, schema = dbos_url(hub_url)
    ledger = SqlStepLedger(store.transaction, on_record=lambda ctx, out: _trace(store, ctx, out))
    registry = sagas if sagas is not None else hub_sagas(store)
    engine = WorkflowEngine(
        registry, ledger, database_url=url, schema=schema, name="truthvault-hub",
        on_dead_letter=lambda ctx, exc: workflow_dead_letter(store.dead_letters, ctx, exc),
    )  # fmt: skip
    # a workflow's dead letter is retried by running the workflow again from its first step
    store.dead_letters.on_retry("workflow", lambda letter: engine.restart(letter.ref))
    return engine


def _trace(store: HubStore, ctx: StepContext, output: str) -> None:
    """A completed step's sync event and audit entry, in its transaction, in the log of the
    tenant it acts for (none when the step removed that tenant)."""
    made = json.loads(output) if ctx.step == "tenant" and ctx.phase == "run" else None
    tenant_id = str(
        ctx.actor.get("tenant_id")
        or (made or {}).get("tenant_id")
        or ctx.results.get("tenant", {}).get("tenant_id", "")
    )
    if not tenant_id:
        return
    detail: dict[str, object] = {
        "workflow": ctx.workflow_id,
        "saga": ctx.saga,
        "step": ctx.step,
        "phase": ctx.phase,
    }
    try:
        store.add_event(tenant_id, "WORKFLOW_STEP", detail, ctx.actor.get("device_id") or None)
    except NotFound:
        return
    actor = Actor(str(ctx.actor.get("source") or HUB_ADMIN), str(ctx.actor.get("device_id") or ""), tenant_id)
    step_input = json.dumps({"input": ctx.input, "step": ctx.step}, sort_keys=True).encode()
    record = AuditRecord(
        tenant_id, f"workflow.{ctx.phase}", "1.0.0", actor, "allowed", now(),
        hashlib.sha256(step_input).hexdigest(), reason=f"{ctx.saga} {ctx.step} ({ctx.workflow_id})",
    )  # fmt: skip
    store.audit_queue.enqueue(tenant_id, [encode_record(record)])


# -- tenant.provision -----------------------------------------------------------------------
_QUICK = Retry(attempts=3, first_s=0.2)


def hub_sagas(store: HubStore) -> SagaRegistry:
    """The hub's sagas, acting on ``store``."""

    def tenant(ctx: StepContext) -> dict[str, Any]:
        made = store.add_tenant(str(ctx.input["name"]), str(ctx.input.get("mode", "local_first")))
        return {"tenant_id": made.id, "name": made.name, "mode": made.vault_mode}

    def drop_tenant(ctx: StepContext) -> None:
        store.drop_new_tenant(str(ctx.results["tenant"]["tenant_id"]))

    def policy(ctx: StepContext) -> dict[str, Any]:
        text = str(ctx.input.get("policy") or DEFAULT_POLICY)
        out = run_as_admin(store, str(ctx.input["name"]), "policy.set", {"text": text})
        return {"version": out.get("version")}

    def contracts(ctx: StepContext) -> dict[str, Any]:
        added = []
        for contract in ctx.input.get("contracts") or ():
            run_as_admin(store, str(ctx.input["name"]), "contract.add", dict(contract))
            added.append(str(contract.get("type")))
        return {"added": added}

    registry = SagaRegistry()
    registry.add(
        Saga(
            "tenant.provision",
            "1.0.0",
            (
                Step("tenant", tenant, drop_tenant, retry=_QUICK),
                Step("policy", policy, retry=_QUICK),
                Step("contracts", contracts, retry=_QUICK),
            ),
            # The first enrolment code is issued after it (provision_tenant), never in a step:
            # a step's output is kept in plain text (DBOS's system database, workflow_steps,
            # 'truthvault workflow show'), and a code is a credential, stored hashed, shown once.
            summary="A tenant with its default policy and contracts.",
        )
    )
    return registry


def provision_input(
    name: str, mode: str, policy: str | None = None, contracts: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """The input of ``tenant.provision``, checked."""
    if mode not in ("local_first", "cloud_first"):
        raise InvalidInput(f"mode: {mode!r} is not local_first or cloud_first")
    return {"name": name, "mode": mode, "policy": policy, "contracts": contracts or []}


def provision_tenant(
    store: HubStore, hub_url: str, name: str, mode: str, policy: str | None = None
) -> dict[str, Any]:
    """Run ``tenant.provision`` (with ``policy``'s Cedar text, else the default) in this process (its engine launched for it, which also resumes
    what a killed run left), then issue the tenant's first enrolment code; the steps' results
    and ``code`` (``{"code", "ttl_s"}``). A provisioning that failed is compensated (nothing of
    it kept) and raises ConflictState naming the step and its error."""
    from ..errors import ConflictState
    from ._tenants import check_name

    params = provision_input(name, mode, policy)
    check_name("tenant name", name)  # bad input and a taken name say so at once: no workflow
    try:
        store.get_tenant(name)
    except NotFound:
        pass
    else:
        raise ConflictState(
            f"tenant {name!r} already exists", hint="list them with: truthvault hub tenant list"
        )
    with hub_engine(store, hub_url) as engine:
        outcome = engine.run("tenant.provision", params)
    if outcome["status"] != "completed":
        failed = outcome.get("failed") or {}
        raise ConflictState(
            f"tenant {name!r} was not provisioned: step {failed.get('step')!r} failed: {failed.get('error')}",
            hint="nothing of it was kept" if outcome.get("compensated") else None,
        )
    results: dict[str, Any] = dict(outcome["results"])
    out = run_as_admin(store, name, "tenant.code", {"ttl_s": _CODE_TTL_S})
    results["code"] = {"code": out["code"], "ttl_s": _CODE_TTL_S}
    return results


@contextmanager
def run_workflows(store: HubStore, hub_url: str) -> Iterator[WorkflowEngine]:
    """The hub's workflow engine, launched in the background while the block runs (a server
    need not wait for DBOS to load), closed after it; a launch that fails is logged and the
    block goes on (the hub serves; its workflows wait for its next start)."""
    engine = hub_engine(store, hub_url)
    failed: list[BaseException] = []

    def launch() -> None:
        try:
            engine.launch()
        except Exception as exc:  # logged: the server still serves sync
            failed.append(exc)
            log.exception("the hub's workflows did not start")

    starter = threading.Thread(target=launch, name="truthvault-workflows", daemon=True)
    starter.start()
    try:
        yield engine
    finally:
        starter.join()
        engine.close()
