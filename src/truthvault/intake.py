"""What may enter a store: the checks of an item beyond its schema, one set of rules for a push
at the hub, a pull and an import on a device, and a write in the vault.

Pure code, no I/O. A body is decoded first (:func:`truthvault.model.decode_push`,
``decode_pull``, ``decode_item``); then :func:`prepare_items` checks a batch and applies the
upgrade rule (:func:`sort_out` sets bad items aside instead of failing). Payload content is
:mod:`truthvault.payload`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import accumulate, repeat
from operator import itemgetter

from .clock import CANONICAL_STAMP_RE, first_unreal_stamp
from .errors import Forbidden, InvalidInput, InvalidSource, PayloadTooLarge, TruthvaultError
from .model import _ID, _TYPE, OriginStep, SyncItem, describe_item
from .payload import MAX_PAYLOAD_DEPTH, check_payload, check_payloads
from .truth import ACCEPTED_SOURCE, TruthLevel, check_acceptance, check_source, implied_level, origin_step

__all__ = [
    "check_entity_id",
    "check_entity_type",
    "prepare_item",
    "prepare_items",
    "sort_out",
]

_type_ok = re.compile(_TYPE).fullmatch
_id_ok = re.compile(_ID).fullmatch
# Many of them at once, joined by newlines (which neither may hold).
_types_ok = re.compile(rf"{_TYPE}(?:\n{_TYPE})*").fullmatch
_ids_ok = re.compile(rf"{_ID}(?:\n{_ID})*").fullmatch
# Half the limit of either bracket: then both together are within it.
_FEW_BRACKETS = MAX_PAYLOAD_DEPTH // 2
_stamp_match = CANONICAL_STAMP_RE.match
_NOT_STAMP = "%r is not a clock stamp like 2026-11-22T01:36:48.123Z-0000"


def check_entity_type(value: str, where: str = "entity_type") -> str:
    """Return ``value`` if it is a valid entity type, else raise InvalidInput naming ``where``."""
    if not _type_ok(value):
        raise InvalidInput(
            f"{where}: {value!r} is not an entity type (a lowercase letter, then up to 63 of a-z 0-9 _ . -)"
        )
    return value


def check_entity_id(value: str, where: str = "entity_id") -> str:
    """Return ``value`` if it is a valid entity id, else raise InvalidInput naming ``where``."""
    if not _id_ok(value):
        raise InvalidInput(
            f"{where}: {value!r} is not an entity id (a letter or digit, then up to 127 of A-Z a-z 0-9 . _ : -)"
        )
    return value


def prepare_item(
    item: SyncItem,
    where: str,
    *,
    tenant_id: str,
    device_id: str | None,
    max_payload_bytes: int,
    max_clock: str,
) -> SyncItem:
    """Check an incoming item beyond its schema and apply the upgrade rule.

    ``where`` names the item in errors (``items[3]``). Raises Forbidden for another
    tenant's or device's item, PayloadTooLarge, InvalidSource, or InvalidInput.
    """
    check_entity_type(item.entity_type, f"{where}.entity_type")
    check_entity_id(item.entity_id, f"{where}.entity_id")
    if item.tenant_id != tenant_id:
        raise Forbidden(f"{where}.tenant_id: {item.tenant_id!r} is not this device's tenant")
    if device_id is not None and item.device_id != device_id:
        raise Forbidden(f"{where}.device_id: {item.device_id!r} is not the device that is pushing")
    if len(item.payload) > max_payload_bytes:
        raise PayloadTooLarge(
            f"{where}.payload: {len(item.payload)} bytes is over the limit of {max_payload_bytes}"
        )
    if not item.payload or memoryview(item.payload)[0] != 0x7B:  # "{" starts a JSON object
        raise InvalidInput(f"{where}.payload: must be a JSON object")
    check_payload(item.payload, f"{where}.payload")
    for field, stamp in (("last_modified_at", item.last_modified_at), ("base_clock", item.base_clock)):
        if stamp is not None and (not _stamp_match(stamp) or first_unreal_stamp([stamp])):
            raise InvalidInput(f"{where}.{field}: {_NOT_STAMP % (stamp,)}")
    if item.last_modified_at > max_clock:
        raise InvalidInput(
            f"{where}.last_modified_at: {item.last_modified_at} is too far in the future "
            f"(latest accepted: {max_clock})",
            hint="check the device's clock",
        )
    try:
        check_source(item.origin_source, item.truth_level)
    except InvalidSource as exc:
        raise InvalidSource(f"{where}.origin_source: {exc.message}") from None
    for n, step in enumerate(item.origin_chain):
        try:
            check_source(step.source, step.level)
        except InvalidSource as exc:
            raise InvalidSource(f"{where}.origin_chain[{n}].source: {exc.message}") from None
    if item.last_modified_by_level is None:
        item.last_modified_by_level = item.truth_level
    if item.accepted_by_user and item.truth_level != TruthLevel.USER:
        _check_acceptance(item, where)
        _upgrade(item)
    return item


def _check_acceptance(item: SyncItem, where: str) -> None:
    try:
        check_acceptance(item.truth_level, item.accepted_by_user, [step.level for step in item.origin_chain])
    except InvalidSource as exc:
        raise InvalidSource(f"{where}.{exc.message}", hint=exc.hint) from None


def _upgrade(item: SyncItem) -> None:
    """The upgrade rule at sync time: what the user accepted is user truth."""
    item.origin_chain = (
        *item.origin_chain,
        OriginStep(**origin_step(item.truth_level, item.origin_source, item.last_modified_at)),  # type: ignore[arg-type]
    )
    item.truth_level = int(TruthLevel.USER)
    item.origin_source = ACCEPTED_SOURCE
    item.last_modified_by_level = int(TruthLevel.USER)


def prepare_items(
    items: list[SyncItem],
    where: str = "items",
    *,
    tenant_id: str,
    max_payload_bytes: int,
    max_clock: str,
) -> list[SyncItem]:
    """:func:`prepare_item` over a batch (any device's versions), with the same checks and errors.

    Each check runs over one field of the whole batch at a time (a joined string against one
    regex, a set of the distinct sources), which costs a fraction of checking item by item.
    Only a batch that fails one is checked item by item, to name the first bad item
    (``items[3].entity_id: ...``).
    """
    if not (
        # the payloads as one JSON array, joined once for both (a join of a thousand is not free)
        _batch_passes(items, tenant_id, max_payload_bytes, max_clock, array := _payload_array(items))
        and _payloads_pass(items, where, array)
        and _acceptance_passes(items)
    ):
        # Checked item by item, in order: the error names the first bad item.
        for i, item in enumerate(items):
            _prepare_nth(item, i, where, tenant_id, max_payload_bytes, max_clock)
        return items
    if None in [item.last_modified_by_level for item in items]:
        for item in items:
            if item.last_modified_by_level is None:
                item.last_modified_by_level = item.truth_level
    if True in [item.accepted_by_user for item in items]:
        for item in items:
            if item.accepted_by_user and item.truth_level != TruthLevel.USER:
                _upgrade(item)
    return items


def _payload_array(items: list[SyncItem]) -> bytes:
    return b"[" + b",".join([item.payload for item in items]) + b"]"  # msgspec.Raw is a buffer


def _payloads_pass(items: list[SyncItem], where: str, array: bytes) -> bool:
    try:
        check_payloads([item.payload for item in items], where, array)
    except InvalidInput:
        return False
    return True


def _acceptance_passes(items: list[SyncItem]) -> bool:
    if True not in [item.accepted_by_user for item in items]:
        return True
    try:
        for item in items:
            if item.accepted_by_user and item.truth_level != TruthLevel.USER:
                check_acceptance(item.truth_level, True, [step.level for step in item.origin_chain])
    except InvalidSource:
        return False
    return True


def sort_out(
    items: list[SyncItem], where: str = "items", *, tenant_id: str, max_payload_bytes: int, max_clock: str
) -> tuple[list[SyncItem], list[tuple[SyncItem, TruthvaultError]]]:
    """:func:`prepare_items`, but an item that fails a check is set aside with its error rather
    than failing the batch: (the items that passed, prepared; the others). For a device taking
    in a pulled page, where one bad item must not stop the rest."""
    try:
        return prepare_items(
            items, where, tenant_id=tenant_id, max_payload_bytes=max_payload_bytes, max_clock=max_clock
        ), []
    except TruthvaultError:
        pass
    good: list[SyncItem] = []
    bad: list[tuple[SyncItem, TruthvaultError]] = []
    for i, item in enumerate(items):
        try:
            good.append(_prepare_nth(item, i, where, tenant_id, max_payload_bytes, max_clock))
        except TruthvaultError as exc:
            bad.append((item, exc))
    return good, bad


def _prepare_nth(
    item: SyncItem, i: int, where: str, tenant_id: str, max_payload_bytes: int, max_clock: str
) -> SyncItem:
    """:func:`prepare_item` on item ``i`` of a batch (any device's version), an error naming it."""
    try:
        return prepare_item(
            item,
            f"{where}[{i}]",
            tenant_id=tenant_id,
            device_id=None,
            max_payload_bytes=max_payload_bytes,
            max_clock=max_clock,
        )
    except TruthvaultError as exc:
        raise exc.for_item(i, describe_item(item)) from None


def _all_match(ok: Callable[[str], object], values: list[str]) -> bool:
    """True when every value matches: one regex over them all, joined by newlines (a value
    holding a newline of its own would add a piece, so the pieces are counted too)."""
    if not values:
        return True
    joined = "\n".join(values)
    return joined.count("\n") == len(values) - 1 and ok(joined) is not None


# Canonical stamps, many at once: with every digit turned into "0" and every letter a-f into
# "a", the joined stamps must read _SHAPE, _SHAPE, ... (so each stamp is 30 characters from
# the last), except that an "a" may stand in a counter (the last four of each stamp) and
# nowhere else. This costs half of one regex over the joined stamps.
_SHAPE = "0000-00-00T00:00:00.000Z-0000"
_SHAPED = str.maketrans("0123456789abcdef", "0" * 10 + "a" * 6)
_COUNTER = range(len(_SHAPE) - 4, len(_SHAPE))


def _stamps_ok(stamps: list[str]) -> bool:
    if not stamps:
        return True
    shaped = "\n".join(stamps).translate(_SHAPED)
    if shaped.replace("a", "0") != "\n".join([_SHAPE] * len(stamps)):
        return False
    in_counters = sum(shaped[k :: len(_SHAPE) + 1].count("a") for k in _COUNTER)
    return in_counters == shaped.count("a")


def _batch_passes(
    items: list[SyncItem], tenant_id: str, max_payload_bytes: int, max_clock: str, array: bytes
) -> bool:
    """True when every item passes every check of :func:`prepare_item` but the payload content
    (``array``: the payloads as one JSON array), checked one field of the whole batch at a time.
    Never looser than prepare_item: a False (which may be stricter) only sends the batch to be
    checked item by item."""
    n = len(items)
    if not n:
        return True
    if not _all_match(_types_ok, list({item.entity_type for item in items})):
        return False
    if not _all_match(_ids_ok, [item.entity_id for item in items]):
        return False
    if [item.tenant_id for item in items].count(tenant_id) != n:
        return False
    sizes = [len(item.payload) for item in items]
    if min(sizes) == 0 or max(sizes) > max_payload_bytes:
        return False
    # Each payload must open a JSON object: pick every first byte out of the array (payload i
    # starts after "[", i commas and the payloads before it; the first one twice, so that the
    # getter always answers a tuple).
    starts = list(accumulate((size + 1 for size in sizes[:-1]), initial=1))
    if itemgetter(1, *starts)(array).count(0x7B) != n + 1:
        return False
    # No payload may nest too deep: when none has more than _FEW_BRACKETS of either bracket,
    # none can (one with more is checked on its own). Counted over the whole batch first, as
    # each payload opens one object: flat payloads, the usual kind, need no count of their own.
    if array.count(b"{") > n + _FEW_BRACKETS - 1 or array.count(b"[") - 1 > _FEW_BRACKETS:
        ends = [start + size for start, size in zip(starts, sizes, strict=True)]
        for bracket in (b"{", b"["):
            if max(map(array.count, repeat(bracket), starts, ends)) > _FEW_BRACKETS:
                return False
    clocks = [item.last_modified_at for item in items]
    if max(clocks) > max_clock or not _stamps_ok(clocks):
        return False
    bases = [item.base_clock for item in items if item.base_clock is not None]
    if not _stamps_ok(bases) or first_unreal_stamp(clocks + bases) is not None:
        return False
    # Each source names its level: look each distinct one up once, then compare the lists.
    sources = [item.origin_source for item in items]
    steps = [step for item in items if item.origin_chain for step in item.origin_chain]
    try:
        implied = {source: int(implied_level(source)) for source in {*sources, *(s.source for s in steps)}}
    except InvalidSource:
        return False
    return list(map(implied.__getitem__, sources)) == [item.truth_level for item in items] and all(
        implied[step.source] == step.level for step in steps
    )
