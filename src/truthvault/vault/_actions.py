"""The device's actions: every write the command line makes, as a governed kernel action over
a :class:`~truthvault.Vault` (the handler writes as the actor's source, so the truth rule
decides what becomes current and what is kept as a suggestion)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    Field,
    PlainSerializer,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from ..errors import InvalidInput, NotFound
from ..kernel import ActionInput, ActionOutput, Context, Registry, Risk, Target, ValidationFailed
from ..model import SyncItem
from ..payload import plain
from ._codec import VaultRecord
from ._transfer import hashed, stream_digest

if TYPE_CHECKING:
    from ._db import WriteResult
    from ._vault import Vault

__all__ = [
    "DEVICE_ACTIONS",
    "MAX_AUDIT_TARGETS",
    "EntitiesResult",
    "EntityResult",
    "ImportIn",
    "Imported",
    "RecordResult",
    "Written",
    "written",
]

DEVICE_ACTIONS: Registry[Vault] = Registry()
Ctx = Context["Vault"]


def _json_schema(what: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "object", "description": what})


#: a version of an entity, kept as the vault's own :class:`~truthvault.SyncItem` (no copy is
#: made for a Python caller) and turned into plain JSON only when the result is dumped
Item = Annotated[
    SyncItem,
    PlainSerializer(plain, return_type=dict[str, Any]),
    _json_schema("one version of an entity with its truth fields (a SyncItem, payload decoded)"),
]
KeptRecord = Annotated[
    VaultRecord,
    PlainSerializer(plain, return_type=dict[str, Any]),
    _json_schema("a kept record: a suggestion or a conflict, with its status"),
]


class Written(ActionOutput):
    """What a write did: ``applied`` (current), ``suggestion`` or ``conflict`` (kept as the
    record ``record_id``), with the version written."""

    outcome: str
    record_id: str | None = None
    item: Item


class EntityResult(ActionOutput):
    """One version of an entity with its truth fields."""

    item: Item


class EntitiesResult(ActionOutput):
    items: list[Item]


class RecordResult(ActionOutput):
    """A kept record (suggestion or conflict) after a decision."""

    record: KeptRecord


def written(result: WriteResult) -> Written:
    """The action result of a write (built from the vault's own types: nothing to validate)."""
    return Written.model_construct(outcome=str(result.outcome), record_id=result.record_id, item=result.item)


def _touched(ctx: Ctx, item: SyncItem) -> None:
    ctx.touched(Target(item.entity_id, item.entity_type, item.version, item.truth_level))


def _write(ctx: Ctx, result: WriteResult) -> Written:
    _touched(ctx, result.item)
    return written(result)


def _entity(ctx: Ctx, entity_id: str) -> list[Target]:
    """The entity as policy sees it before the action (its level decides what may touch it)."""
    try:
        item = ctx.store.get(entity_id, include_deleted=True)
    except NotFound:
        return [Target(entity_id)]
    return [Target(item.entity_id, item.entity_type, item.version, item.truth_level)]


def _record_target(ctx: Ctx, record_id: str) -> list[Target]:
    try:
        rec = ctx.store.get_record(record_id)
    except NotFound:
        return []
    return _entity(ctx, rec.entity_id)


# -- notes and tasks ------------------------------------------------------------------------
class NoteIn(ActionInput):
    text: str = Field(min_length=1)
    title: str | None = None
    tags: list[str] = []


@DEVICE_ACTIONS.action("notes.create", version="1.0.0", risk=Risk.WRITE, input=NoteIn, output=Written)
def notes_create(ctx: Ctx, params: NoteIn) -> Written:
    """Add a note."""
    payload = params.model_dump(exclude_none=True, exclude_defaults=True)
    return _write(ctx, ctx.store.put("note", payload, source=ctx.actor.source))


class TaskIn(ActionInput):
    title: str = Field(min_length=1)
    due: str | None = None


@DEVICE_ACTIONS.action("tasks.create", version="1.0.0", risk=Risk.WRITE, input=TaskIn, output=Written)
def tasks_create(ctx: Ctx, params: TaskIn) -> Written:
    """Add a task."""
    payload: dict[str, Any] = {"title": params.title, "done": False}
    if params.due:
        payload["due"] = params.due
    return _write(ctx, ctx.store.put("task", payload, source=ctx.actor.source))


class IdIn(ActionInput):
    id: str = Field(min_length=1)


@DEVICE_ACTIONS.action(
    "tasks.complete", version="1.0.0", risk=Risk.WRITE, input=IdIn, output=Written,
    targets=lambda ctx, p: _entity(ctx, p.id),
)  # fmt: skip
def tasks_complete(ctx: Ctx, params: IdIn) -> Written:
    """Mark a task done."""
    return _write(ctx, ctx.store.edit(params.id, {"done": True}, source=ctx.actor.source))


# -- any entity -------------------------------------------------------------------------------
class PutIn(ActionInput):
    type: str = Field(min_length=1)
    data: dict[str, Any]
    id: str | None = None


@DEVICE_ACTIONS.action(
    "entity.put", version="1.0.0", risk=Risk.WRITE, input=PutIn, output=Written,
    targets=lambda ctx, p: _entity(ctx, p.id) if p.id else [],
)  # fmt: skip
def entity_put(ctx: Ctx, params: PutIn) -> Written:
    """Write an entity of any type (new, or a new version of an id)."""
    result = ctx.store.put(params.type, params.data, entity_id=params.id, source=ctx.actor.source)
    return _write(ctx, result)


class EditIn(ActionInput):
    id: str = Field(min_length=1)
    changes: dict[str, Any]
    replace: bool = False


@DEVICE_ACTIONS.action(
    "entity.edit", version="1.0.0", risk=Risk.WRITE, input=EditIn, output=Written,
    targets=lambda ctx, p: _entity(ctx, p.id),
)  # fmt: skip
def entity_edit(ctx: Ctx, params: EditIn) -> Written:
    """Change an entity's fields (or replace them all)."""
    result = ctx.store.edit(params.id, params.changes, source=ctx.actor.source, replace=params.replace)
    return _write(ctx, result)


@DEVICE_ACTIONS.action(
    "entity.delete", version="1.0.0", risk=Risk.DESTRUCTIVE, input=IdIn, output=Written,
    targets=lambda ctx, p: _entity(ctx, p.id),
)  # fmt: skip
def entity_delete(ctx: Ctx, params: IdIn) -> Written:
    """Delete an entity (a tombstone; below its level only a suggestion)."""
    return _write(ctx, ctx.store.delete(params.id, source=ctx.actor.source))


@DEVICE_ACTIONS.action(
    "entity.upgrade_truth", version="1.0.0", risk=Risk.WRITE, input=IdIn, output=EntityResult,
    targets=lambda ctx, p: _entity(ctx, p.id),
)  # fmt: skip
def entity_upgrade_truth(ctx: Ctx, params: IdIn) -> EntityResult:
    """Confirm lower-level content as the user's own (level 1)."""
    item = ctx.store.upgrade_truth(params.id, source=ctx.actor.source)
    _touched(ctx, item)
    return EntityResult(item=item)


# -- a bulk import ------------------------------------------------------------------------------
#: targets one audit entry names at most (as many as an approval request carries): a larger
#: import names its first ones and a digest of them all (see :class:`_Noted`)
MAX_AUDIT_TARGETS = 1000


class ImportIn(ActionInput):
    """JSON Lines to import, one SyncItem a line: a file on this device (``path``) or the lines
    themselves (``lines``); from Python, :meth:`Vault.import_jsonl` passes a stream."""

    path: str | None = Field(default=None, min_length=1, max_length=4096)
    lines: list[str] | None = Field(default=None, validate_default=True)
    queue_for_push: bool = True
    #: with ``path``: the file's SHA-256 (hex); a file of other content is refused, so that the
    #: input (what an approval is of) names the content, not only where it lies
    sha256: str | None = Field(default=None, pattern="^[0-9a-f]{64}$")
    _stream: Iterable[bytes | str] | None = PrivateAttr(default=None)
    _progress: Callable[[int], None] | None = PrivateAttr(default=None)

    @field_validator("lines")
    @classmethod
    def _one_source(cls, lines: list[str] | None, info: ValidationInfo) -> list[str] | None:
        path = info.data.get("path")
        if lines is None and path is None and "path" in info.data:
            raise ValueError("give the lines to import, or the path of a file of them")
        if lines is not None and path is not None:
            raise ValueError("give the lines or a path, not both")
        return lines

    @field_validator("sha256")
    @classmethod
    def _of_a_file(cls, sha256: str | None, info: ValidationInfo) -> str | None:
        if sha256 is not None and info.data.get("path") is None:
            raise ValueError("names the content of a file: give it with path")
        return sha256

    @classmethod
    def of_stream(
        cls,
        fp: Iterable[bytes | str],
        *,
        queue_for_push: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> ImportIn:
        """The input of an import from a stream (a file object, or any iterable of lines). Its
        content is hashed first, into ``sha256`` (a seekable file is read twice, anything else
        is spooled to a temporary file), so that the input, and an approval of it, names the
        lines: the import refuses a stream that reads otherwise the second time."""
        stream, digest = stream_digest(fp)
        params = cls.model_construct(queue_for_push=queue_for_push, sha256=digest)
        params._stream, params._progress = stream, progress
        return params


class Imported(ActionOutput):
    """How many lines an import took in."""

    imported: int


class _Noted:
    """The targets of an import as its audit entry names them: each imported version's id and
    version while there are at most :data:`MAX_AUDIT_TARGETS`; past that the first ones and,
    last, ``("sha256:<hex>", n)``: the SHA-256 of every version's ``"<id> <version>\\n"`` in
    the order of the lines, and how many (the entry stays bounded, and still commits to them
    all). Costs under a microsecond a line: no object a line is kept."""

    def __init__(self) -> None:
        self.first: list[Target] = []
        self.count = 0
        self._digest = hashlib.sha256()

    def __call__(self, items: list[Any]) -> None:
        room = MAX_AUDIT_TARGETS - len(self.first)
        if room > 0:
            self.first += [Target(i.entity_id, i.entity_type, i.version, i.truth_level) for i in items[:room]]
        self._digest.update("".join([f"{i.entity_id} {i.version}\n" for i in items]).encode())
        self.count += len(items)

    def targets(self) -> list[Target]:
        if self.count <= MAX_AUDIT_TARGETS:
            return self.first
        return [
            *self.first[: MAX_AUDIT_TARGETS - 1],
            Target(f"sha256:{self._digest.hexdigest()}", "", self.count),
        ]


@DEVICE_ACTIONS.action(
    "entity.import", version="1.0.0", risk=Risk.DESTRUCTIVE, input=ImportIn, output=Imported
)
def entity_import(ctx: Ctx, params: ImportIn) -> Imported:
    """Import entities from JSON Lines (a bulk restore: every line keeps its truth fields)."""
    noted = _Noted()
    where = "path" if params.path is not None else "lines"
    try:
        if params.path is not None:
            try:
                fp = open(params.path, "rb")  # noqa: SIM115 (closed below, the import may be long)
            except OSError as exc:
                raise ValidationFailed(
                    f"path: cannot read {params.path}: {exc.strerror}", field="path"
                ) from None
            digest = hashlib.sha256() if params.sha256 else None
            with fp:
                count = ctx.store._transfer.load(
                    fp if digest is None else hashed(fp, digest),
                    queue_for_push=params.queue_for_push, by=ctx.actor.source, noted=noted,
                )  # fmt: skip
            if digest is not None and digest.hexdigest() != params.sha256:
                raise ValidationFailed(
                    f"sha256: {params.path} has SHA-256 {digest.hexdigest()}, not the one given",
                    field="sha256",
                )
        else:
            stream = params._stream if params._stream is not None else params.lines or []
            digest = hashlib.sha256() if params.sha256 else None
            count = ctx.store._transfer.load(
                stream if digest is None else hashed(stream, digest, whole_lines=True),
                queue_for_push=params.queue_for_push, progress=params._progress,
                by=ctx.actor.source, noted=noted,
            )  # fmt: skip
            if digest is not None and digest.hexdigest() != params.sha256:
                raise ValidationFailed(
                    "sha256: the stream read otherwise than when it was hashed", field="sha256"
                )
    except InvalidInput as exc:
        if isinstance(exc, ValidationFailed) or params._stream is not None:
            raise
        # a bad line is a bad value of the input's field: named, with the vault's own code kept
        cause = exc.code if exc.code != InvalidInput.code else None
        raise ValidationFailed(exc.message, hint=exc.hint, field=where, cause=cause) from exc
    for target in noted.targets():
        ctx.touched(target)
    return Imported(imported=count)


# -- the user's decisions on kept records --------------------------------------------------------
class AcceptIn(ActionInput):
    id: str = Field(min_length=1)
    force: bool = False


@DEVICE_ACTIONS.action(
    "suggestion.accept", version="1.0.0", risk=Risk.WRITE, input=AcceptIn, output=EntityResult,
    targets=lambda ctx, p: _record_target(ctx, p.id),
)  # fmt: skip
def suggestion_accept(ctx: Ctx, params: AcceptIn) -> EntityResult:
    """Accept a suggestion: it is merged in and becomes user truth."""
    item = ctx.store.accept(params.id, source=ctx.actor.source, force=params.force)
    _touched(ctx, item)
    return EntityResult(item=item)


@DEVICE_ACTIONS.action(
    "suggestion.reject", version="1.0.0", risk=Risk.WRITE, input=IdIn, output=RecordResult,
    targets=lambda ctx, p: _record_target(ctx, p.id),
)  # fmt: skip
def suggestion_reject(ctx: Ctx, params: IdIn) -> RecordResult:
    """Reject a suggestion; it stays retrievable as rejected."""
    return RecordResult(record=ctx.store.reject(params.id, source=ctx.actor.source))


class ResolveIn(ActionInput):
    id: str = Field(min_length=1)
    resolution: Literal["keep", "restore"]


@DEVICE_ACTIONS.action(
    "conflict.resolve", version="1.0.0", risk=Risk.WRITE, input=ResolveIn, output=RecordResult,
    targets=lambda ctx, p: _record_target(ctx, p.id),
)  # fmt: skip
def conflict_resolve(ctx: Ctx, params: ResolveIn) -> RecordResult:
    """Close a conflict: keep the current version or restore the kept one."""
    record = ctx.store.resolve_conflict(params.id, params.resolution, source=ctx.actor.source)
    return RecordResult(record=record)


# -- reads --------------------------------------------------------------------------------------
class GetIn(ActionInput):
    id: str = Field(min_length=1)
    include_deleted: bool = False


@DEVICE_ACTIONS.action("entity.get", version="1.0.0", risk=Risk.READ, input=GetIn, output=EntityResult)
def entity_get(ctx: Ctx, params: GetIn) -> EntityResult:
    """One entity's current version with its truth fields."""
    return EntityResult(item=ctx.store.get(params.id, include_deleted=params.include_deleted))


class SearchIn(ActionInput):
    query: str = Field(min_length=1)
    limit: int = Field(default=50, ge=1, le=1000)


@DEVICE_ACTIONS.action(
    "entity.search", version="1.0.0", risk=Risk.READ, input=SearchIn, output=EntitiesResult
)
def entity_search(ctx: Ctx, params: SearchIn) -> EntitiesResult:
    """EntitiesResult whose text holds every word of the query, best first."""
    return EntitiesResult(items=ctx.store.search(params.query, params.limit))


class ListIn(ActionInput):
    type: str | None = None
    level: int | None = Field(default=None, ge=1, le=5)
    limit: int = Field(default=100, ge=1, le=10_000)
    offset: int = Field(default=0, ge=0)


@DEVICE_ACTIONS.action("entity.list", version="1.0.0", risk=Risk.READ, input=ListIn, output=EntitiesResult)
def entity_list(ctx: Ctx, params: ListIn) -> EntitiesResult:
    """Current versions, newest first, by type and level."""
    items = ctx.store.list(params.type, params.level, limit=params.limit, offset=params.offset)
    return EntitiesResult(items=items)


# -- the user's decisions on requests of the input broker ---------------------------------------
class DecideIn(ActionInput):
    id: str = Field(min_length=1, max_length=200)
    decision: Literal["approve", "deny"]
    reason: str | None = None
    #: a PIN request's PIN (masked in the audit log's input hash, never stored in the clear)
    pin: SecretStr | None = None


class Decided(ActionOutput):
    """A request after the user's decision."""

    id: str
    status: str
    action: str | None = None
    kind: str
    decided_by: str | None = None


@DEVICE_ACTIONS.action("approval.decide", version="1.0.0", risk=Risk.SECURITY, input=DecideIn, output=Decided)
def approval_decide(ctx: Ctx, params: DecideIn) -> Decided:
    """Approve or deny a pending request of the input broker (the user's decision)."""
    broker = ctx.store.broker
    if params.decision == "approve":
        pin = params.pin.get_secret_value() if params.pin else None
        request = broker.approve(params.id, actor=ctx.actor, pin=pin)
    else:
        request = broker.deny(params.id, actor=ctx.actor, reason=params.reason or "")
    ctx.touched(Target(request.id, "approval"))
    return Decided(
        id=request.id,
        status=request.status,
        action=request.action,
        kind=request.kind,
        decided_by=request.decided_by,
    )


class PinIn(ActionInput):
    pin: SecretStr
    current: SecretStr | None = None


class PinOut(ActionOutput):
    set: bool


@DEVICE_ACTIONS.action("pin.set", version="1.0.0", risk=Risk.SECURITY, input=PinIn, output=PinOut)
def pin_set(ctx: Ctx, params: PinIn) -> PinOut:
    """Set (or change) the user's PIN, which voice-asked destructive actions need."""
    current = params.current.get_secret_value() if params.current else None
    ctx.store.broker.set_pin(params.pin.get_secret_value(), actor=ctx.actor, current=current)
    return PinOut(set=True)


# registered here, so that every kernel over DEVICE_ACTIONS has them (their modules import this
# one): offline governance's and the dead-letter queue's actions
from . import _dlq_actions, _offline_actions  # noqa: E402, F401
