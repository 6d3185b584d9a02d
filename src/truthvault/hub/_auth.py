"""The hub's credentials: enrolment codes, device keys, nonces, access tokens, security events.

A repository over the hub's :class:`~._sql.SqlDatabase`, in portable SQL. Secrets (codes,
tokens) are stored as SHA-256 hashes only; public keys are stored as they are.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import secrets
import time
import uuid
from collections.abc import Mapping
from typing import Any

import msgspec

from ..clock import format_stamp
from ..crypto import fingerprint
from ..errors import (
    ConflictState,
    DeviceRevoked,
    InvalidEnrolCode,
    InvalidInput,
    NotFound,
    TokenExpired,
    UnknownDevice,
)
from ._sql import Db, SqlDatabase, hash_secret
from ._tenants import Tenants, check_name
from .store import Device, DeviceAuth, DeviceContext, SecurityEvent, Tenant

__all__ = [
    "ACCESS_TOKEN_PREFIX",
    "Credentials",
    "check_bearer",
    "hash_secret",
    "insert_security_event",
    "iso_s",
    "normalise_code",
]

log = logging.getLogger("truthvault.hub")

#: Crockford's base32: no I, L, O or U, so a code read aloud or retyped is not misread.
_CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CODE_GROUPS = 4  # of 4 characters: 16 x 5 bits = 80 bits
#: Access tokens carry a prefix so the hub knows which table to look in (and leak scanners can find them).
ACCESS_TOKEN_PREFIX = "tva_"
#: How often (seconds) a hub process prunes nonces that are past the signature window.
_PRUNE_EVERY_S = 30.0

_detail_decoder = msgspec.json.Decoder(dict[str, Any])
_DEVICE_AUTH = (
    "SELECT t.id, t.name, t.vault_mode, d.id, d.name, d.revoked, d.sign_public, "
    "d.prev_sign_public, d.prev_valid_until, t.pk FROM devices d JOIN tenants t ON t.pk = d.tenant_pk"
)


def iso_s(seconds: float) -> str:
    """Seconds since the epoch as ``2026-11-22T01:36:48.123Z`` (sorts as a string)."""
    return format_stamp(int(seconds * 1000))[:-5]


def normalise_code(code: str) -> str:
    """An enrolment code as stored: upper case, no separators, look-alikes mapped (O->0, I/L->1)."""
    flat = "".join(code.split()).replace("-", "").upper()
    return flat.translate(str.maketrans("OIL", "011"))


def check_bearer(holder: DeviceAuth | None, now: float) -> DeviceContext:
    """The context a bearer token proves, or why it proves nothing (no caching: checked every time)."""
    if holder is None:
        raise UnknownDevice("unknown device token", hint="enrol the device again (truthvault enroll)")
    if holder.revoked:
        raise DeviceRevoked(f"device {holder.ctx.device_name!r} was revoked", hint="enrol it again")
    if holder.expires_at is None:
        return holder.ctx
    if holder.expires_at <= iso_s(now):
        raise TokenExpired("the access token has expired", hint="get a new one from POST /v1/auth/token")
    return dataclasses.replace(holder.ctx, auth="access_token")


def _new_code() -> str:
    chars = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(4 * _CODE_GROUPS))
    return "-".join(chars[i : i + 4] for i in range(0, len(chars), 4))


def _check_public_keys(sign_public: str, box_public: str) -> str:
    """The signing key's fingerprint; InvalidInput if either key is malformed."""
    found = fingerprint(sign_public)
    try:
        raw = base64.urlsafe_b64decode(box_public + "=" * (-len(box_public) % 4))
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise InvalidInput("box_public: not 32 bytes of unpadded base64url")
    return found


class Credentials:
    """Enrolment, authentication lookups, nonces, key rotation, access tokens, security events."""

    def __init__(self, database: SqlDatabase, tenants: Tenants) -> None:
        self._db = database
        self._tenants = tenants
        self._last_prune = 0.0

    def authenticate(self, token: str) -> DeviceContext:
        """The device a bearer token belongs to (see :meth:`HubStore.authenticate`)."""
        return check_bearer(self.token_holder(token), time.time())

    # -- enrolment -----------------------------------------------------------------
    def create_enrol_code(self, tenant_name: str, ttl_s: float = 900) -> str:
        """A one-time enrolment code for the tenant, valid ``ttl_s`` (see :class:`HubStore`)."""
        tenant = self._tenants.get_tenant(tenant_name)
        code, now = _new_code(), time.time()
        with self._db.write() as db:
            db.execute(
                "INSERT INTO enrol_codes (code_hash, tenant_pk, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (
                    hash_secret(normalise_code(code)),
                    self._db.tenant_pk(tenant.id),
                    iso_s(now),
                    iso_s(now + ttl_s),
                ),
            )
        return code

    def enroll(
        self, code: str, device_name: str, sign_public: str, box_public: str, now: float | None = None
    ) -> tuple[Device, Tenant]:
        """Spend an enrolment code on a new device with these public keys (see :class:`HubStore`)."""
        check_name("device name", device_name)
        key_fingerprint = _check_public_keys(sign_public, box_public)
        at = iso_s(time.time() if now is None else now)
        code_hash, device_id = hash_secret(normalise_code(code)), str(uuid.uuid4())
        try:
            with self._db.write() as db:
                # Claim the code first: of two enrolments racing with one code, the second's
                # UPDATE waits for the first to commit and then matches nothing.
                db.execute(
                    "UPDATE enrol_codes SET used_at = ?, used_by = ? "
                    "WHERE code_hash = ? AND used_at IS NULL AND expires_at > ?",
                    (at, device_id, code_hash, at),
                )
                row = db.execute(
                    "SELECT c.used_by, c.used_at, t.id, t.name, t.vault_mode, t.created_at, t.pk "
                    "FROM enrol_codes c JOIN tenants t ON t.pk = c.tenant_pk WHERE c.code_hash = ?",
                    (code_hash,),
                ).fetchone()
                if row is None:
                    raise InvalidEnrolCode("unknown enrolment code", hint="check it, or ask for a new one")
                if row[0] != device_id:
                    used = "was already used" if row[1] is not None else "has expired"
                    raise InvalidEnrolCode(
                        f"this enrolment code {used}",
                        hint="issue another with: truthvault hub tenant code TENANT",
                    )
                tenant, pk = Tenant(*row[2:6]), int(row[6])
                device = Device(device_id, tenant.id, device_name, at, None, 0, False, key_fingerprint)
                db.execute(
                    "INSERT INTO devices (id, tenant_pk, name, created_at, sign_public, box_public) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (device_id, pk, device_name, at, sign_public, box_public),
                )
                detail = {"device_name": device_name, "fingerprint": key_fingerprint}
                insert_security_event(db, "DEVICE_ENROLLED", pk, device_id, detail, at)
        except self._db.integrity_errors:
            raise ConflictState(
                f"the tenant already has a device {device_name!r}",
                hint="enrol with another --name (the code was not spent)",
            ) from None
        return device, tenant

    # -- lookups for authentication ------------------------------------------------
    def device_keys(self, device_id: str) -> DeviceAuth | None:
        """What verifying a request of this device needs; None for an unknown device."""
        with self._db.read() as db:
            row = db.execute(_DEVICE_AUTH + " WHERE d.id = ?", (device_id,)).fetchone()
        return None if row is None else self._device_auth(row)

    def token_holder(self, token: str) -> DeviceAuth | None:
        """The device a bearer token (device token or access token) belongs to, or None."""
        with self._db.read() as db:
            if token.startswith(ACCESS_TOKEN_PREFIX):
                row = db.execute(
                    _DEVICE_AUTH.replace("SELECT ", "SELECT a.expires_at, ", 1)
                    + " JOIN access_tokens a ON a.device_id = d.id WHERE a.token_hash = ?",
                    (hash_secret(token),),
                ).fetchone()
                return None if row is None else self._device_auth(row[1:], expires_at=row[0])
            row = db.execute(_DEVICE_AUTH + " WHERE d.token_hash = ?", (hash_secret(token),)).fetchone()
        return None if row is None else self._device_auth(row)

    def _device_auth(self, row: Any, expires_at: str | None = None) -> DeviceAuth:
        self._db.remember_tenant(row[0], int(row[9]))
        ctx = DeviceContext(row[0], row[1], row[2], row[3], row[4])
        return DeviceAuth(ctx, bool(row[5]), row[6], row[7], row[8], expires_at)

    def authenticate_access_token(self, token: str) -> DeviceContext:
        """The device an access token belongs to; UnknownDevice, TokenExpired or DeviceRevoked."""
        if not token.startswith(ACCESS_TOKEN_PREFIX):
            raise UnknownDevice("not an access token")
        return check_bearer(self.token_holder(token), time.time())

    def remember_nonce(self, device_id: str, nonce: str, ts: int, keep_s: float = 300) -> bool:
        """Remember a nonce; False if this device already used it (see :class:`HubStore`)."""
        now = time.time()
        try:
            with self._db.write() as db:
                if now - self._last_prune >= _PRUNE_EVERY_S:
                    self._last_prune = now
                    db.execute("DELETE FROM nonces WHERE ts < ?", (int(now - keep_s) - 1,))
                db.execute(
                    "INSERT INTO nonces (device_id, nonce, ts) VALUES (?, ?, ?)", (device_id, nonce, ts)
                )
        except self._db.integrity_errors:
            return False
        return True

    # -- changes to devices' credentials -------------------------------------------
    def revoke_device(self, tenant_name: str, device_name: str, by: str | None = None) -> Device:
        """Revoke a device (see :class:`HubStore`)."""
        tenant = self._tenants.get_tenant(tenant_name)
        pk, at = self._db.tenant_pk(tenant.id), iso_s(time.time())
        with self._db.write() as db:
            row = db.execute(
                "SELECT id, created_at, last_seen_at, last_mutation, sign_public FROM devices "
                "WHERE tenant_pk = ? AND name = ?",
                (pk, device_name),
            ).fetchone()
            if row is None:
                raise NotFound(f"tenant {tenant_name!r} has no device {device_name!r}")
            device_id = row[0]
            db.execute("UPDATE devices SET revoked = ?, revoked_at = ? WHERE id = ?", (True, at, device_id))
            detail: dict[str, object] = {"device_name": device_name}
            if by:
                detail["by_device"] = by
            insert_security_event(db, "DEVICE_REVOKED", pk, device_id, detail, at)
        fp = fingerprint(row[4]) if row[4] else None
        return Device(device_id, tenant.id, device_name, row[1], row[2], int(row[3]), True, fp)

    def rotate_key(self, ctx: DeviceContext, sign_public: str, box_public: str, grace_s: float) -> str:
        """Replace the device's keys, keeping the old signing key valid for ``grace_s``."""
        new_fingerprint = _check_public_keys(sign_public, box_public)
        if grace_s < 0:
            raise InvalidInput(f"grace_seconds ({grace_s}) must be >= 0")
        now = time.time()
        at, until = iso_s(now), iso_s(now + grace_s)
        with self._db.write() as db:
            row = db.execute("SELECT sign_public FROM devices WHERE id = ?", (ctx.device_id,)).fetchone()
            if row is None or row[0] is None:
                raise ConflictState("this device has no signing key to rotate", hint="enrol it first")
            if row[0] == sign_public:
                raise InvalidInput("sign_public: the new key is the current key")
            db.execute(
                "UPDATE devices SET prev_sign_public = sign_public, prev_valid_until = ?, sign_public = ?, "
                "box_public = ? WHERE id = ?",
                (until, sign_public, box_public, ctx.device_id),
            )
            detail = {"old": fingerprint(row[0]), "new": new_fingerprint, "grace_until": until}
            insert_security_event(
                db, "KEY_ROTATED", self._db.tenant_pk(ctx.tenant_id), ctx.device_id, detail, at
            )
        return until

    def issue_access_token(self, ctx: DeviceContext, ttl_s: float = 900) -> tuple[str, str]:
        """A short-lived bearer token for this device and when it expires (stored hashed)."""
        token = ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        expires_at = iso_s(now + ttl_s)
        with self._db.write() as db:
            # Expired tokens of this device go as a new one comes: the table stays small.
            db.execute(
                "DELETE FROM access_tokens WHERE device_id = ? AND expires_at < ?",
                (ctx.device_id, iso_s(now)),
            )
            db.execute(
                "INSERT INTO access_tokens (token_hash, device_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (hash_secret(token), ctx.device_id, iso_s(now), expires_at),
            )
        return token, expires_at

    # -- security events -----------------------------------------------------------
    def add_security_event(
        self,
        type: str,
        *,
        tenant_id: str | None = None,
        device_id: str | None = None,
        detail: dict[str, object] | None = None,
    ) -> None:
        """Record a security event (see :class:`HubStore`)."""
        pk = self._db.tenant_pk(tenant_id) if tenant_id else None
        with self._db.write() as db:
            insert_security_event(db, type, pk, device_id, detail or {}, iso_s(time.time()))

    def security_events(self, tenant_name: str | None = None, limit: int = 100) -> list[SecurityEvent]:
        """Security events, newest first; of one tenant, or of all."""
        sql = (
            "SELECT e.id, e.type, e.at, t.name, e.device_id, e.detail FROM security_events e "
            "LEFT JOIN tenants t ON t.pk = e.tenant_pk"
        )
        params: list[object] = []
        if tenant_name is not None:
            sql += " WHERE e.tenant_pk = ?"
            params.append(self._db.tenant_pk(self._tenants.get_tenant(tenant_name).id))
        with self._db.read() as db:
            rows = db.execute(sql + " ORDER BY e.id DESC LIMIT ?", (*params, limit)).fetchall()
        return [SecurityEvent(int(r[0]), r[1], r[2], r[3], r[4], _detail_decoder.decode(r[5])) for r in rows]


def insert_security_event(
    db: Db, type: str, tenant_pk: int | None, device_id: str | None, detail: Mapping[str, object], at: str
) -> None:
    """Append a security event inside a transaction."""
    db.execute(
        "INSERT INTO security_events (tenant_pk, device_id, type, at, detail) VALUES (?, ?, ?, ?, ?)",
        (tenant_pk, device_id, type, at, msgspec.json.encode(detail).decode()),
    )
