"""Dead letters: what failed for good (a workflow step, an event, an automation run), kept with
its error and its input until a person retries, quarantines or discards it. Nothing that used
up its retries is dropped silently.

Here: the record, its states, :func:`redact` (which masks secrets in an input before it is kept:
a dead letter is shown to an admin, and a secret in it would leak), and :class:`SqlDeadLetters`,
the queue in a store's ``dead_letters`` table (the hub's database, a device's vault), portable
SQL. One row per failed thing (``kind``, ``ref``): a workflow whose step failed for good, and
then whose compensation failed too, is one row naming both; the same failure kept again (a
replay after a crash) changes nothing.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from ..clock import format_stamp
from ..errors import ConflictState, InvalidInput, NotFound

__all__ = ["DLQ_KINDS", "DLQ_STATUSES", "MASK", "DeadLetter", "SqlDeadLetters", "is_secret_name", "redact"]

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


def _stamp(seconds: float) -> str:
    """Seconds since the epoch as ``2026-12-07T21:40:12.123Z`` (sorts as a string)."""
    return format_stamp(int(seconds * 1000))[:-5]


_COLUMNS = (
    "id, tenant_id, kind, ref, source, error, input, attempts, first_failed_at, last_failed_at, "
    "status, changed_at, changed_by, retried_as, note"
)
#: the states a dead letter may leave, and those it may go to from each
_MOVES = {
    "quarantined": ("open",),
    "retried": ("open", "quarantined"),
    "discarded": ("open", "quarantined"),
}
#: what retries a dead letter of a kind: given it, hands it back to its engine; the new ref
Retrier = Callable[[DeadLetter], str]


def _row(r: Any) -> DeadLetter:
    return DeadLetter(
        id=r[0], tenant_id=r[1], kind=r[2], ref=r[3], source=r[4], error=r[5], input=json.loads(r[6]),
        attempts=int(r[7]), first_failed_at=r[8], last_failed_at=r[9], status=r[10], changed_at=r[11],
        changed_by=r[12], retried_as=r[13], note=r[14],
    )  # fmt: skip


class SqlDeadLetters:
    """Dead letters in a store's ``dead_letters`` table: ``write`` opens the store's write
    transaction (joining one that is open) and ``read`` a read, each yielding what runs its SQL
    (with qmark parameters): the hub's database or the vault's connection alike. Of every tenant
    and of none (a provisioning that failed before its tenant existed); :meth:`on_retry` says
    how a kind is retried in this process."""

    def __init__(
        self,
        write: Callable[[], AbstractContextManager[Any]],
        read: Callable[[], AbstractContextManager[Any]],
        *,
        list_hint: str = "'truthvault dlq list' lists them",
    ) -> None:
        self._write = write
        self._read = read
        self._list_hint = list_hint
        self._retriers: dict[str, Retrier] = {}

    def on_retry(self, kind: str, retrier: Retrier) -> None:
        """Retry dead letters of ``kind`` with ``retrier`` (the workflow engine restarts a
        workflow's)."""
        self._retriers[kind] = retrier

    def add(
        self,
        kind: str,
        ref: str,
        source: str,
        error: str,
        input: Any,
        attempts: int,
        tenant_id: str | None = None,
        now: float | None = None,
    ) -> DeadLetter:
        """Keep a failure of ``kind`` (``ref`` names what failed) with its error and its input,
        secrets masked. A later failure of the same ``ref`` from another source (a compensation
        after its step) joins that row and opens it again; the same one again changes nothing."""
        if kind not in DLQ_KINDS:
            raise InvalidInput(f"kind: {kind!r} is not one of {', '.join(DLQ_KINDS)}")
        at = _stamp(time.time() if now is None else now)
        text = json.dumps(redact(input), sort_keys=True, default=str)
        with self._write() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM dead_letters WHERE kind = ? AND ref = ?", (kind, ref)
            ).fetchone()
            if row is None:
                new_id = str(uuid.uuid4())
                db.execute(
                    f"INSERT INTO dead_letters ({_COLUMNS}) VALUES ({', '.join('?' * 15)})",
                    (new_id, tenant_id or None, kind, ref, source, error, text, attempts, at, at,
                     "open", at, None, None, None),
                )  # fmt: skip
                return self._get(db, new_id)
            found = _row(row)
            if source in found.source.split("; "):
                return found  # this failure is kept already (a replay)
            db.execute(
                "UPDATE dead_letters SET source = ?, error = ?, attempts = attempts + ?, "
                "last_failed_at = ?, status = 'open', changed_at = ? WHERE id = ?",
                (f"{found.source}; {source}", f"{found.error}; then {error}", attempts, at, at, found.id),
            )
            return self._get(db, found.id)

    def get(self, id_or_prefix: str) -> DeadLetter:
        """A dead letter by its id or the first characters of it (at least 4)."""
        key = id_or_prefix.strip().lower()
        if len(key) < 4:
            raise InvalidInput(f"id: {id_or_prefix!r} is too short: give at least 4 characters")
        with self._read() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM dead_letters WHERE id LIKE ? ORDER BY id LIMIT 2",
                (key.replace("%", "").replace("_", "") + "%",),
            ).fetchall()
        if not rows:
            raise NotFound(f"no dead letter {id_or_prefix!r}", hint=self._list_hint)
        if len(rows) > 1:
            raise InvalidInput(f"id: {id_or_prefix!r} names more than one dead letter: give more of it")
        return _row(rows[0])

    def _get(self, db: Any, id: str) -> DeadLetter:
        return _row(db.execute(f"SELECT {_COLUMNS} FROM dead_letters WHERE id = ?", (id,)).fetchone())

    def list(
        self,
        status: str | None = None,
        kind: str | None = None,
        tenant_id: str | None = None,
        limit: int = 100,
    ) -> list[DeadLetter]:
        """Dead letters, the latest failure first; only those in ``status``, of ``kind`` or of
        tenant ``tenant_id`` when given."""
        if status is not None and status not in DLQ_STATUSES:
            raise InvalidInput(f"status: {status!r} is not one of {', '.join(DLQ_STATUSES)}")
        where, params = [], []
        for column, value in (("status", status), ("kind", kind), ("tenant_id", tenant_id)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = f"SELECT {_COLUMNS} FROM dead_letters"
        if where:
            sql += " WHERE " + " AND ".join(where)
        with self._read() as db:
            rows = db.execute(f"{sql} ORDER BY last_failed_at DESC, id LIMIT ?", (*params, limit)).fetchall()
        return [_row(r) for r in rows]

    def counts(self, kind: str | None = None) -> dict[str, int]:
        """How many dead letters are in each state (of ``kind``, when given: counted without
        reading their inputs, which may be large)."""
        where, params = ("", ()) if kind is None else (" WHERE kind = ?", (kind,))
        with self._read() as db:
            rows = db.execute(
                f"SELECT status, count(*) FROM dead_letters{where} GROUP BY status", params
            ).fetchall()
        found = {str(s): int(n) for s, n in rows}
        return {s: found.get(s, 0) for s in DLQ_STATUSES}

    def move(
        self, id_or_prefix: str, status: str, by: str, note: str | None = None, retried_as: str | None = None
    ) -> DeadLetter:
        """Put a dead letter in ``status`` (quarantined, retried, discarded), saying who and why;
        ConflictState when its state does not allow it (a discarded one stays discarded)."""
        if status not in _MOVES:
            raise InvalidInput(f"status: {status!r} is not one of {', '.join(_MOVES)}")
        found = self.get(id_or_prefix)
        at = _stamp(time.time())
        with self._write() as db:
            done = db.execute(
                "UPDATE dead_letters SET status = ?, changed_at = ?, changed_by = ?, note = COALESCE(?, note), "
                f"retried_as = COALESCE(?, retried_as) WHERE id = ? AND status IN ({', '.join('?' * len(_MOVES[status]))})",
                (status, at, by, note, retried_as, found.id, *_MOVES[status]),
            )
            del done
            current = self._get(db, found.id)
            if current.status != status or current.changed_at != at or current.changed_by != by:
                raise ConflictState(
                    f"dead letter {found.id[:8]} is {current.status}: it cannot be {status}",
                    hint="only an open or quarantined dead letter is retried or discarded; only an open one is quarantined",
                )
            return current

    def retry(self, id_or_prefix: str, by: str, note: str | None = None) -> DeadLetter:
        """Hand a dead letter back to its engine (a workflow's is run again from its first step,
        as a new workflow) and mark it ``retried`` with what the retry started."""
        found = self.get(id_or_prefix)
        if found.status not in _MOVES["retried"]:
            raise ConflictState(f"dead letter {found.id[:8]} is {found.status}: it cannot be retried")
        retrier = self._retriers.get(found.kind)
        if retrier is None:
            raise ConflictState(
                f"nothing in this process retries a dead letter of kind {found.kind!r}",
                hint="retry it where its engine runs (the hub's workflows: 'truthvault hub dlq retry' on the hub)",
            )
        started = retrier(found)
        return self.move(found.id, "retried", by, note, retried_as=started)
