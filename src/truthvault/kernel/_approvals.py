"""Requests that need approvals from several devices (``needed`` > 1; policy's
``@approval("two-devices")`` asks for 2).

Each device's approval is kept on its own (who, which device, when) with its own seal made on
that device (see :func:`~._approval_seal.approval_message`, which names the device). A second
approval from the same device is refused; one denial denies the request; it is approved once
``needed`` approvals from distinct devices count. What counts is decided wherever the request is
read: with a sealer only approvals whose seals check there (:func:`counted_approvals`), so the
hub can neither add the missing approval nor replay one under another device's id, and a device
redeems only with enough of them. The asking device may be one of the approving devices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..errors import ConflictState, InvalidInput
from ._approval_seal import ApprovalSealer
from ._broker_store import Approval, BrokerRequest
from ._types import ActionForbidden, Actor, ApprovalRequired

__all__ = [
    "KIND_ALIASES",
    "NEEDED",
    "add_approval",
    "check_kind",
    "counted_approvals",
    "decision_checks",
    "same_input",
    "still_waiting",
]

#: the dispatcher's names for approval kinds, as PolicyDecision.approval gives them -> the
#: request's kind
KIND_ALIASES = {"approve": "approval", "two-devices": "approval"}
#: the approval kinds (as policy names them) that need approvals from distinct devices, and
#: how many (every other kind needs one decision)
NEEDED = {"two-devices": 2}


def counted_approvals(request: BrokerRequest, sealer: ApprovalSealer | None) -> tuple[Approval, ...]:
    """The approvals of a request that needs several that count: the first of each device
    whose seal checks under ``sealer`` (every one's first where there is no sealer: the hub)."""
    seen: set[str] = set()
    counted: list[Approval] = []
    for given in request.approvals:
        fresh = bool(given.device) and given.device not in seen
        if fresh and (sealer is None or sealer.check_approval(request, given)):
            seen.add(given.device)
            counted.append(given)
    return tuple(counted)


def decision_checks(request: BrokerRequest, sealer: ApprovalSealer | None) -> bool:
    """Does the decision ``request`` carries check under ``sealer``? (True with no sealer, for a
    request for values, and for a request not decided.) A request that needs several approvals
    is approved (or used) only with enough counted approvals; its denial is sealed as one."""
    if sealer is None or request.is_input:
        return True
    if request.is_multi and request.status != "denied":
        if request.status == "pending" or (request.status == "expired" and request.decided_by is None):
            return True
        return len(counted_approvals(request, sealer)) >= request.needed
    return request.decided_by is None or sealer.check(request)


def add_approval(
    request: BrokerRequest,
    actor: Actor,
    now: float,
    window: float,
    sealer: ApprovalSealer | None,
    decided_at: float | None = None,
    seal: str | None = None,
    device_name: str | None = None,
) -> BrokerRequest:
    """``request`` with ``actor``'s device's approval added: sealed with ``sealer`` (a device),
    else carrying the deciding device's ``seal`` and ``decided_at`` as they are (the hub); and
    approved, to be used within ``window``, once enough count. ``device_name`` (the hub's name
    for the device) is shown with it, and not sealed. ConflictState for a second
    approval from the same device."""
    device = actor.device_id
    if not device:
        raise InvalidInput(
            f"request {request.id} needs approvals from {request.needed} devices: approve it on a "
            "device (this actor names none)"
        )
    counted = counted_approvals(request, sealer)
    if any(a.device == device for a in counted):
        raise ConflictState(
            f"request {request.id} is already approved on this device; approve it on another device",
            hint=f"{len(counted)} of {request.needed} approvals so far: run 'truthvault approve "
            f"{request.id[:8]}' on another of your devices",
        )
    at = now if decided_at is None or sealer is not None else decided_at
    given = Approval(actor.source, device, float(at))  # as it reads back from JSON: the seal is over it
    if sealer is not None:
        given = replace(given, seal=sealer.seal_approval(request, given))
    elif seal is not None:
        given = replace(given, seal=seal)
    given = replace(given, name=device_name)  # after sealing: a name is shown, never sealed
    # one under this device's id that does not count (its seal does not check) gives way
    kept = tuple(a for a in request.approvals if a.device != device)
    after = request.with_(approvals=(*kept, given))
    if len(counted) + 1 < request.needed:
        return after
    return after.with_(
        status="approved", decided_by=actor.source, decided_device=device, decided_at=at,
        expires_at=now + window,
    )  # fmt: skip


def check_kind(request: BrokerRequest, kind: str | None) -> None:
    """ActionForbidden unless ``request`` is of the approval ``kind`` policy asks for now (as
    PolicyDecision.approval names it; None: whatever it is), and needs at least as many
    approvals from distinct devices: a PIN is not replaced by a plain approval, nor two
    devices' approvals by one."""
    wanted = KIND_ALIASES.get(kind, kind) if kind is not None else request.kind
    needed = NEEDED.get(kind, 1) if kind is not None else request.needed
    if request.kind != wanted:
        raise ActionForbidden(
            f"request {request.id} is a {request.kind} request: this action needs a kind of approval "
            f"it is not ({wanted})",
            hint="run the action without --approval to ask for the approval it needs",
        )
    if request.needed < needed:
        raise ActionForbidden(
            f"request {request.id} asks for {request.needed} approval(s): this action needs approvals "
            f"from {needed} different devices",
            hint="run the action without --approval to ask for the approvals it needs",
        )


def still_waiting(request: BrokerRequest, action: str, counted: int) -> ApprovalRequired:
    """The error for a request that needs several approvals and has ``counted`` of them."""
    return ApprovalRequired(
        f"{action} still waits for your approvals: {counted} of {request.needed}, each on a different device",
        hint=f"approve it with 'truthvault approve {request.id}' on another of your devices",
        request_id=request.id,
    )


def same_input(request: BrokerRequest, input_hash: str, rehash: Callable[[str], str | None] | None) -> bool:
    """Was ``request`` asked for the input hashed ``input_hash`` (now), perhaps under an earlier
    key of the tenant (``rehash`` takes it under the key the request's hash names)?"""
    if request.input_hash == input_hash:
        return True
    if rehash is None or not request.input_hash:
        return False
    again = rehash(request.input_hash)
    if again is None:
        raise ActionForbidden(
            f"request {request.id} was asked under a key this device does not hold",
            hint="run the action without --approval to ask for its approval again",
        )
    return again == request.input_hash
