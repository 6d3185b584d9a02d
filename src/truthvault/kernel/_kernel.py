"""The dispatcher: the one governed path an action takes.

validate the input -> find its targets -> ask policy -> (ask for, or redeem, an approval) ->
run the handler in one transaction with its audit entry and its events -> a typed result, or a
structured error (:class:`~._types.ActionError`). A refusal is audited too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from hashlib import sha256 as _sha256
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError

from ..errors import ConflictState, Forbidden, InvalidInput, NotFound, TruthvaultError
from ._ports import (
    AuditRecord,
    AuditSink,
    Broker,
    Decision,
    InputHasher,
    PolicyDecision,
    PolicyEngine,
    PolicyRequest,
)
from ._registry import ActionSpec, Context, Registry
from ._types import (
    ActionConflict,
    ActionError,
    ActionForbidden,
    ActionNotFound,
    Actor,
    ApprovalRequired,
    Risk,
    Target,
    ValidationFailed,
)

__all__ = ["Kernel", "input_hash", "input_json"]

S = TypeVar("S")

EventSink = Callable[[str, str | None, dict[str, Any]], None]


def input_hash(params: BaseModel) -> str:
    """SHA-256 of the input's JSON (see :func:`input_json`): the plain input hash, which the
    audit log and approvals keep of an input where the hub reads the payloads anyway (a
    cloud-first tenant's devices, the hub's own actions). A keyed one is
    :class:`~._input_hash.KeyedInputHash`."""
    return _sha256(input_json(params)).hexdigest()


def input_json(params: BaseModel) -> bytes:
    """The input's JSON, fields in the contract's order (so the same input of the same contract
    always hashes alike): what an input hash is taken of. A secret field (``SecretStr``) enters
    it masked, never its value."""
    try:
        data = params.__pydantic_serializer__.to_json(params)  # model_dump_json's bytes
    except PydanticSerializationError:  # half a surrogate pair, or nested too deep: named as such
        _check_text(params.model_dump(by_alias=True), "")
        raise
    if b"\\u0000" in data:  # JSON's escape of NUL (or of a backslash before 'u0000': looked at)
        _check_text(params.model_dump(by_alias=True), "")
    return data


class _PlainHash:
    """The plain input hash as an :class:`~._ports.InputHasher` (the kernel's default)."""

    __slots__ = ()

    __call__ = staticmethod(input_hash)

    def under(self, stored: str, params: BaseModel) -> str | None:
        return input_hash(params)


class Kernel(Generic[S]):
    """Runs the actions of ``registry`` against ``store`` under ``policy``, ``broker`` and
    ``audit``; ``transaction`` opens one (nestable) transaction of the store; ``hasher`` takes
    the input hash the audit log and approvals keep (by default the plain SHA-256)."""

    def __init__(
        self,
        registry: Registry[S],
        store: S,
        *,
        policy: PolicyEngine,
        broker: Broker,
        audit: AuditSink,
        transaction: Callable[[], AbstractContextManager[object]],
        clock: Callable[[], str],
        on_event: EventSink | None = None,
        tenant_id: Callable[[], str] = lambda: "",
        hasher: InputHasher | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.policy = policy
        self.broker = broker
        self.audit = audit
        self._transaction = transaction
        self._clock = clock
        self._on_event = on_event
        self._tenant_id = tenant_id
        self.hasher: InputHasher = hasher or _PlainHash()

    def derive(self, registry: Registry[S]) -> Kernel[S]:
        """This kernel with another set of actions (over the same store, policy, broker, audit
        log and transaction): how a layer above adds actions of its own."""
        return Kernel(
            registry,
            self.store,
            policy=self.policy,
            broker=self.broker,
            audit=self.audit,
            transaction=self._transaction,
            clock=self._clock,
            on_event=self._on_event,
            tenant_id=self._tenant_id,
            hasher=self.hasher,
        )

    def spec(self, name: str) -> ActionSpec[S, Any, Any]:
        """The action called ``name``; ActionNotFound if there is none."""
        spec = self.registry.get(name)
        if spec is None:
            raise ActionNotFound(f"no action {name!r}", hint="'truthvault action list' lists them")
        return spec

    def run(
        self, name: str, input: Mapping[str, Any] | BaseModel, *, actor: Actor, approval: str | None = None
    ) -> BaseModel:
        """Run action ``name`` as ``actor``; ``approval`` redeems an approved request.

        A write is decided inside its own transaction: the targets policy sees are the ones
        the handler changes (nothing else can write in between), and a refusal's audit entry
        or an approval request commits before its error is raised."""
        spec = self.registry.get(name) or self.spec(name)
        params = _validated(spec, input)
        digest = self.hasher(params)
        ctx = Context(actor, self.store, name, self._clock)
        if spec.risk is Risk.READ:
            read = self._read(spec, ctx, params, digest)
            if read is not None:
                return read
        targets: tuple[Target, ...] = ()
        refusal: ActionError | None = None
        try:
            with self._transaction():
                if spec.targets:
                    targets = tuple(spec.targets(ctx, params))
                decision = self.policy.decide(PolicyRequest(actor, name, spec.risk, targets))
                if not decision.allowed:
                    self._append(spec, actor, digest, targets, "denied", reason=decision.reason)
                    refusal = _forbidden(spec, actor, decision)
                elif decision.approval and approval is None:
                    refusal = self._ask(spec, actor, digest, targets, decision)
                else:
                    approved_by = None
                    if decision.approval and approval is not None:
                        approved_by = self.broker.redeem(
                            approval, actor=actor, action=name, input_hash=digest, kind=decision.approval,
                            rehash=lambda stored: self.hasher.under(stored, params),
                        )  # fmt: skip
                    out = _output(spec, spec.handler(ctx, params))
                    verdict: Decision = "approved" if approved_by else "allowed"
                    self._append(spec, actor, digest, tuple(ctx.targets) or targets, verdict, approved_by)
                    if self._on_event is not None:
                        for type_, entity_id, detail in ctx.events:
                            self._on_event(type_, entity_id, detail)
        except TruthvaultError as exc:
            error = self._failure(spec, actor, digest, targets, exc)
            if error is exc:
                raise
            raise error from exc
        if refusal is not None:
            raise refusal
        return out

    def _read(
        self, spec: ActionSpec[S, Any, Any], ctx: Context[S], params: BaseModel, digest: str
    ) -> BaseModel | None:
        """A read: decided by policy (a refusal is audited), run with no write transaction;
        None when policy asks for an approval (the read then takes a write's path)."""
        targets = tuple(spec.targets(ctx, params)) if spec.targets else ()
        decision = self.policy.decide(PolicyRequest(ctx.actor, spec.name, spec.risk, targets))
        if not decision.allowed:
            with self._transaction():
                self._append(spec, ctx.actor, digest, targets, "denied", reason=decision.reason)
            raise _forbidden(spec, ctx.actor, decision)
        if decision.approval:
            return None
        try:
            return _output(spec, spec.handler(ctx, params))
        except TruthvaultError as exc:
            error = _as_action_error(exc)
            if error is exc:
                raise
            raise error from exc

    def _ask(
        self,
        spec: ActionSpec[S, Any, Any],
        actor: Actor,
        digest: str,
        targets: tuple[Target, ...],
        decision: PolicyDecision,
    ) -> ApprovalRequired:
        """Persist an approval request (in the current transaction); the error that names it."""
        assert decision.approval is not None
        request_id = self.broker.ask_approval(
            actor=actor, action=spec.name, risk=spec.risk, kind=decision.approval,
            input_hash=digest, targets=targets, reason=decision.reason,
        )  # fmt: skip
        return ApprovalRequired(
            f"{spec.name} needs your approval ({decision.approval})",
            hint=f"approve it with 'truthvault approve {request_id}'"
            + (" on two of your devices" if decision.approval == "two-devices" else "")
            + ", then run it again",
            request_id=request_id,
            policies=decision.policies,
        )

    # -- audit -------------------------------------------------------------------------
    def _append(
        self,
        spec: ActionSpec[S, Any, Any],
        actor: Actor,
        digest: str,
        targets: tuple[Target, ...],
        decision: Decision,
        approved_by: str | None = None,
        reason: str | None = None,
    ) -> None:
        if spec.risk is Risk.READ and decision in ("allowed", "approved"):
            return  # reads are checked by policy, but not written to the log
        self.audit.append(
            AuditRecord(
                tenant_id=actor.tenant_id or self._tenant_id(),
                action=spec.name,
                action_version=spec.version,
                actor=actor,
                decision=decision,
                at=self._clock(),
                input_hash=digest,
                targets=targets,
                approved_by=approved_by,
                reason=reason,
            )
        )

    def _failure(
        self,
        spec: ActionSpec[S, Any, Any],
        actor: Actor,
        digest: str,
        targets: tuple[Target, ...],
        exc: TruthvaultError,
    ) -> TruthvaultError:
        """The error to raise for what a write's transaction raised (rolled back), after its
        failure is audited."""
        error = _as_action_error(exc)
        if not isinstance(error, ApprovalRequired):
            # the code (and its cause), never the message or field: a message may quote the
            # input (a contract's refusal quotes the payload), a field path a payload's keys,
            # and the audit log holds no payload content
            cause = getattr(error, "cause", None)
            reason = error.code + (f" ({cause})" if cause else "")
            with self._transaction():
                self._append(spec, actor, digest, targets, "failed", reason=reason)
        return error


def _forbidden(spec: ActionSpec[Any, Any, Any], actor: Actor, decision: PolicyDecision) -> ActionForbidden:
    return ActionForbidden(
        f"{actor.source} may not run {spec.name}: {decision.reason or 'no policy allows it'}",
        policies=decision.policies,
    )


def _validated(spec: ActionSpec[Any, Any, Any], input: Mapping[str, Any] | BaseModel) -> BaseModel:
    model: type[BaseModel] = spec.input
    if isinstance(input, model):
        return input
    data = input.model_dump() if isinstance(input, BaseModel) else input
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        _check_text(data, "")  # a NUL or half a surrogate pair, named as such
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "input"
        raise ValidationFailed(f"{spec.name}: {where}: {first['msg']}", field=where) from None


#: how deep an input may nest (objects and arrays): deeper, its JSON cannot be hashed for the
#: audit log (pydantic stops at a few hundred levels) and walking it would exhaust the stack
MAX_INPUT_DEPTH = 100


def _check_text(value: object, path: str, depth: int = 0) -> None:
    """No text of an input holds NUL (no store keeps it alike: PostgreSQL refuses it) or half a
    UTF-16 surrogate pair (no UTF-8 text can hold it), and no input nests deeper than
    :data:`MAX_INPUT_DEPTH`: VALIDATION_ERROR naming where."""
    if depth > MAX_INPUT_DEPTH:
        where = path.split(".", 1)[0].split("[", 1)[0] or "input"
        raise ValidationFailed(f"{where}: nested deeper than {MAX_INPUT_DEPTH} levels", field=where)
    if isinstance(value, str):
        if "\x00" in value:
            raise ValidationFailed(f"{path or 'input'}: text must not contain NUL", field=path or "input")
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValidationFailed(
                f"{path or 'input'}: not valid Unicode text", field=path or "input"
            ) from None
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_text(key, path, depth + 1)
            _check_text(item, f"{path}.{key}" if path else str(key), depth + 1)
    elif isinstance(value, list | tuple):
        for n, item in enumerate(value):
            _check_text(item, f"{path}[{n}]", depth + 1)


def _output(spec: ActionSpec[Any, Any, Any], out: Any) -> BaseModel:
    model: type[BaseModel] = spec.output
    return out if isinstance(out, model) else model.model_validate(out)


def _as_action_error(exc: TruthvaultError) -> TruthvaultError:
    """The kernel's structured error for what a handler raised (others pass through); a more
    specific code than the kernel's is kept as ``cause``."""
    if isinstance(exc, ActionError):
        return exc
    for base, kind in _KINDS:
        if isinstance(exc, base):
            cause = exc.code if exc.code != base.code else None
            named = _FIELD.match(exc.message) if kind is ValidationFailed else None
            field = getattr(exc, "field", None) or (named.group(1) if named else None)
            error = kind(exc.message, hint=exc.hint, cause=cause, field=field)
            error.item = exc.item
            return error
    return exc


#: a store's "field.path: what is wrong" message names the field
_FIELD = re.compile(r"([A-Za-z_][\w-]*(?:\.[\w-]+|\[\d+\])*): ")

_KINDS: tuple[tuple[type[TruthvaultError], type[ActionError]], ...] = (
    (Forbidden, ActionForbidden),
    (InvalidInput, ValidationFailed),
    (NotFound, ActionNotFound),
    (ConflictState, ActionConflict),
)
