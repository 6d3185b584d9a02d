"""What the hub's admin has beside the tenants: bearer tokens for the admin views (``/diagz``),
stored hashed, and the record of each ``hub audit verify`` run.

An admin token is made on the hub's own machine (``truthvault hub admin-token``), shown once
and never logged; the hub keeps its SHA-256 only.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidInput, NotFound, Unauthorized
from ._auth import iso_s
from ._sql import SqlDatabase, hash_secret

__all__ = ["ADMIN_TOKEN_PREFIX", "AdminToken", "AuditVerification", "HubAdmin"]

#: an admin token starts with this, so that a leaked one is recognised (and never taken for a device's)
ADMIN_TOKEN_PREFIX = "tvadm_"


@dataclass(frozen=True, slots=True)
class AdminToken:
    id: str
    name: str
    created_at: str
    last_used_at: str | None
    revoked: bool


@dataclass(frozen=True, slots=True)
class AuditVerification:
    """One ``hub audit verify`` run: when, whether every log checked out, what it covered."""

    at: str
    ok: bool
    tenants: int
    entries: int
    detail: dict[str, Any]


class HubAdmin:
    """Admin tokens and audit verification records, in the hub's database."""

    def __init__(self, database: SqlDatabase) -> None:
        self._db = database

    # -- admin tokens ------------------------------------------------------------------
    def create_token(self, name: str = "admin") -> tuple[AdminToken, str]:
        """A new admin token and its secret (shown once; stored hashed)."""
        name = name.strip()
        if not name or len(name) > 100:
            raise InvalidInput("name: an admin token's name is 1 to 100 characters")
        secret = ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(32)
        made = AdminToken(str(uuid.uuid4()), name, iso_s(time.time()), None, False)
        with self._db.write() as db:
            db.execute(
                "INSERT INTO admin_tokens (id, token_hash, name, created_at, revoked) VALUES (?, ?, ?, ?, ?)",
                (made.id, hash_secret(secret), made.name, made.created_at, False),
            )
        return made, secret

    def tokens(self) -> list[AdminToken]:
        with self._db.read() as db:
            rows = db.execute(
                "SELECT id, name, created_at, last_used_at, revoked FROM admin_tokens ORDER BY created_at"
            ).fetchall()
        return [AdminToken(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]

    def revoke_token(self, id_or_name: str) -> AdminToken:
        """Revoke an admin token by its id or name; NotFound if there is none."""
        with self._db.write() as db:
            row = db.execute(
                "SELECT id FROM admin_tokens WHERE id = ? OR name = ? ORDER BY created_at DESC",
                (id_or_name, id_or_name),
            ).fetchone()
            if row is None:
                raise NotFound(f"no admin token {id_or_name!r}")
            db.execute("UPDATE admin_tokens SET revoked = ? WHERE id = ?", (True, row[0]))
        return next(t for t in self.tokens() if t.id == row[0])

    def authenticate(self, token: str) -> AdminToken:
        """The admin token ``token`` is; Unauthorized (the same message whatever is wrong) if
        it is unknown or revoked."""
        if not token.startswith(ADMIN_TOKEN_PREFIX):
            raise Unauthorized(
                "this needs the hub's admin token", hint="make one: 'truthvault hub admin-token'"
            )
        with self._db.read() as db:
            row = db.execute(
                "SELECT id, name, created_at, revoked FROM admin_tokens WHERE token_hash = ?",
                (hash_secret(token),),
            ).fetchone()
        if row is None or bool(row[3]):
            raise Unauthorized(
                "this needs the hub's admin token", hint="make one: 'truthvault hub admin-token'"
            )
        at = iso_s(time.time())
        with self._db.write_note() as db:
            db.execute("UPDATE admin_tokens SET last_used_at = ? WHERE id = ?", (at, row[0]))
        return AdminToken(row[0], row[1], row[2], at, False)

    # -- audit verifications -----------------------------------------------------------
    def record_verification(self, ok: bool, tenants: int, entries: int, detail: dict[str, Any]) -> None:
        """Keep the outcome of one ``hub audit verify`` run."""
        with self._db.write() as db:
            db.execute(
                "INSERT INTO audit_verifications (at, ok, tenants, entries, detail) VALUES (?, ?, ?, ?, ?)",
                (iso_s(time.time()), ok, tenants, entries, json.dumps(detail, sort_keys=True)),
            )

    def last_verification(self) -> AuditVerification | None:
        """The newest ``hub audit verify`` run, or None when none ran."""
        with self._db.read() as db:
            row = db.execute(
                "SELECT at, ok, tenants, entries, detail FROM audit_verifications ORDER BY id DESC LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        return AuditVerification(row[0], bool(row[1]), int(row[2]), int(row[3]), json.loads(row[4]))
