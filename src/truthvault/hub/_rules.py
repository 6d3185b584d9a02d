"""What a push decides beyond storage and merging: the checks of a batch, what a lost version's
record holds, and the refusals of a cursor the hub cannot serve. Pure functions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from ..clock import format_stamp
from ..errors import HubReset, InvalidInput
from ..intake import prepare_items
from ..merge import Loss
from ..model import PushRequest, Record, SyncItem, describe_item
from .store import DeviceContext, Limits

__all__ = [
    "checked_items",
    "kept_record",
    "max_clock",
    "other_history",
    "reset_error",
]


def other_history(cursor: int) -> HubReset:
    return HubReset(
        f"cursor {cursor} points into a history the hub no longer has (its database was restored "
        "or replaced, then took other changes)",
        hint="pull from 0, then send the hub what it lacks",
    )


def reset_error(cursor: int, head: int) -> HubReset:
    return HubReset(
        f"cursor {cursor} is ahead of the hub's last change {head}: the hub lost changes "
        "(its database was restored or replaced)",
        hint="pull from 0, then send the hub what it lacks",
    )


def checked_items(ctx: DeviceContext, request: PushRequest, limits: Limits, now_ms: int) -> list[SyncItem]:
    """Check a whole batch before anything is written; the first bad item refuses it."""
    items = request.items
    if len(items) > limits.max_batch_items:
        raise InvalidInput(f"items: {len(items)} items is over the limit of {limits.max_batch_items}")
    mutations = [item.mutation for item in items]
    bad = _first_bad_mutation(mutations)
    # A device may relay versions another device wrote (an import, a restore): the version's
    # device_id names its writer, idempotency is per pushing device.
    prepare_items(
        items[:bad],
        tenant_id=ctx.tenant_id,
        max_payload_bytes=limits.max_payload_bytes,
        max_clock=max_clock(limits, now_ms),
    )
    if bad < len(items):  # the items before it are good, so this is the first error
        if mutations[bad] is None:
            raise InvalidInput(f"items[{bad}].mutation: missing (every pushed item needs one)").for_item(
                bad, describe_item(items[bad])
            )
        raise InvalidInput(
            f"items[{bad}].mutation: {mutations[bad]} is not above the previous item's {mutations[bad - 1]}"
        ).for_item(bad, describe_item(items[bad]))
    return items


def max_clock(limits: Limits, now_ms: int) -> str:
    """The latest clock a push may carry now."""
    return format_stamp(now_ms + limits.max_future_skew_ms, 0xFFFF)


def _first_bad_mutation(mutations: list[int | None]) -> int:
    """The index of the first missing or not strictly increasing mutation (len when none is)."""
    previous = -1
    for i, mutation in enumerate(mutations):
        if mutation is None or mutation <= previous:
            return i
        previous = mutation
    return len(mutations)


def kept_record(loss: Loss, bases: Sequence[SyncItem], current: Mapping[str, SyncItem]) -> Record:
    """The record to store for a loss: its item as the device sent it, without push/pull numbers,
    and for a suggestion the version it was made on when that is known (see :func:`_base_of`)."""
    base = _base_of(loss, bases, current)
    return msgspec.structs.replace(
        loss.record,
        item=_bare(loss.record.item),
        base=None if base is None else _bare(base),
    )


def _bare(item: SyncItem) -> SyncItem:
    return msgspec.structs.replace(item, mutation=None, seq=None, kept=False)


def _base_of(loss: Loss, bases: Sequence[SyncItem], current: Mapping[str, SyncItem]) -> SyncItem | None:
    """The version a lost suggestion was made on: the version it lost to or the hub's current
    one, whichever is that version, else one the pushing device sent beside it (None: unknown).
    The hub's own copies come first: a device could send a forged one of the same number."""
    item = loss.record.item
    if loss.kind != "suggestion" or item.base_clock is None:
        return None
    for candidate in (loss.winner, current.get(item.entity_id), *bases):
        if (
            candidate is not None
            and candidate.entity_id == item.entity_id
            and candidate.version == item.base_version
            and candidate.last_modified_at == item.base_clock
            and not candidate.deleted
        ):
            return candidate
    return None
