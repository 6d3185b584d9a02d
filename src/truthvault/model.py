"""Wire types shared by the device and the hub: SyncItem, records, push and pull bodies.

Decoding a body is here; checking its items beyond the schema is :mod:`truthvault.intake`.

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
from collections.abc import Iterable
from functools import partial
from typing import Annotated, Any, Literal

import msgspec

from .errors import InvalidInput, TruthvaultError
from .payload import MAX_INT64, MAX_PAYLOAD_DEPTH, decode_error_reason

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
    "checksum_hex",
    "decode_item",
    "decode_pull",
    "decode_push",
    "describe_item",
    "digest_sum",
    "encode",
    "item_digest",
    "record_digest",
    "refuse",
    "refuse_nul",
    "seal_context",
]

_TYPE = r"[a-z][a-z0-9_.-]{0,63}"
_ID = r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"
# The schema states these patterns, but decoding does not run them on each item (that was a
# third of the cost of decoding a batch): intake.prepare_item checks them, prepare_items a
# whole batch in two calls.
EntityType = Annotated[str, msgspec.Meta(extra_json_schema={"pattern": rf"^{_TYPE}$"})]
EntityId = Annotated[str, msgspec.Meta(extra_json_schema={"pattern": rf"^{_ID}$"})]
Level = Annotated[int, msgspec.Meta(ge=1, le=5)]
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

    def data(self) -> dict[str, Any]:
        """The payload, decoded: a JSON object (a tombstone's is empty). An end-to-end encrypted
        item is opened by the device that pulls it, so a vault only ever holds readable ones."""
        value = msgspec.json.decode(self.payload)
        if not isinstance(value, dict):
            raise InvalidInput(f"the payload of {self.entity_id} is not a JSON object")
        return value


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
    #: for outcome "refused": why the hub did not take the item (the rest of the batch it did)
    reason: str | None = None


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


_encoder = msgspec.json.Encoder()
_push_decoder = msgspec.json.Decoder(PushRequest)


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


_pull_decoder = msgspec.json.Decoder(PullResponse)
_fields_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_raw_list_decoder = msgspec.json.Decoder(list[msgspec.Raw])
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
    """A page taken apart: its fields as the page's own schema reads them, then each item and
    record on its own, those that do not decode kept aside in ``refused``."""
    try:
        fields = _fields_decoder.decode(body)
        raw_items = _raw_list_decoder.decode(fields.get("items", b"[]"))
        raw_records = _raw_list_decoder.decode(fields.get("records", b"[]"))
        page = _pull_decoder.decode(encode({**fields, "items": [], "records": []}))
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as exc:
        raise InvalidInput(f"the hub's answer is not a pull page ({exc})") from None
    page.items = [item for raw in raw_items if (item := _one(raw, "item", refused)) is not None]
    page.records = [rec for raw in raw_records if (rec := _one(raw, "record", refused)) is not None]
    return page


def _one(raw: msgspec.Raw, kind: Literal["item", "record"], refused: list[Refused]) -> Any:
    """One pulled item or record decoded, or None and kept aside in ``refused``."""
    try:
        return (_item_decoder if kind == "item" else _record_decoder).decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as exc:
        record_id = _id_in(raw, "id") if kind == "record" else None
        refused.append(Refused(kind, _id_in(raw), _reason(exc), _cut(raw), record_id))
        return None


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


def _where(message: str) -> str:
    # msgspec says "Expected `int`, got `str` - at `$.items[3].truth_level`"; lead with the path.
    head, sep, path = message.rpartition(" - at `")
    if not sep:
        return message
    return f"{path.rstrip('`').removeprefix('$.')}: {head}"


def describe_item(item: SyncItem) -> str:
    """How an error names an item: its type and id (the batch index alone means nothing to a person)."""
    return f"{item.entity_type[:64]} {item.entity_id[:128]!r}"


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
