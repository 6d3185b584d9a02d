"""The device's dead-letter actions (``dlq.retry``, ``dlq.quarantine``, ``dlq.discard``) over the
vault's own queue: the same decisions as at the hub, under this device's policy and audit log."""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field

from ..errors import Forbidden
from ..kernel import ActionInput, ActionOutput, Risk, Target
from ._actions import DEVICE_ACTIONS, Ctx

__all__: list[str] = []


class DeadLetterIn(ActionInput):
    id: str = Field(min_length=4, max_length=64)
    note: str | None = Field(default=None, max_length=2000)


class DeadLetterOut(ActionOutput):
    model_config = ConfigDict(extra="allow", defer_build=True)

    dead_letter: dict[str, Any]


@DEVICE_ACTIONS.action(
    "dlq.retry", version="1.0.0", risk=Risk.WRITE, input=DeadLetterIn, output=DeadLetterOut
)
def dlq_retry(ctx: Ctx, params: DeadLetterIn) -> DeadLetterOut:
    """Hand a dead letter of this device back to its engine."""
    letters = ctx.store.dead_letters
    found = letters.get(params.id)
    ctx.touched(Target(found.id, "dead_letter"))
    return DeadLetterOut(dead_letter=letters.retry(found.id, ctx.actor.source, params.note).to_dict())


@DEVICE_ACTIONS.action(
    "dlq.quarantine", version="1.0.0", risk=Risk.WRITE, input=DeadLetterIn, output=DeadLetterOut
)
def dlq_quarantine(ctx: Ctx, params: DeadLetterIn) -> DeadLetterOut:
    """Set a dead letter of this device aside: kept, not retried."""
    letters = ctx.store.dead_letters
    found = letters.get(params.id)
    ctx.touched(Target(found.id, "dead_letter"))
    done = letters.move(found.id, "quarantined", ctx.actor.source, params.note)
    return DeadLetterOut(dead_letter=done.to_dict())


@DEVICE_ACTIONS.action(
    "dlq.discard", version="1.0.0", risk=Risk.DESTRUCTIVE, input=DeadLetterIn, output=DeadLetterOut
)
def dlq_discard(ctx: Ctx, params: DeadLetterIn) -> DeadLetterOut:
    """Decide a dead letter of this device is not to be done (only the user, level 1)."""
    if not ctx.actor.is_user:
        raise Forbidden(f"{ctx.actor.source} may not discard a dead letter: only the user (level 1) decides")
    letters = ctx.store.dead_letters
    found = letters.get(params.id)
    ctx.touched(Target(found.id, "dead_letter"))
    done = letters.move(found.id, "discarded", ctx.actor.source, params.note)
    return DeadLetterOut(dead_letter=done.to_dict())
