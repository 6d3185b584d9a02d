"""The device action of offline governance: ``parked.apply`` brings an item parked at a sync
back (upcast, or as it is once it fits the newest version of its contract)."""

from __future__ import annotations

from pydantic import Field

from ..errors import NotFound
from ..kernel import ActionInput, ActionOutput, Risk, Target
from ._actions import DEVICE_ACTIONS, Ctx

__all__ = ["ParkedApplied", "ParkedIn"]


class ParkedIn(ActionInput):
    id: int = Field(ge=1, description="the parked item's id, from 'truthvault parked'")


class ParkedApplied(ActionOutput):
    """``applied`` (a new version made under the newest contract, queued for the hub) or
    ``superseded`` (the entity was edited since: the edit went the usual way)."""

    outcome: str
    entity_id: str


def _parked_target(ctx: Ctx, params: ParkedIn) -> list[Target]:
    found = [p for p in ctx.store.offline.parked() if p.id == params.id]
    if not found:
        raise NotFound(f"no parked item {params.id}", hint="'truthvault parked' lists them")
    try:
        item = ctx.store.get(found[0].entity_id, include_deleted=True)
    except NotFound:
        return [Target(found[0].entity_id, found[0].entity_type)]
    return [Target(item.entity_id, item.entity_type, item.version, item.truth_level)]


@DEVICE_ACTIONS.action(
    "parked.apply", version="1.0.0", risk=Risk.WRITE, input=ParkedIn, output=ParkedApplied,
    targets=_parked_target,
)  # fmt: skip
def parked_apply(ctx: Ctx, params: ParkedIn) -> ParkedApplied:
    """Bring back an item parked at a sync, fitted to its type's newest contract version."""
    entity_id = next(p.entity_id for p in ctx.store.offline.parked() if p.id == params.id)
    outcome = ctx.store.offline.apply_parked(params.id)
    if outcome == "applied":
        item = ctx.store.get(entity_id)
        ctx.touched(Target(item.entity_id, item.entity_type, item.version, item.truth_level))
    return ParkedApplied(outcome=outcome, entity_id=entity_id)
