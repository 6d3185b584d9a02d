"""Dead letters: what failed for good (a workflow step, an event, an automation run), kept with
its error and its input until a person retries, quarantines or discards it. Nothing that used
up its retries is dropped silently.

This module is the pure part: the record, its states, and :func:`redact`, which masks secrets in
an input before it is kept (a dead letter is shown to an admin; a secret in it would leak).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DLQ_KINDS", "DLQ_STATUSES", "MASK", "DeadLetter", "is_secret_name", "redact"]

#: what a dead letter comes from
DLQ_KINDS = ("workflow", "event", "automation")
#: open: waiting for a decision; quarantined: set aside (kept, not retried); retried: handed
#: back to its engine (a new workflow); discarded: a person decided it is not to be done
DLQ_STATUSES = ("open", "quarantined", "retried", "discarded")
#: what a secret's value becomes
MASK = "***"

#: the words of a field name that mark its value as a secret
_SECRET_WORDS = frozenset(
    {"secret", "secrets", "password", "passwd", "passphrase", "token", "tokens", "key", "keys",
     "apikey", "pin", "credential", "credentials", "auth", "authorization", "cookie"}
)  # fmt: skip
_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def is_secret_name(name: str) -> bool:
    """Whether a field named ``name`` holds a secret: one of its words (``api_key``,
    ``webhookSecret``, ``PIN``) is secret, password, token, key, pin, ... ."""
    lowered = name.lower()
    if any(w in lowered for w in ("secret", "password", "passphrase", "token")):
        return True
    return any(w.lower() in _SECRET_WORDS for w in _WORDS.findall(name))


def redact(value: Any) -> Any:
    """``value`` as JSON-ready data with every secret masked: the value of a field whose name is
    a secret's (:func:`is_secret_name`), and any pydantic ``SecretStr``/``SecretBytes``,
    however deep."""
    from pydantic import BaseModel, SecretBytes, SecretStr

    if isinstance(value, SecretStr | SecretBytes):
        return MASK
    if isinstance(value, BaseModel):
        return redact(value.model_dump(mode="python"))
    if isinstance(value, Mapping):
        return {
            str(k): MASK if is_secret_name(str(k)) and v is not None else redact(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One thing that failed for good, as ``dlq list|show`` shows it."""

    id: str
    tenant_id: str | None
    kind: str  # one of DLQ_KINDS
    ref: str  # the workflow's id, the event's, the automation run's
    source: str  # which saga and step (``tenant.provision/policy (run)``), event or rule
    error: str
    input: Any  # JSON, secrets masked
    attempts: int
    first_failed_at: str
    last_failed_at: str
    status: str  # one of DLQ_STATUSES
    changed_at: str
    changed_by: str | None = None
    retried_as: str | None = None  # the workflow a retry started
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}
