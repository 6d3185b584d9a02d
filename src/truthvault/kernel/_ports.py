"""What the dispatcher asks of the parts around it: a policy engine, an input broker and an
audit log. Each side (a device's vault, the hub) plugs in its own implementations."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from ._types import Actor, Risk, Target

if TYPE_CHECKING:
    from pydantic import BaseModel  # the kernel's ports load no pydantic (see __init__)

__all__ = [
    "AuditRecord",
    "AuditSink",
    "Broker",
    "Decision",
    "InputHasher",
    "PolicyDecision",
    "PolicyEngine",
    "PolicyRequest",
]


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    """One question to policy: may ``actor`` run ``action`` (of ``risk``) on ``targets``?"""

    actor: Actor
    action: str
    risk: Risk
    targets: tuple[Target, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    """Policy's answer: ``allowed`` outright, or only after an approval of kind ``approval``
    (``approve``: any level-1 decision; ``pin``: the user's PIN; ``confirm``: a fresh
    confirmation; ``two-devices``: level-1 approvals from two different devices), or refused. ``policies`` names the policies that decided it."""

    allowed: bool
    approval: str | None = None
    policies: tuple[str, ...] = ()
    reason: str = ""


class PolicyEngine(Protocol):
    def decide(self, request: PolicyRequest) -> PolicyDecision: ...


Decision = Literal["allowed", "approved", "denied", "failed"]


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """What the audit log keeps of one action: never its input or payloads, only a hash of the
    input and the targets' ids and versions."""

    tenant_id: str
    action: str
    action_version: str
    actor: Actor
    decision: Decision
    at: str
    input_hash: str
    targets: tuple[Target, ...] = ()
    approved_by: str | None = None
    reason: str | None = None


class AuditSink(Protocol):
    """Where the dispatcher appends; called inside the action's transaction when it ran."""

    def append(self, record: AuditRecord) -> None: ...


class Broker(Protocol):
    """The input broker, as the dispatcher uses it for approvals."""

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
        """Persist a pending approval request; return its id."""
        ...

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
        """Use an approved request once for this action and input; return who approved it.

        ``rehash(stored)`` is the input's hash under the key the request's hash ``stored`` names
        (None when this side lacks it): a request asked before the tenant's key was rotated is
        still redeemed for the same input.

        Raises ApprovalRequired while it is pending, ActionForbidden if it was denied, expired,
        already used, or was asked for another action, input, actor or ``kind`` of approval
        (the one policy asks for now: a PIN is not replaced by a plain approval)."""
        ...


class InputHasher(Protocol):
    """What the dispatcher keeps of an input in the audit log and approval requests: a hash
    (plain SHA-256, or keyed under a key the hub lacks, see :mod:`._input_hash`)."""

    def __call__(self, params: BaseModel) -> str:
        """The input's hash as this side takes it now (under its current key)."""
        ...

    def under(self, stored: str, params: BaseModel) -> str | None:
        """The input's hash under the key ``stored`` (a hash taken earlier) names, or None when
        this side lacks that key."""
        ...
