"""The input broker's records and the storage port its two stores (the vault, the hub) implement.

A :class:`BrokerRequest` is what is kept of one request for a human's input: never a payload,
never a secret's value; only the hash of an action's input and the ids of its targets.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ..errors import InvalidInput
from ._types import Risk, Target

__all__ = [
    "DECIDED",
    "FINAL",
    "INPUT_KINDS",
    "KINDS",
    "MAX_NEEDED",
    "REQUEST_COLUMNS",
    "STATUSES",
    "Approval",
    "BrokerRequest",
    "BrokerSettings",
    "BrokerStore",
    "PinRecord",
    "approvals_from_json",
    "approvals_json",
    "request_from_row",
    "request_row",
    "status_rank",
    "targets_from_json",
    "targets_json",
]

#: approval: any level-1 decision; confirm: a fresh confirmation; pin: the user's PIN;
#: form / secret: values the asker waits for
KINDS: tuple[str, ...] = ("approval", "confirm", "pin", "form", "secret")
INPUT_KINDS: tuple[str, ...] = ("form", "secret")
STATUSES: tuple[str, ...] = ("pending", "approved", "denied", "expired", "used")
DECIDED: tuple[str, ...] = ("approved", "denied")
FINAL: tuple[str, ...] = ("denied", "expired", "used")
#: approvals from distinct devices a request may need at most
MAX_NEEDED = 5
_RANK = {"pending": 0, "approved": 1, "denied": 1, "expired": 2, "used": 2}


def status_rank(status: str) -> int:
    """How far a request has come: pending 0, decided 1, expired or used 2 (never goes back)."""
    return _RANK[status]


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """How long requests live and how PINs are kept; every duration in seconds."""

    #: a pending approval, PIN, form or secret request expires after this
    ttl_s: float = 24 * 3600.0
    #: an approved request must be used within this
    approved_ttl_s: float = 3600.0
    #: a confirmation (``user:mobile`` destructive) must be given within this of the request ...
    confirm_ttl_s: float = 120.0
    #: ... and used within this of being given: it is fresh, or it is nothing
    confirm_window_s: float = 60.0
    #: wrong PINs in a row before the PIN locks ...
    pin_attempts: int = 5
    #: ... for this long
    pin_lockout_s: float = 900.0
    #: scrypt's cost (2**15: some 0.1 s and 32 MiB a try); tests may lower it
    scrypt_n: int = 1 << 15


@dataclass(frozen=True, slots=True)
class Approval:
    """One device's approval of a request that needs several (``needed`` > 1): who gave it, on
    which device, when, and its seal made on that device over the request and these three (see
    :func:`~._approval_seal.approval_message`), so that the hub can neither make one up nor
    replay one under another device's id."""

    by: str
    device: str
    at: float
    seal: str | None = None
    #: the device's name as the hub knows it (it records it): shown, never sealed nor trusted
    name: str | None = None

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"by": self.by, "device": self.device, "at": float(self.at), "seal": self.seal}
        return body if self.name is None else {**body, "name": self.name}

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> Approval:
        return cls(
            str(data["by"]),
            str(data["device"]),
            float(data["at"]),
            _opt(data.get("seal")),
            _opt(data.get("name")),
        )


def approvals_json(approvals: Sequence[Approval]) -> str:
    """Approvals as stored: a JSON list, in the order they were given (compared as text by a
    store's compare-and-set, so always written the same way)."""
    return json.dumps([a.to_wire() for a in approvals], separators=(",", ":"))


def approvals_from_json(data: str | Sequence[Mapping[str, Any]] | None) -> tuple[Approval, ...]:
    rows = json.loads(data) if isinstance(data, str) else (data or ())
    return tuple(Approval.from_wire(r) for r in rows)


@dataclass(frozen=True, slots=True)
class BrokerRequest:
    """One request for a human's input, as stored and synced (times: seconds since the epoch)."""

    id: str
    kind: str
    action: str
    risk: str
    #: who asked: the actor's source, device and tenant
    source: str
    device_id: str
    tenant_id: str
    #: why, as safe to show anywhere (a policy's reason, a summary): never input content
    reason: str
    input_hash: str
    created_at: float
    expires_at: float
    targets: tuple[Target, ...] = ()
    #: the names of the values a form or secret request asks for
    fields: tuple[str, ...] = ()
    status: str = "pending"
    decided_by: str | None = None
    decided_device: str | None = None
    decided_at: float | None = None
    deny_reason: str | None = None
    #: a form's or secret's values were given (a secret's value itself is never stored)
    provided: bool = False
    #: an approval's decision sealed by the deciding device (``<key id>:<hex>``, see
    #: :mod:`._approval_seal`); None before a decision, and where decisions are not sealed
    seal: str | None = None
    #: approvals from distinct devices it needs (policy's ``@approval("two-devices")``: 2); 1
    #: for every other request, whose single decision is the ``decided_*`` fields and ``seal``
    needed: int = 1
    #: with ``needed`` > 1: each device's approval so far, each with its own seal; the request
    #: is approved once ``needed`` of them come from distinct devices (the ``decided_*`` fields
    #: then name the one that completed it)
    approvals: tuple[Approval, ...] = ()
    #: a form's values, kept only where they were given (never synced); None for the rest
    values: dict[str, str] | None = field(default=None, compare=False)

    def status_at(self, now: float) -> str:
        """The status as of ``now``: a pending or approved request past its expiry is expired."""
        if self.status in ("pending", "approved") and now >= self.expires_at:
            return "expired"
        return self.status

    @property
    def is_input(self) -> bool:
        return self.kind in INPUT_KINDS

    @property
    def is_multi(self) -> bool:
        """Does it need approvals from more than one device?"""
        return self.needed > 1

    def with_(self, **changes: Any) -> BrokerRequest:
        return replace(self, **changes)

    def to_wire(self) -> dict[str, Any]:
        """The request as it travels between a device and the hub: no form values, ever."""
        return {
            "id": self.id,
            "kind": self.kind,
            "action": self.action,
            "risk": self.risk,
            "source": self.source,
            "device_id": self.device_id,
            "reason": self.reason,
            "input_hash": self.input_hash,
            "targets": [_target_dict(t) for t in self.targets],
            "fields": list(self.fields),
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "status": self.status,
            "decided_by": self.decided_by,
            "decided_device": self.decided_device,
            "decided_at": self.decided_at,
            "deny_reason": self.deny_reason,
            "provided": self.provided,
            # only when there is one: a hub from before seals refuses a field it does not know
            **({"seal": self.seal} if self.seal is not None else {}),
            # only for a request that needs several approvals (as the seal: for older hubs)
            **(
                {"needed": self.needed, "approvals": [a.to_wire() for a in self.approvals]}
                if self.is_multi
                else {}
            ),
        }

    @classmethod
    def from_wire(cls, data: Mapping[str, Any], tenant_id: str) -> BrokerRequest:
        """A request from its wire form (InvalidInput naming the field that is wrong)."""
        try:
            request = cls(
                id=str(data["id"]),
                kind=str(data["kind"]),
                action=str(data["action"]),
                risk=str(data["risk"]),
                source=str(data["source"]),
                device_id=str(data["device_id"]),
                tenant_id=tenant_id,
                reason=str(data.get("reason") or ""),
                input_hash=str(data.get("input_hash") or ""),
                created_at=float(data["created_at"]),
                expires_at=float(data["expires_at"]),
                targets=targets_from_json(data.get("targets") or []),
                fields=tuple(str(f) for f in data.get("fields") or ()),
                status=str(data.get("status") or "pending"),
                decided_by=_opt(data.get("decided_by")),
                decided_device=_opt(data.get("decided_device")),
                decided_at=None if data.get("decided_at") is None else float(data["decided_at"]),
                deny_reason=_opt(data.get("deny_reason")),
                provided=bool(data.get("provided")),
                seal=_opt(data.get("seal")),
                needed=int(data.get("needed") or 1),
                approvals=approvals_from_json(data.get("approvals")),
            )
        except KeyError as exc:
            raise InvalidInput(f"request: {exc.args[0]}: missing", hint="a broker request needs it") from None
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"request: {exc}") from None
        request.check()
        return request

    def check(self) -> None:
        """InvalidInput unless the kind, risk and status are known ones."""
        if self.kind not in KINDS:
            raise InvalidInput(f"kind: {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.status not in STATUSES:
            raise InvalidInput(f"status: {self.status!r} is not one of {', '.join(STATUSES)}")
        if self.risk not in {r.value for r in Risk}:
            raise InvalidInput(f"risk: {self.risk!r} is not a risk class")
        if not 1 <= self.needed <= MAX_NEEDED or (self.needed > 1 and self.kind != "approval"):
            raise InvalidInput(f"needed: 1 to {MAX_NEEDED} approvals, more than one only for kind 'approval'")
        if len(self.approvals) > 2 * MAX_NEEDED or (self.approvals and not self.is_multi):
            raise InvalidInput("approvals: only a request that needs several carries them, a few at most")


def _opt(value: object) -> str | None:
    return None if value is None else str(value)


def _target_dict(target: Target) -> dict[str, Any]:
    return {
        "entity_id": target.entity_id,
        "entity_type": target.entity_type,
        "version": target.version,
        "level": target.level,
    }


def targets_json(targets: Sequence[Target]) -> str:
    """Targets as stored: their ids, types, versions and levels (JSON)."""
    return json.dumps([_target_dict(t) for t in targets], separators=(",", ":"))


def targets_from_json(data: str | Sequence[Mapping[str, Any]]) -> tuple[Target, ...]:
    rows = json.loads(data) if isinstance(data, str) else data
    return tuple(
        Target(
            str(r["entity_id"]),
            str(r.get("entity_type") or ""),
            int(r.get("version") or 0),
            None if r.get("level") is None else int(r["level"]),
        )
        for r in rows
    )


@dataclass(frozen=True, slots=True)
class PinRecord:
    """The user's PIN as kept: its scrypt hash and salt (hex), the cost, and the wrong tries."""

    hash: str
    salt: str
    n: int
    r: int
    p: int
    failures: int = 0
    locked_until: float = 0.0
    set_at: float = 0.0


class BrokerStore(Protocol):
    """Where a broker keeps its requests and its PIN. Implementations: the vault's (a device)
    and the hub's (one per tenant). Every method is atomic on its own; :meth:`update` must be
    a compare-and-set, so that two deciders (or two redeemers) can never both win."""

    def insert(self, request: BrokerRequest) -> None:
        """Keep a new request (ConflictState if its id is taken)."""

    def get(self, request_id: str) -> BrokerRequest | None:
        """A request by id, or None."""

    def update(
        self, request: BrokerRequest, *, expect: str, approvals: Sequence[Approval] | None = None
    ) -> bool:
        """Store ``request`` over the stored one if that one's status is still ``expect`` (and,
        when ``approvals`` is given, its approvals are still these); False (nothing written) if
        it is not."""

    def requests(self, *, status: str | None = None, limit: int = 1000) -> list[BrokerRequest]:
        """Requests newest first, only those stored with ``status`` when given."""

    def pin(self) -> PinRecord | None:
        """The user's PIN record, or None when no PIN was set."""

    def save_pin(self, record: PinRecord) -> None:
        """Keep the PIN record (replacing the one before)."""


#: a request's stored columns, in order: every store keeps these (and may add its own after)
REQUEST_COLUMNS = (
    "id, kind, action, risk, source, device_id, reason, input_hash, targets, fields, created_at, "
    "expires_at, status, decided_by, decided_device, decided_at, deny_reason, provided, seal, "
    "needed, approvals"
)


def request_row(request: BrokerRequest) -> tuple[Any, ...]:
    """A request's values for :data:`REQUEST_COLUMNS`, in order."""
    return (
        request.id,
        request.kind,
        request.action,
        request.risk,
        request.source,
        request.device_id,
        request.reason,
        request.input_hash,
        targets_json(request.targets),
        json.dumps(list(request.fields)),
        request.created_at,
        request.expires_at,
        request.status,
        request.decided_by,
        request.decided_device,
        request.decided_at,
        request.deny_reason,
        bool(request.provided),
        request.seal,
        request.needed,
        approvals_json(request.approvals),
    )


def request_from_row(
    row: Sequence[Any], tenant_id: str, values: Mapping[str, Any] | None = None
) -> BrokerRequest:
    """The request a row of :data:`REQUEST_COLUMNS` holds (the store knows its tenant)."""
    return BrokerRequest(
        id=row[0],
        kind=row[1],
        action=row[2],
        risk=row[3],
        source=row[4],
        device_id=row[5],
        tenant_id=tenant_id,
        reason=row[6],
        input_hash=row[7],
        targets=targets_from_json(row[8]),
        fields=tuple(json.loads(row[9])),
        created_at=float(row[10]),
        expires_at=float(row[11]),
        status=row[12],
        decided_by=row[13],
        decided_device=row[14],
        decided_at=None if row[15] is None else float(row[15]),
        deny_reason=row[16],
        provided=bool(row[17]),
        seal=row[18],
        needed=int(row[19] or 1),
        approvals=approvals_from_json(row[20]),
        values=None if values is None else dict(values),
    )
