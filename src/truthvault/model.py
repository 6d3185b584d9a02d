"""Wire types shared by the device and the hub: SyncItem, records, push and pull bodies.

These are msgspec Structs rather than pydantic models on purpose: the payload travels
as ``msgspec.Raw`` (the exact JSON bytes, never parsed or re-serialized on the hub, which
matters once payloads are ciphertext) and a 1,000-item batch decodes and validates in
well under a millisecond, which the sync throughput targets need. Small request bodies
elsewhere (the CLI, admin endpoints) use pydantic.

The structs are declared ``gc=False`` (they never form reference cycles) and origin chains
are tuples (the empty one is shared), so decoding a large batch allocates nothing the
cyclic garbage collector has to track; in a server with a large heap that was a third
of the cost of a push.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Callable, Iterable
from functools import partial
from itertools import accumulate, repeat
from operator import itemgetter
from typing import Annotated, Literal

import msgspec

from .clock import CANONICAL_STAMP_RE, first_unreal_stamp
from .errors import Forbidden, InvalidInput, InvalidSource, PayloadTooLarge, TruthvaultError
from .payload import (
    MAX_INT64,
    MAX_PAYLOAD_DEPTH,
    check_payload,
    check_payload_depth,
    check_payloads,
    decode_error_reason,
)
from .truth import ACCEPTED_SOURCE, TruthLevel, check_acceptance, check_source, implied_level, origin_step

__all__ = [
    "MAX_COUNTER",
    "MAX_INT64",
    "MAX_PAYLOAD_DEPTH",
    "Decision",
    "OriginStep",
    "PullResponse",
    "PushRequest",
    "PushResponse",
    "PushResult",
    "Record",
    "Refused",
    "SyncItem",
    "check_entity_id",
    "check_entity_type",
    "check_payload_depth",
    "checksum_hex",
    "decode_item",
    "decode_pull",
    "decode_push",
    "describe_item",
    "digest_sum",
    "encode",
    "item_digest",
    "prepare_item",
    "prepare_items",
    "record_digest",
    "refuse",
    "refuse_nul",
    "seal_context",
    "sort_out",
]

_TYPE = r"[a-z][a-z0-9_.-]{0,63}"
_ID = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"
# The schema states these patterns, but decoding does not run them on each item (that was a
# third of the cost of decoding a batch): prepare_item checks them, prepare_items a whole
# batch in two calls.
EntityType = Annotated[str, msgspec.Meta(extra_json_schema={"pattern": rf"^{_TYPE}$"})]
EntityId = Annotated[str, msgspec.Meta(extra_json_schema={"pattern": rf"^{_ID}$"})]
_type_ok = re.compile(_TYPE).fullmatch
_id_ok = re.compile(_ID).fullmatch
# Many of them at once, joined by newlines (which neither may hold).
_types_ok = re.compile(rf"{_TYPE}(?:\n{_TYPE})*").fullmatch
_ids_ok = re.compile(rf"{_ID}(?:\n{_ID})*").fullmatch
Level = Annotated[int, msgspec.Meta(ge=1, le=5)]
# Half the limit of either bracket: then both together are within it.
_FEW_BRACKETS = MAX_PAYLOAD_DEPTH // 2
#: The largest version, base version, contract version and mutation number an item may carry:
#: 2**53 - 1, the largest integer every JSON reader holds exactly, which leaves a 64-bit
#: column room to count on (an item at 2**63 - 1 was once taken in, and its next edit
#: overflowed on every device).
MAX_COUNTER = 2**53 - 1
#: text without NUL characters, which PostgreSQL cannot store in a text column. The schema
#: says so, but decoding does not run this pattern on every string (it was half the cost of
#: decoding a batch): :func:`decode_push` looks for NUL only in a body that can hold one.
NO_NUL = r"^[^\x00]*$"
NonNegative = Annotated[int, msgspec.Meta(ge=0, le=MAX_INT64)]
Counter = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNTER)]
ShortText = Annotated[str, msgspec.Meta(min_length=1, max_length=200, extra_json_schema={"pattern": NO_NUL})]
Text = Annotated[str, msgspec.Meta(extra_json_schema={"pattern": NO_NUL})]
Payload = Annotated[
    msgspec.Raw,
    msgspec.Meta(
        extra_json_schema={
            "type": "object",
            "description": "the entity's fields (for local-first tenants: ciphertext), kept as exact JSON bytes",
        }
    ),
]


class OriginStep(msgspec.Struct, omit_defaults=True, gc=False):
    """One step of provenance: who (level, source), when, and what it referred to."""

    level: Level
    source: ShortText
    at: ShortText
    ref: Text | None = None


class SyncItem(msgspec.Struct, omit_defaults=True, gc=False):
    """One version of one entity as it travels between a device and the hub."""

    entity_type: EntityType
    entity_id: EntityId
    tenant_id: ShortText
    truth_level: Level
    origin_source: ShortText
    last_modified_at: ShortText
    device_id: ShortText
    payload: Payload = msgspec.field(default_factory=lambda: msgspec.Raw(b"{}"))
    origin_chain: tuple[OriginStep, ...] = ()
    accepted_by_user: bool = False
    last_modified_by_level: Level | None = None
    version: Counter = 1
    base_version: Counter = 0
    base_clock: Text | None = None
    contract_version: Counter = 1
    deleted: bool = False
    #: push only: the device's number for this mutation (strictly increasing per device)
    mutation: Counter | None = None
    #: push only: this version already lost on the device, which keeps it as a suggestion (or,
    #: at level 1, a conflict record); the hub keeps it so too and never makes it current
    kept: bool = False
    #: pull only: the hub's sequence number of this change in the tenant's feed
    seq: NonNegative | None = None


class Record(msgspec.Struct, omit_defaults=True, gc=False):
    """A kept loser: a suggestion (a lower-level version) or a conflict (a U1 loser)."""

    kind: Literal["suggestion", "conflict"]
    id: str
    entity_id: str
    entity_type: str
    status: Literal["open", "accepted", "rejected", "resolved"]
    item: SyncItem
    created_at: str
    decided_at: str | None = None
    resolution: str | None = None
    seq: NonNegative | None = None
    #: for a suggestion: the version it was made on, when known, so that accepting it applies
    #: what it changed even on a device that never held that version
    base: SyncItem | None = None


class Decision(msgspec.Struct, omit_defaults=True, gc=False):
    """A user's decision on a record, made on a device and pushed to the hub."""

    id: ShortText
    status: Literal["accepted", "rejected", "resolved"]
    at: ShortText
    resolution: Text | None = None


class PushRequest(msgspec.Struct, omit_defaults=True, gc=False):
    """The body of ``POST /v1/sync/push``."""

    items: list[SyncItem] = []
    decisions: list[Decision] = []
    #: the device's pull cursor; a cursor behind the purge horizon means re-sync first
    cursor: NonNegative = 0
    #: the tag of the latest hub commit this device knows of (see :class:`PullResponse`), and
    #: the sequence number it was given for (the cursor when none is given)
    tag: ShortText | None = None
    tag_seq: NonNegative | None = None
    #: the versions kept items of this batch (suggestions) were made on, when the device knows
    #: them: the hub keeps each with its suggestion (``Record.base``)
    bases: list[SyncItem] = []


class PushResult(msgspec.Struct, omit_defaults=True, gc=False):
    """What became of one pushed item."""

    entity_id: str
    outcome: str
    mutation: int | None = None
    record_id: str | None = None


class PushResponse(msgspec.Struct, gc=False):
    """The answer to a push: one result per item, the tenant's head, the device's last mutation.

    ``previous_mutation`` is the device's last mutation before this push: items numbered at or
    below it were taken as already applied. ``tag`` names the commit the push wrote (None when it
    wrote nothing), whose last sequence number is ``head``.
    """

    results: list[PushResult]
    head: int
    last_mutation: int
    previous_mutation: int = 0
    tag: str | None = None


class PullResponse(msgspec.Struct, gc=False):
    """The answer to a pull.

    ``checksum`` is the tenant's state checksum at ``cursor`` and ``records_checksum`` that of
    its records (their ids and statuses); both are only given when ``has_more`` is false (the
    page reaches the head). ``tag`` names the hub commit that ``cursor`` points into: a device
    sends it back with its cursor, and a hub whose history at that cursor is another one (its
    database was restored from a backup, then took new changes) answers ``410 hub_reset``.
    """

    items: list[SyncItem]
    records: list[Record]
    cursor: int
    has_more: bool
    head: int
    checksum: str | None = None
    records_checksum: str | None = None
    tag: str | None = None


_push_decoder = msgspec.json.Decoder(PushRequest)
_encoder = msgspec.json.Encoder()


def encode(obj: object) -> bytes:
    """Encode a wire object (or plain data) as JSON bytes."""
    return _encoder.encode(obj)


def decode_push(body: bytes) -> PushRequest:
    """Decode and schema-check a push body; a bad one raises InvalidInput naming the field."""
    try:
        request = _push_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise _malformed(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise InvalidInput(
            f"malformed batch: body is not valid JSON ({decode_error_reason(body, exc)})"
        ) from None
    except RecursionError:
        raise _too_deep("malformed batch: body") from None
    # JSON cannot hold a raw NUL, so a decoded string has one only where the body has this escape.
    if b"\\u0000" in body:
        for i, item in enumerate(request.items):
            refuse_nul(item, f"malformed batch: items[{i}]", i)
        for i, decision in enumerate(request.decisions):
            _no_nul(
                [
                    (f"malformed batch: decisions[{i}].{k}", getattr(decision, k))
                    for k in ("id", "at", "resolution")
                ]
            )
    return request


def decode_item(text: bytes | str, where: str) -> SyncItem:
    """One SyncItem from JSON (a line of an export), schema-checked as a push checks it."""
    try:
        item = _item_decoder.decode(text)
    except msgspec.ValidationError as exc:
        raise InvalidInput(f"{where}: {_where(str(exc))}") from None
    except msgspec.DecodeError as exc:
        data = text.encode(errors="surrogatepass") if isinstance(text, str) else bytes(text)
        raise InvalidInput(f"{where}: not a valid JSON object ({decode_error_reason(data, exc)})") from None
    except RecursionError:
        raise _too_deep(where) from None
    if (isinstance(text, str) and "\\u0000" in text) or (isinstance(text, bytes) and b"\\u0000" in text):
        refuse_nul(item, where)
    return item


class Refused(msgspec.Struct, frozen=True, gc=False):
    """A pulled item or record a device would not take in, and why; it is kept aside."""

    kind: Literal["item", "record"]
    entity_id: str | None
    reason: str
    #: the JSON as the hub sent it, cut at 4 KiB
    raw: str
    record_id: str | None = None


class _LoosePage(msgspec.Struct, gc=False):
    items: list[msgspec.Raw]
    records: list[msgspec.Raw]
    cursor: int
    has_more: bool
    head: int
    checksum: str | None = None
    records_checksum: str | None = None
    tag: str | None = None


_pull_decoder = msgspec.json.Decoder(PullResponse)
_loose_page_decoder = msgspec.json.Decoder(_LoosePage)
_record_decoder = msgspec.json.Decoder(Record)
_item_decoder = msgspec.json.Decoder(SyncItem)


def decode_pull(body: bytes) -> tuple[PullResponse, list[Refused]]:
    """A pulled page and what of it a device cannot take in (kept aside, never stopping a pull).

    A page that decodes whole is the usual case; one that does not is taken apart item by item,
    so one bad item (a hostile or broken hub) costs that item only. InvalidInput when the page
    itself, not one of its items, is not a page.
    """
    refused: list[Refused] = []
    try:
        page = _pull_decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        page = _decode_apart(body, refused)
    if b"\\u0000" in body:
        page = _without_nul(page, refused)
    return page, refused


def _decode_apart(body: bytes, refused: list[Refused]) -> PullResponse:
    try:
        loose = _loose_page_decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as exc:
        raise InvalidInput(f"the hub's answer is not a pull page ({exc})") from None
    items: list[SyncItem] = []
    for raw in loose.items:
        try:
            items.append(_item_decoder.decode(raw))
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as exc:
            refused.append(Refused("item", _id_in(raw), _reason(exc), _cut(raw)))
    records: list[Record] = []
    for raw in loose.records:
        try:
            records.append(_record_decoder.decode(raw))
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as exc:
            refused.append(Refused("record", _id_in(raw), _reason(exc), _cut(raw), _id_in(raw, "id")))
    fields = msgspec.structs.asdict(loose)
    fields.update(items=items, records=records)
    return PullResponse(**fields)


def _without_nul(page: PullResponse, refused: list[Refused]) -> PullResponse:
    def fine(item: SyncItem, kind: Literal["item", "record"], record_id: str | None = None) -> bool:
        try:
            refuse_nul(item, kind)
        except InvalidInput as exc:
            refused.append(Refused(kind, item.entity_id, exc.message, _cut(encode(item)), record_id))
            return False
        return True

    items = [item for item in page.items if fine(item, "item")]
    records = [rec for rec in page.records if fine(rec.item, "record", rec.id)]
    return msgspec.structs.replace(page, items=items, records=records)


def refuse(
    kind: Literal["item", "record"], item: SyncItem, exc: TruthvaultError, record_id: str | None = None
) -> Refused:
    """A :class:`Refused` for a decoded item that failed a check."""
    return Refused(kind, item.entity_id, exc.message, _cut(encode(item)), record_id)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return f"nested deeper than a reader can take (the limit is {MAX_PAYLOAD_DEPTH})"
    return _where(str(exc))


def _cut(raw: bytes | msgspec.Raw) -> str:
    return bytes(raw)[:4096].decode(errors="replace")


def _id_in(raw: bytes | msgspec.Raw, key: str = "entity_id") -> str | None:
    """The entity (or record) id of an item that did not decode, when one can be read off it."""
    match = re.search(rb'"%s"\s*:\s*"([A-Za-z0-9._:-]{1,128})"' % key.encode(), bytes(raw)[:65536])
    return match.group(1).decode() if match else None


def refuse_nul(item: SyncItem, where: str, index: int | None = None) -> None:
    """InvalidInput when a text field of ``item`` holds a NUL character (payloads may hold them:
    they are JSON, where a NUL is an escape), which PostgreSQL cannot store in text."""
    fields = ("tenant_id", "origin_source", "last_modified_at", "device_id", "base_clock")
    named = [(f"{where}.{name}", getattr(item, name)) for name in fields]
    for n, step in enumerate(item.origin_chain):
        named += [(f"{where}.origin_chain[{n}].{k}", getattr(step, k)) for k in ("source", "at", "ref")]
    try:
        _no_nul(named)
    except InvalidInput as exc:
        raise exc.for_item(index, describe_item(item)) if index is not None else exc from None


def _no_nul(named: list[tuple[str, str | None]]) -> None:
    for where, value in named:
        if value is not None and "\x00" in value:
            raise InvalidInput(f"{where}: text must not contain NUL characters")


def _malformed(message: str) -> InvalidInput:
    """InvalidInput for a batch that failed its schema, naming the item it failed at."""
    where = _where(message)
    exc = InvalidInput(f"malformed batch: {where}")
    found = re.match(r"items\[(\d+)\]", where)
    return exc.for_item(int(found.group(1))) if found else exc


def _too_deep(where: str) -> InvalidInput:
    return InvalidInput(
        f"{where}: nested deeper than a reader can take (a payload may nest {MAX_PAYLOAD_DEPTH} deep)",
        hint="flatten the data",
    )


def describe_item(item: SyncItem) -> str:
    """How an error names an item: its type and id (the batch index alone means nothing to a person)."""
    return f"{item.entity_type[:64]} {item.entity_id[:128]!r}"


def _where(message: str) -> str:
    # msgspec says "Expected `int`, got `str` - at `$.items[3].truth_level`"; lead with the path.
    head, sep, path = message.rpartition(" - at `")
    if not sep:
        return message
    return f"{path.rstrip('`').removeprefix('$.')}: {head}"


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
            try:
                prepare_item(
                    item,
                    f"{where}[{i}]",
                    tenant_id=tenant_id,
                    device_id=None,
                    max_payload_bytes=max_payload_bytes,
                    max_clock=max_clock,
                )
            except TruthvaultError as exc:
                raise exc.for_item(i, describe_item(item)) from None
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
            good.append(
                prepare_item(
                    item,
                    f"{where}[{i}]",
                    tenant_id=tenant_id,
                    device_id=None,
                    max_payload_bytes=max_payload_bytes,
                    max_clock=max_clock,
                )
            )
        except TruthvaultError as exc:
            bad.append((item, exc.for_item(i, describe_item(item))))
    return good, bad


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


_blake8 = partial(hashlib.blake2b, digest_size=8)


def item_digest(entity_id: str, clock: str, device_id: str, truth_level: int, deleted: bool) -> int:
    """An entity's contribution to the tenant checksum (0 for a tombstone).

    It identifies the winning write (clock and device name one write uniquely), so two
    replicas with equal checksums hold the same winner for every live entity.
    """
    if deleted:
        return 0
    return int.from_bytes(
        _blake8(f"{entity_id}\x1f{clock}\x1f{device_id}\x1f{truth_level}".encode()).digest()
    )


def digest_sum(items: Iterable[SyncItem]) -> int:
    """The sum of :func:`item_digest` over items as current versions (not reduced modulo 2**64).

    The same digests, added in one go: the digests of a batch are unpacked from one string
    rather than turned into integers one by one.
    """
    digests = b"".join(
        [
            _blake8(
                f"{i.entity_id}\x1f{i.last_modified_at}\x1f{i.device_id}\x1f{i.truth_level}".encode()
            ).digest()
            for i in items
            if not i.deleted
        ]
    )
    return sum(struct.unpack(f">{len(digests) // 8}Q", digests))


def seal_context(item: SyncItem) -> bytes:
    """What a sealed payload of ``item`` is bound to besides its tenant: every truth field of its
    version, so that no payload can be passed off as another version's (another writer's, level's
    or origin's) even of the same entity and version number."""
    return _encoder.encode(
        (
            item.entity_type,
            item.entity_id,
            item.version,
            item.base_version,
            item.base_clock,
            item.last_modified_at,
            item.device_id,
            item.truth_level,
            item.origin_source,
            item.origin_chain,
            item.accepted_by_user,
            item.last_modified_by_level,
            item.contract_version,
            item.deleted,
        )
    )


def record_digest(record_id: str, status: str, resolution: str | None) -> int:
    """A record's contribution to the tenant's records checksum: its id and its decision.

    Two replicas with equal records checksums keep the same records, each with the same status
    (and, for a resolved conflict, the same resolution: keep or restore).
    """
    return int.from_bytes(_blake8(f"{record_id}\x1f{status}\x1f{resolution or ''}".encode()).digest())


def checksum_hex(total: int) -> str:
    """Render a checksum (a sum of digests modulo 2**64) as 16 hex digits."""
    return f"{total % (1 << 64):016x}"
