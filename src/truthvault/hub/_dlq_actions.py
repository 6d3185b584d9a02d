"""The dead-letter queue's governed actions (``dlq.retry``, ``dlq.quarantine``, ``dlq.discard``)
and :func:`decide_dead_letter`, which the admin's command runs them through.

A dead letter of a tenant is decided through that tenant's kernel (policy, approvals, audit); one
of no tenant (a provisioning that failed before its tenant existed) has no tenant policy or log
to go through: the admin decides it on the hub's machine and it is kept as a security event.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ..errors import Forbidden, NotFound
from ..kernel import ActionInput, Risk, Target
from ..kernel._dead_letters import DeadLetter
from ._actions import HUB_ACTIONS, Ctx, _Out
from .store import HubStore

__all__ = ["DLQ_ACTIONS", "decide_dead_letter"]

#: the action of each decision
DLQ_ACTIONS = {"retry": "dlq.retry", "quarantine": "dlq.quarantine", "discard": "dlq.discard"}


class DeadLetterIn(ActionInput):
    id: str = Field(min_length=4, max_length=64)
    note: str | None = Field(default=None, max_length=2000)


class DeadLetterOut(_Out):
    dead_letter: dict[str, Any]


def _of_tenant(ctx: Ctx, id: str) -> DeadLetter:
    """The dead letter ``id`` names, if it is the scope's tenant's (else NotFound: another
    tenant's dead letters are not even said to exist)."""
    found = ctx.store.store.dead_letters.get(id)
    if found.tenant_id != ctx.store.tenant_id:
        raise NotFound(f"no dead letter {id!r}")
    ctx.touched(Target(found.id, "dead_letter"))
    return found


@HUB_ACTIONS.action("dlq.retry", version="1.0.0", risk=Risk.WRITE, input=DeadLetterIn, output=DeadLetterOut)
def dlq_retry(ctx: Ctx, params: DeadLetterIn) -> DeadLetterOut:
    """Hand a dead letter back to its engine: a workflow's runs again from its first step."""
    found = _of_tenant(ctx, params.id)
    done = ctx.store.store.dead_letters.retry(found.id, ctx.actor.source, params.note)
    return DeadLetterOut(dead_letter=done.to_dict())


@HUB_ACTIONS.action(
    "dlq.quarantine", version="1.0.0", risk=Risk.WRITE, input=DeadLetterIn, output=DeadLetterOut
)
def dlq_quarantine(ctx: Ctx, params: DeadLetterIn) -> DeadLetterOut:
    """Set a dead letter aside: kept, not retried, out of the open ones."""
    found = _of_tenant(ctx, params.id)
    done = ctx.store.store.dead_letters.move(found.id, "quarantined", ctx.actor.source, params.note)
    return DeadLetterOut(dead_letter=done.to_dict())


@HUB_ACTIONS.action(
    "dlq.discard", version="1.0.0", risk=Risk.DESTRUCTIVE, input=DeadLetterIn, output=DeadLetterOut
)
def dlq_discard(ctx: Ctx, params: DeadLetterIn) -> DeadLetterOut:
    """Decide a dead letter is not to be done (it stays listed as discarded). Only the user
    (level 1) decides that: nothing is dropped by an automation or an AI."""
    if not ctx.actor.is_user:
        raise Forbidden(f"{ctx.actor.source} may not discard a dead letter: only the user (level 1) decides")
    found = _of_tenant(ctx, params.id)
    done = ctx.store.store.dead_letters.move(found.id, "discarded", ctx.actor.source, params.note)
    return DeadLetterOut(dead_letter=done.to_dict())


def decide_dead_letter(store: HubStore, verb: str, id: str, note: str | None = None) -> DeadLetter:
    """Retry, quarantine or discard dead letter ``id`` as the hub's admin: through its tenant's
    governed action, or, for a dead letter of no tenant, directly (kept as a security event)."""
    from ._governance import HUB_ADMIN, run_as_admin

    found = store.dead_letters.get(id)
    tenant = next((t for t in store.list_tenants() if t.id == found.tenant_id), None)
    if tenant is not None:
        out = run_as_admin(store, tenant.name, DLQ_ACTIONS[verb], {"id": found.id, "note": note})
        return DeadLetter(**out["dead_letter"])
    letters = store.dead_letters
    with store.transaction():
        if verb == "retry":
            done = letters.retry(found.id, HUB_ADMIN, note)
        else:
            done = letters.move(
                found.id, "quarantined" if verb == "quarantine" else "discarded", HUB_ADMIN, note
            )
        store.add_security_event(
            f"DLQ_{verb.upper()}", detail={"dead_letter": found.id, "source": found.source, "by": HUB_ADMIN}
        )
    return done
