"""The kernel's vocabulary: who acts (:class:`Actor`), how risky an action is (:class:`Risk`),
what an action touches (:class:`Target`) and the structured errors an action ends with."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ..errors import ConflictState, Forbidden, InvalidInput, NotFound, TruthvaultError
from ..truth import TruthLevel, level_of_source

__all__ = [
    "ActionConflict",
    "ActionError",
    "ActionForbidden",
    "ActionNotFound",
    "Actor",
    "ApprovalRequired",
    "Risk",
    "Target",
    "ValidationFailed",
]


class Risk(enum.StrEnum):
    """How much an action can change: policy and approvals key on it."""

    READ = "read"
    WRITE = "write"
    DESTRUCTIVE = "destructive"
    SECURITY = "security"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who runs an action: a source (``user:voice``, ``automation:r1``, ``ai-cloud:openai/gpt``),
    on a device (``""`` for the hub itself) of a tenant. The truth level comes from the source,
    never from what the caller claims."""

    source: str
    device_id: str = ""
    tenant_id: str = ""
    #: from the source (InvalidSource if it names none)
    level: TruthLevel = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", level_of_source(self.source))

    @property
    def channel(self) -> str:
        """The channel the actor speaks through: its source (``user:voice``, ``user:mobile``)."""
        return self.source

    @property
    def is_user(self) -> bool:
        return self.level is TruthLevel.USER


@dataclass(frozen=True, slots=True)
class Target:
    """An entity an action reads or writes, as policy and the audit log see it: never its
    payload. ``version`` is the version written (or read); ``level`` the truth level the entity
    held before the action (``None`` for a new one)."""

    entity_id: str
    entity_type: str = ""
    version: int = 0
    level: int | None = None


class ActionError(TruthvaultError):
    """An action ended without running: ``code`` is one of VALIDATION_ERROR, FORBIDDEN,
    NOT_FOUND, APPROVAL_REQUIRED or CONFLICT."""

    code = "ACTION_ERROR"

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        field: str | None = None,
        policies: tuple[str, ...] = (),
        request_id: str | None = None,
        cause: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.field = field
        self.policies = policies
        self.request_id = request_id
        #: the more specific code of the error a handler raised (``breaking_change``, ...)
        self.cause = cause

    def to_dict(self) -> dict[str, object]:
        body = super().to_dict()
        if self.field:
            body["field"] = self.field
        if self.policies:
            body["policies"] = ", ".join(self.policies)
        if self.request_id:
            body["request_id"] = self.request_id
        if self.cause:
            body["cause"] = self.cause
        return body


class ValidationFailed(ActionError, InvalidInput):
    code = "VALIDATION_ERROR"
    status = 422


class ActionForbidden(ActionError, Forbidden):
    code = "FORBIDDEN"
    status = 403


class ActionNotFound(ActionError, NotFound):
    code = "NOT_FOUND"
    status = 404


class ActionConflict(ActionError, ConflictState):
    code = "CONFLICT"
    status = 409


class ApprovalRequired(ActionError):
    """The action waits for a level-1 decision: ``request_id`` names the pending request; run
    the action again with ``approval=request_id`` once it is approved."""

    code = "APPROVAL_REQUIRED"
    status = 428
