"""The hub's webhooks: the hooks devices register for their automation rules, and the inbox of
deliveries each hook holds until the device that runs its rule takes them.

A hook is known by a public id (in its URL) and a secret the device made and showed its user
once. The hub keeps only the secret's SHA-256: the secret is 32 random bytes, so nobody can try
their way through its possible values, and a slow password hash would add nothing but cost to
every delivery. A delivery is refused with one answer whatever is wrong (an unknown hook, a
missing or a wrong secret), so a caller learns nothing about which hooks exist.

A hook id belongs to the tenant that first registered it: a device of another tenant cannot
take it over, and a delivery lands only in its hook's tenant. A device reads and acks only its
own tenant's deliveries. A hook holds at most :data:`MAX_PENDING` deliveries: past that the
sender is told to retry later (429), so a flood cannot fill the hub's disk.
"""

from __future__ import annotations

import hmac
import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..errors import ConflictState, InvalidInput, NotFound, RateLimited, Unauthorized
from ..kernel._automation import check_delivery
from ._auth import iso_s
from ._notes import INSERT_EVENTS
from ._sql import SqlDatabase, hash_secret, select_in
from .store import DeviceContext

__all__ = ["MAX_HOOKS", "MAX_PENDING", "Delivery", "HubWebhooks", "check_hook_id"]

#: deliveries one hook holds at most until its device takes them
MAX_PENDING = 1000
#: hooks one tenant registers at most
MAX_HOOKS = 1000
_HOOK = re.compile(r"^[A-Za-z0-9_-]{22,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REFUSED = "this webhook needs its secret: send it as 'Authorization: Bearer <secret>'"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery as the device takes it: its id, when it arrived, its body (a JSON object)."""

    id: str
    hook_id: str
    received_at: str
    body: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "hook_id": self.hook_id, "received_at": self.received_at, "body": self.body}


def check_hook_id(hook_id: str) -> str:
    """``hook_id`` when it is one (InvalidInput naming the field otherwise)."""
    if not _HOOK.match(hook_id):
        raise InvalidInput("hook_id: 22 to 64 letters, digits, '-' or '_'")
    return hook_id


class HubWebhooks:
    """Hooks and their pending deliveries, in the hub's database."""

    def __init__(self, database: SqlDatabase, max_pending: int = MAX_PENDING) -> None:
        self._db = database
        self.max_pending = max_pending

    # -- a device's side ---------------------------------------------------------------
    def register(self, ctx: DeviceContext, hook_id: str, secret_sha256: str, rule_id: str) -> bool:
        """Register hook ``hook_id`` for rule ``rule_id`` with the SHA-256 of its secret (the
        device keeps the secret: the hub never sees it), or give a hook of the tenant a new
        secret; True when it is new. ConflictState when another tenant holds the id."""
        check_hook_id(hook_id)
        if not _SHA256.match(secret_sha256):
            raise InvalidInput("secret_sha256: the secret's SHA-256, 64 lowercase hex digits")
        pk, at = self._db.tenant_pk(ctx.tenant_id), iso_s(time.time())
        with self._db.write() as db:
            db.execute("SELECT pk FROM tenants WHERE pk = ?" + self._db.lock_clause, (pk,))
            row = db.execute("SELECT tenant_pk FROM webhooks WHERE hook_id = ?", (hook_id,)).fetchone()
            if row is not None and int(row[0]) != pk:
                raise ConflictState(f"hook_id: {hook_id} is taken; add the rule again for a new one")
            if row is not None:
                db.execute(
                    "UPDATE webhooks SET secret_hash = ?, rule_id = ?, device_id = ?, rotated_at = ? "
                    "WHERE hook_id = ?",
                    (secret_sha256, rule_id, ctx.device_id, at, hook_id),
                )
                return False
            count = db.execute("SELECT count(*) FROM webhooks WHERE tenant_pk = ?", (pk,)).fetchone()[0]
            if int(count) >= MAX_HOOKS:
                raise ConflictState(f"the tenant has {MAX_HOOKS} webhooks already: remove one first")
            db.execute(
                "INSERT INTO webhooks (hook_id, tenant_pk, secret_hash, rule_id, device_id, created_at, "
                "rotated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (hook_id, pk, secret_sha256, rule_id, ctx.device_id, at, at),
            )
        return True

    def remove(self, ctx: DeviceContext, hook_id: str) -> int:
        """Remove a hook of the tenant and its pending deliveries; how many deliveries went
        with it. NotFound if the tenant has no such hook."""
        pk = self._db.tenant_pk(ctx.tenant_id)
        with self._db.write() as db:
            gone = db.execute(
                "DELETE FROM webhooks WHERE hook_id = ? AND tenant_pk = ? RETURNING hook_id", (hook_id, pk)
            ).fetchone()
            if gone is None:
                raise NotFound(f"hook_id: the tenant has no webhook {hook_id}")
            rows = db.execute(
                "DELETE FROM webhook_deliveries WHERE tenant_pk = ? AND hook_id = ? RETURNING id",
                (pk, hook_id),
            ).fetchall()
        return len(rows)

    def hooks(self, ctx: DeviceContext) -> list[dict[str, Any]]:
        """The tenant's hooks (never a secret or its hash), with how many deliveries each holds."""
        pk = self._db.tenant_pk(ctx.tenant_id)
        with self._db.read() as db:
            rows = db.execute(
                "SELECT w.hook_id, w.rule_id, w.device_id, w.created_at, w.rotated_at, "
                "(SELECT count(*) FROM webhook_deliveries d WHERE d.tenant_pk = w.tenant_pk "
                "AND d.hook_id = w.hook_id) FROM webhooks w WHERE w.tenant_pk = ? ORDER BY w.created_at",
                (pk,),
            ).fetchall()
        keys = ("hook_id", "rule_id", "device_id", "created_at", "rotated_at", "pending")
        return [dict(zip(keys, (*r[:5], int(r[5])), strict=True)) for r in rows]

    def pending(self, ctx: DeviceContext, hook_id: str, limit: int = 100) -> list[Delivery]:
        """The oldest deliveries of a hook of the tenant (NotFound for a hook it has not)."""
        pk = self._db.tenant_pk(ctx.tenant_id)
        with self._db.read() as db:
            if (
                db.execute(
                    "SELECT 1 FROM webhooks WHERE hook_id = ? AND tenant_pk = ?", (hook_id, pk)
                ).fetchone()
                is None
            ):
                raise NotFound(f"hook_id: the tenant has no webhook {hook_id}")
            rows = db.execute(
                "SELECT id, received_at, body FROM webhook_deliveries WHERE tenant_pk = ? AND hook_id = ? "
                "ORDER BY n LIMIT ?",
                (pk, hook_id, limit),
            ).fetchall()
        return [Delivery(r[0], hook_id, r[1], json.loads(r[2])) for r in rows]

    def ack(self, ctx: DeviceContext, delivery_ids: list[str]) -> int:
        """Delete deliveries of the tenant the device has taken; how many there were (one
        acked twice, or another tenant's, counts nothing)."""
        pk = self._db.tenant_pk(ctx.tenant_id)
        with self._db.write() as db:
            found = [r[0] for r in select_in(db, "SELECT id FROM webhook_deliveries", pk, "id", delivery_ids)]
            for start in range(0, len(found), 500):
                chunk = found[start : start + 500]
                db.execute(
                    f"DELETE FROM webhook_deliveries WHERE tenant_pk = ? AND id IN ({', '.join('?' * len(chunk))})",
                    (pk, *chunk),
                )
        return len(found)

    # -- the sender's side -------------------------------------------------------------
    def deliver(self, hook_id: str, secret: str | None, body: bytes) -> tuple[str, str]:
        """Keep a delivery for hook ``hook_id`` when ``secret`` is its secret: (its tenant's
        id, the delivery's id). Unauthorized, the same whatever is wrong; then InvalidInput or
        PayloadTooLarge for a body that is not a JSON object of the allowed size; RateLimited
        when the hook holds :attr:`max_pending` deliveries. Records a WEBHOOK_DELIVERY event
        (the hook, the delivery, its size: never its body)."""
        row = None
        if _HOOK.match(hook_id):
            with self._db.read() as db:
                row = db.execute(
                    "SELECT w.tenant_pk, w.secret_hash, t.id FROM webhooks w "
                    "JOIN tenants t ON t.pk = w.tenant_pk WHERE w.hook_id = ?",
                    (hook_id,),
                ).fetchone()
        # constant time: the comparison says nothing of how much of the hash matched
        given = hash_secret(secret) if secret else ""
        if row is None or not hmac.compare_digest(given, str(row[1])):
            raise Unauthorized(_REFUSED, hint="the secret was shown once, when the rule was added")
        value = check_delivery(body)
        pk, tenant_id = int(row[0]), str(row[2])
        delivery_id, at = str(uuid.uuid4()), iso_s(time.time())
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=True)
        with self._db.write() as db:
            # the hook's row lock: two deliveries at once cannot both take the last place
            held_by = db.execute(
                "SELECT tenant_pk FROM webhooks WHERE hook_id = ?" + self._db.lock_clause, (hook_id,)
            ).fetchone()
            if held_by is None or int(held_by[0]) != pk:  # removed (or replaced) since it was read
                raise Unauthorized(_REFUSED, hint="the secret was shown once, when the rule was added")
            held = db.execute(
                "SELECT count(*) FROM webhook_deliveries WHERE tenant_pk = ? AND hook_id = ?", (pk, hook_id)
            ).fetchone()[0]
            if int(held) >= self.max_pending:
                raise RateLimited(
                    f"this webhook holds {self.max_pending} deliveries its device has not taken yet",
                    hint="retry later",
                    retry_after_s=60,
                )
            db.execute(
                "INSERT INTO webhook_deliveries (id, tenant_pk, hook_id, received_at, body) VALUES (?, ?, ?, ?, ?)",
                (delivery_id, pk, hook_id, at, text),
            )
            detail = {"hook": hook_id, "delivery": delivery_id, "bytes": len(text)}
            db.execute(INSERT_EVENTS, (pk, "WEBHOOK_DELIVERY", at, None, None, json.dumps(detail)))
        return tenant_id, delivery_id

    def backlog(self) -> dict[str, Any]:
        """Across tenants (the admin's view): hooks, deliveries waiting, the oldest's arrival."""
        with self._db.read() as db:
            hooks = db.execute("SELECT count(*) FROM webhooks").fetchone()[0]
            waiting, oldest = db.execute(
                "SELECT count(*), min(received_at) FROM webhook_deliveries"
            ).fetchone()
        return {"hooks": int(hooks), "pending": int(waiting), "oldest_pending_at": oldest}

    def tenant_of(self, hook_id: str) -> str | None:
        """The id of the tenant a hook delivers into, None for an unknown one."""
        with self._db.read() as db:
            row = db.execute(
                "SELECT t.id FROM webhooks w JOIN tenants t ON t.pk = w.tenant_pk WHERE w.hook_id = ?",
                (hook_id,),
            ).fetchone()
        return None if row is None else str(row[0])
