"""The input broker: one place for every input only a person can give.

Approvals, confirmations and PIN approvals (what the dispatcher asks for a risky action) and
form and secret input (what an automation or an agent waits for) are one kind of thing: a
request that persists, expires, syncs to the user's other devices and is answered by a
level-1 actor. :class:`InputBroker` implements the kernel's :class:`~._ports.Broker` port over
a :class:`~._broker_store.BrokerStore` (the vault's or the hub's).

With an :class:`~._approval_seal.ApprovalSealer` (a device's broker) every decision on an
approval is sealed where it is taken, and a decision whose seal does not check here (one the
hub made up, or changed) is no decision: the broker shows it refused and never redeems it. The
hub's own broker has no sealer (it holds no tenant key).

A request may need approvals from several devices (policy's ``@approval("two-devices")``, see
:mod:`._approvals`).

A secret's value is handed to the asker in memory, once, and is never stored: the store
keeps only that it was provided.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import ConflictState, InvalidInput, NotFound
from ..truth import TruthLevel
from ._approval_seal import ApprovalSealer
from ._approvals import (
    KIND_ALIASES,
    NEEDED,
    add_approval,
    check_kind,
    counted_approvals,
    decision_checks,
    same_input,
    still_waiting,
)
from ._broker_store import (
    DECIDED,
    INPUT_KINDS,
    KINDS,
    Approval,
    BrokerRequest,
    BrokerSettings,
    BrokerStore,
    PinRecord,
)
from ._types import ActionForbidden, Actor, ApprovalRequired, Risk, Target

__all__ = ["BrokerEvent", "InputBroker", "event_detail", "hash_pin"]

#: called with (event type, request): what happened to a request, never a value
BrokerEvent = Callable[[str, BrokerRequest], None]

_MIN_PIN, _MAX_PIN = 4, 64
#: why a decision whose seal does not check is shown refused
UNSEALED = "refused here: no device of yours sealed this decision (the hub's word alone is not one)"


def hash_pin(pin: str, salt: bytes, n: int, r: int = 8, p: int = 1) -> str:
    """scrypt of ``pin`` (hex): slow on purpose, as a PIN has few possible values."""
    return hashlib.scrypt(
        pin.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + (1 << 20), dklen=32
    ).hex()


def _check_decider(actor: Actor, what: str) -> None:
    if actor.level is not TruthLevel.USER:
        raise ActionForbidden(
            f"{actor.source} may not {what}: only the user (level 1) decides",
            hint="decide it yourself, e.g. with 'truthvault approve ID'",
        )


class InputBroker:
    """Requests for a person's input over ``store``; ``now`` gives seconds since the epoch."""

    def __init__(
        self,
        store: BrokerStore,
        *,
        settings: BrokerSettings | None = None,
        now: Callable[[], float] = time.time,
        on_event: BrokerEvent | None = None,
        tenant_id: str | Callable[[], str] = "",
        sealer: ApprovalSealer | None = None,
    ) -> None:
        self.store = store
        self.sealer = sealer
        self.settings = settings or BrokerSettings()
        self._now = now
        self._on_event = on_event
        self._tenant = tenant_id
        # secrets given in this process, waiting for their asker (never stored anywhere)
        self._inbox: dict[str, dict[str, str]] = {}
        self._given = threading.Condition()

    def _tenant_id(self) -> str:
        return self._tenant if isinstance(self._tenant, str) else self._tenant()

    # -- asking ----------------------------------------------------------------------
    def ask_approval(
        self,
        *,
        actor: Actor,
        action: str,
        risk: Risk,
        kind: str,
        input_hash: str,
        targets: tuple[Target, ...],
        reason: str,
    ) -> str:
        """Persist a pending approval (``kind``: approval, confirm, pin, or two-devices: an
        approval from two distinct devices); return its id."""
        needed = NEEDED.get(kind, 1)
        kind = KIND_ALIASES.get(kind, kind)
        if kind not in KINDS or kind in INPUT_KINDS:
            raise InvalidInput(
                f"kind: {kind!r} is not an approval kind (approval, confirm, pin, two-devices)"
            )
        ttl = self.settings.confirm_ttl_s if kind == "confirm" else self.settings.ttl_s
        return self._ask(actor, kind, action, Risk(risk), input_hash, targets, reason, (), ttl, needed)

    def ask_input(
        self,
        *,
        actor: Actor,
        kind: str,
        fields: Sequence[str],
        reason: str,
        action: str = "",
        ttl_s: float | None = None,
    ) -> str:
        """Persist a pending request for values (``kind``: form or secret); return its id."""
        if kind not in INPUT_KINDS:
            raise InvalidInput(f"kind: {kind!r} is not an input kind (form, secret)")
        names = tuple(fields)
        if not names or any(not f or len(f) > 100 for f in names):
            raise InvalidInput("fields: name one to a hundred characters long value at least")
        ttl = self.settings.ttl_s if ttl_s is None else ttl_s
        return self._ask(actor, kind, action, Risk.READ, "", (), reason, names, ttl)

    def _ask(
        self,
        actor: Actor,
        kind: str,
        action: str,
        risk: Risk,
        input_hash: str,
        targets: tuple[Target, ...],
        reason: str,
        fields: tuple[str, ...],
        ttl: float,
        needed: int = 1,
    ) -> str:
        now = self._now()
        request = BrokerRequest(
            id=str(uuid.uuid4()),
            kind=kind,
            action=action,
            risk=risk.value,
            source=actor.source,
            device_id=actor.device_id,
            tenant_id=actor.tenant_id or self._tenant_id(),
            reason=reason[:500],
            input_hash=input_hash,
            created_at=now,
            expires_at=now + ttl,
            targets=targets,
            fields=fields,
            needed=needed,
        )
        self.store.insert(request)
        self._event("APPROVAL_REQUESTED" if kind not in INPUT_KINDS else "INPUT_REQUESTED", request)
        return request.id

    # -- reading ---------------------------------------------------------------------
    def get(self, request_id: str) -> BrokerRequest:
        """A request as of now (expired when past its expiry); NotFound if there is none."""
        request = self.store.get(request_id)
        if request is None:
            raise NotFound(f"no request {request_id!r}", hint="'truthvault approvals --all' lists them")
        return self._as_of(request, self._now())

    def pending(self, limit: int = 1000) -> list[BrokerRequest]:
        """The requests still waiting for a decision, newest first."""
        return [r for r in self.requests(limit=limit) if r.status == "pending"]

    def requests(self, *, limit: int = 1000) -> list[BrokerRequest]:
        """Every request, newest first, each with its status as of now."""
        now = self._now()
        return [self._as_of(r, now) for r in self.store.requests(limit=limit)]

    def _as_of(self, request: BrokerRequest, now: float, unsealed: bool | None = None) -> BrokerRequest:
        """``request`` as of ``now``: expired past its expiry or its window from the decision;
        refused (denied) when it carries a decision whose seal does not check here (``unsealed``
        when that was looked at already)."""
        if self._unsealed(request) if unsealed is None else unsealed:
            return request.with_(status="denied", deny_reason=UNSEALED)
        status = request.status_at(now)
        given = request.decided_at
        if request.is_multi and status == "approved":
            # the window runs from the last counted approval: those are what is sealed
            given = max((a.at for a in self.counted(request)), default=given)
        if status == "approved" and given is not None and now >= given + self._window(request):
            status = "expired"  # the window runs from the (sealed) decision, whatever the expiry says
        return request if status == request.status else request.with_(status=status)

    def _unsealed(self, request: BrokerRequest) -> bool:
        """Does ``request`` carry an approval's decision whose seal does not check here? (Only
        an approved or denied one is looked at: a used or expired one redeems nothing.)"""
        return request.status in DECIDED and not decision_checks(request, self.sealer)

    def counted(self, request: BrokerRequest) -> tuple[Approval, ...]:
        """The approvals of ``request`` that count here (see :func:`counted_approvals`)."""
        return counted_approvals(request, self.sealer)

    def _window(self, request: BrokerRequest) -> float:
        """How long an approval may be used after it was given."""
        return self.settings.confirm_window_s if request.kind == "confirm" else self.settings.approved_ttl_s

    # -- deciding --------------------------------------------------------------------
    def approve(self, request_id: str, *, actor: Actor, pin: str | None = None) -> BrokerRequest:
        """Approve a pending request as ``actor`` (level 1; a ``pin`` request needs the PIN)."""
        _check_decider(actor, "approve a request")
        request = self._pending(request_id)
        if request.is_input:
            raise InvalidInput(f"request {request_id} asks for values: give them with provide()")
        if request.kind == "pin":
            if pin is None:
                raise ActionForbidden(f"request {request_id} needs your PIN", hint="approve it with --pin")
            self.check_pin(pin)
        return self.record_decision(request_id, actor=actor, approved=True)

    def deny(self, request_id: str, *, actor: Actor, reason: str) -> BrokerRequest:
        """Deny a pending request as ``actor`` (level 1), saying why."""
        _check_decider(actor, "deny a request")
        if not reason.strip():
            raise InvalidInput("reason: say why it is denied")
        self._pending(request_id)
        return self.record_decision(request_id, actor=actor, approved=False, reason=reason)

    def record_decision(
        self,
        request_id: str,
        *,
        actor: Actor,
        approved: bool,
        reason: str | None = None,
        decided_at: float | None = None,
        seal: str | None = None,
        device_name: str | None = None,
    ) -> BrokerRequest:
        """Record a level-1 decision on a pending request whose checks (a PIN) were made where
        it was taken (this device, or the deciding device for the hub). With a sealer the
        decision is sealed here; without one (the hub) ``seal`` and ``decided_at`` are the
        deciding device's, kept as they are. ConflictState if it is no longer pending."""
        _check_decider(actor, "decide a request")
        request = self._pending(request_id)
        if approved and request.is_multi:
            return self._approve_one(request, actor, decided_at, seal, device_name)
        now = self._now()
        at = now if decided_at is None or self.sealer is not None else decided_at
        decided = request.with_(
            status="approved" if approved else "denied",
            decided_by=actor.source,
            decided_device=actor.device_id or None,
            decided_at=at,
            deny_reason=None if approved else (reason or "denied")[:500],
            expires_at=now + self._window(request) if approved else request.expires_at,
        )
        if self.sealer is not None and not request.is_input:
            decided = decided.with_(seal=self.sealer.seal(decided))
        elif seal is not None:
            decided = decided.with_(seal=seal)
        if not self.store.update(decided, expect="pending"):
            raise ConflictState(f"request {request_id} was decided meanwhile")
        self._event("APPROVAL_DECIDED", decided)
        return decided

    def _approve_one(
        self, request: BrokerRequest, actor: Actor, at: float | None, seal: str | None, name: str | None
    ) -> BrokerRequest:
        now = self._now()
        after = add_approval(request, actor, now, self._window(request), self.sealer, at, seal, name)
        if not self.store.update(after, expect="pending", approvals=request.approvals):
            raise ConflictState(
                f"request {request.id} changed meanwhile (another approval or a decision came in)",
                hint="look at it again with 'truthvault approvals', then approve it again",
            )
        self._event("APPROVAL_DECIDED" if after.status == "approved" else "APPROVAL_GIVEN", after)
        return after

    def _pending(self, request_id: str) -> BrokerRequest:
        request = self.get(request_id)
        if request.status != "pending":
            raise ConflictState(
                f"request {request_id} is {request.status}, not pending",
                hint="'truthvault approvals' lists the pending ones",
            )
        return request

    # -- redeeming (the Broker port) -------------------------------------------------
    def redeem(
        self,
        request_id: str,
        *,
        actor: Actor,
        action: str,
        input_hash: str,
        kind: str | None = None,
        rehash: Callable[[str], str | None] | None = None,
    ) -> str:
        """Use an approved request once, for the action, input and actor it was asked for;
        return who approved it. Run it inside the action's transaction, so that an action
        that fails gives the approval back. ``rehash`` takes the input's hash under the key
        the request's names (see :meth:`~._ports.Broker.redeem`)."""
        stored = self.store.get(request_id)
        if stored is None:
            raise ActionForbidden(f"no approval request {request_id!r}")
        unsealed = self._unsealed(stored)
        if unsealed:
            request = stored.with_(status=stored.status_at(self._now()))
        else:
            request = self._as_of(stored, self._now(), unsealed=False)
        asker = (request.source, request.device_id, request.tenant_id)
        mine = (actor.source, actor.device_id, actor.tenant_id or self._tenant_id())
        if (
            request.is_input
            or request.action != action
            or asker != mine
            or not same_input(request, input_hash, rehash)
        ):
            raise ActionForbidden(
                f"request {request_id} was asked for another action, input or actor",
                hint="run the action exactly as it was asked, from where it was asked",
            )
        check_kind(request, kind)
        if unsealed:
            raise ActionForbidden(
                f"request {request_id} was {request.status} by no device of yours: its decision "
                "carries no seal that checks here, so the hub's word is all there is",
                hint="run the action without --approval to ask again, and decide it on your device",
            )
        if request.status == "pending" and request.is_multi:
            raise still_waiting(request, action, len(self.counted(request)))
        if request.status == "pending":
            raise ApprovalRequired(
                f"{action} still waits for your approval ({request.kind})",
                hint=f"approve it with 'truthvault approve {request_id}'",
                request_id=request_id,
            )
        if request.status != "approved":
            why = f": {request.deny_reason}" if request.status == "denied" and request.deny_reason else ""
            raise ActionForbidden(f"request {request_id} was {request.status}{why}")
        if not self.store.update(request.with_(status="used"), expect="approved"):
            raise ActionForbidden(f"request {request_id} was used meanwhile")
        return request.decided_by or ""

    # -- form and secret input -------------------------------------------------------
    def provide(self, request_id: str, values: Mapping[str, str], *, actor: Actor) -> BrokerRequest:
        """Give the values a form or secret request asks for, as ``actor`` (level 1).

        A form's values are kept with the request here (never synced); a secret's are held in
        memory until the asker takes them, and only "provided" is stored.
        """
        _check_decider(actor, "answer a request")
        request = self._pending(request_id)
        if not request.is_input:
            raise InvalidInput(f"request {request_id} is an approval: approve or deny it")
        given = {str(k): str(v) for k, v in values.items()}
        missing = [f for f in request.fields if f not in given]
        if missing or set(given) - set(request.fields):
            raise InvalidInput(f"values: give exactly {', '.join(request.fields)}")
        now = self._now()
        answered = request.with_(
            status="approved",
            decided_by=actor.source,
            decided_device=actor.device_id or None,
            decided_at=now,
            provided=True,
            expires_at=now + self.settings.approved_ttl_s,
            values=given if request.kind == "form" else None,
        )
        with self._given:
            if not self.store.update(answered, expect="pending"):
                raise ConflictState(f"request {request_id} was answered meanwhile")
            # the asker in this process takes them from here (a store may not keep a form's)
            self._inbox[request_id] = given
            self._given.notify_all()
        self._event("INPUT_PROVIDED", answered)
        return answered.with_(values=None)

    def take_input(self, request_id: str, *, actor: Actor, timeout: float = 0.0) -> dict[str, str]:
        """The values given for the asker's request, once (waiting up to ``timeout`` seconds
        for them). ApprovalRequired while none were given; ActionForbidden for another actor,
        a refused, expired or taken request; ConflictState for a secret given in another
        process (it never left that one: ask again)."""
        deadline = self._now() + timeout
        with self._given:
            while True:
                request = self.get(request_id)
                if request.status != "pending" or self._now() >= deadline:
                    break
                self._given.wait(max(0.0, deadline - self._now()))
            if not request.is_input or (request.source, request.device_id) != (actor.source, actor.device_id):
                raise ActionForbidden(f"request {request_id} is not {actor.source}'s request for values")
            if request.status == "pending":
                raise ApprovalRequired(f"request {request_id} waits for the user", request_id=request_id)
            if request.status != "approved":
                raise ActionForbidden(f"request {request_id} was {request.status}")
            values = self._inbox.pop(request_id, None)
            if values is None and request.kind == "form":
                stored = self.store.get(request_id)
                values = None if stored is None else stored.values
            if values is None:
                raise ConflictState(
                    f"the values of request {request_id} were given in another process",
                    hint="a secret is handed over in memory only: ask for it again",
                )
            if not self.store.update(request.with_(status="used", values=None), expect="approved"):
                self._inbox.pop(request_id, None)
                raise ActionForbidden(f"request {request_id} was taken meanwhile")
        return dict(values)

    # -- the PIN ---------------------------------------------------------------------
    def has_pin(self) -> bool:
        return self.store.pin() is not None

    def set_pin(self, pin: str, *, actor: Actor, current: str | None = None) -> None:
        """Set (or, with the ``current`` one, change) the user's PIN; kept as a scrypt hash."""
        _check_decider(actor, "set the PIN")
        if not _MIN_PIN <= len(pin) <= _MAX_PIN or pin.strip() != pin:
            raise InvalidInput(f"pin: {_MIN_PIN} to {_MAX_PIN} characters, no spaces at either end")
        if self.store.pin() is not None:
            if current is None:
                raise ActionForbidden("a PIN is set: give the current one to change it")
            self.check_pin(current)
        salt, n = secrets.token_bytes(16), self.settings.scrypt_n
        record = PinRecord(hash_pin(pin, salt, n), salt.hex(), n, 8, 1, set_at=self._now())
        self.store.save_pin(record)

    def check_pin(self, pin: str) -> None:
        """ActionForbidden unless ``pin`` is the user's PIN; wrong tries lock it for a while."""
        record = self.store.pin()
        if record is None:
            raise ActionForbidden("no PIN is set", hint="set one with 'truthvault pin set'")
        now = self._now()
        if record.locked_until > now:
            raise ActionForbidden(
                f"the PIN is locked after {self.settings.pin_attempts} wrong tries",
                hint=f"try again in {int(record.locked_until - now) + 1} s",
            )
        given = hash_pin(pin, bytes.fromhex(record.salt), record.n, record.r, record.p)
        if hmac.compare_digest(given, record.hash):
            if record.failures:
                self.store.save_pin(_with_failures(record, 0, 0.0))
            return
        failures = record.failures + 1
        locked = failures >= self.settings.pin_attempts
        self.store.save_pin(
            _with_failures(
                record, 0 if locked else failures, now + self.settings.pin_lockout_s if locked else 0.0
            )
        )
        left = self.settings.pin_attempts - failures
        raise ActionForbidden("wrong PIN" + ("; it is locked now" if locked else f" ({left} tries left)"))

    def _event(self, type_: str, request: BrokerRequest) -> None:
        if self._on_event is not None:
            self._on_event(type_, request)


def _with_failures(record: PinRecord, failures: int, locked_until: float) -> PinRecord:
    return PinRecord(
        record.hash, record.salt, record.n, record.r, record.p, failures, locked_until, record.set_at
    )


def event_detail(request: BrokerRequest) -> dict[str, Any]:
    """What an event says of a request: ids, kind, action and status, never a value."""
    return {
        "request_id": request.id,
        "kind": request.kind,
        "action": request.action,
        "status": request.status,
        "by": request.decided_by,
    }
