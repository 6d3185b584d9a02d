"""Who is asking: every /v1 request authenticated as one device of one tenant, and rate-limited.

A request proves its device by an Ed25519 signature (the ``X-TV-*`` headers, see
:mod:`truthvault.crypto`) or by ``Authorization: Bearer`` with a short-lived access token or a
legacy device token. Nothing about a device is cached between requests, so a revocation holds
from the very next one. Every refusal is logged and recorded as a security event, without the
token or signature that was offered.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..crypto import SIGNATURE_HEADERS, SignedRequest, claimed_device, verify_request
from ..errors import (
    BadSignature,
    DeviceRevoked,
    Forbidden,
    InvalidEnrolCode,
    MissingCredentials,
    RateLimited,
    ReplayedRequest,
    StaleRequest,
    TokenExpired,
    TruthvaultError,
    UnknownDevice,
)
from ._auth import check_bearer, iso_s
from .store import DeviceAuth, DeviceContext, HubStore

__all__ = ["Guard", "RateLimiter", "RequestParts", "event_type"]

log = logging.getLogger("truthvault.hub")

_SIGNATURE_HEADERS = tuple(h.lower() for h in SIGNATURE_HEADERS)
#: A rate-limited device is recorded once per this many seconds, not once per refused request.
_RATE_EVENT_EVERY_S = 60.0

# Most specific first: event_type takes the first class an error is an instance of.
_EVENT_TYPES: tuple[tuple[type[TruthvaultError], str], ...] = (
    (MissingCredentials, "AUTH_MISSING"),
    (UnknownDevice, "AUTH_UNKNOWN_DEVICE"),
    (BadSignature, "AUTH_BAD_SIGNATURE"),
    (StaleRequest, "AUTH_STALE"),
    (ReplayedRequest, "AUTH_REPLAY"),
    (TokenExpired, "AUTH_TOKEN_EXPIRED"),
    (InvalidEnrolCode, "ENROLL_FAILED"),
    (DeviceRevoked, "AUTH_REVOKED"),
    (RateLimited, "AUTH_RATE_LIMITED"),
    (Forbidden, "AUTH_CROSS_TENANT"),
)


def event_type(exc: TruthvaultError) -> str:
    """The security event type that records a refusal."""
    return next((name for cls, name in _EVENT_TYPES if isinstance(exc, cls)), "AUTH_REFUSED")


@dataclass(frozen=True, slots=True)
class RequestParts:
    """What authenticating a request reads of it (the raw query and body, as signed)."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    client: str | None


class RateLimiter:
    """Per-key token buckets in this process: ``rate`` requests a second, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """Take one token: 0 if there was one, else the seconds until there is."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


class Guard:
    """Authenticates requests against a hub store (blocking: call it from a worker thread)."""

    def __init__(self, store: HubStore, window_s: float, limiter: RateLimiter) -> None:
        self.store = store
        self.window_s = window_s
        self.limiter = limiter
        self._rate_events: dict[str, float] = {}

    def authenticate(self, req: RequestParts) -> DeviceContext:
        """The device this request proves it comes from; refusals are recorded, then raised."""
        subject: DeviceContext | None = None
        claimed: str | None = None
        try:
            if any(h in req.headers for h in _SIGNATURE_HEADERS):
                claimed = claimed_device(req.headers)[:64]
                holder = self.store.device_keys(claimed)
                subject = holder.ctx if holder else None
                ctx = self._signed(req, holder)
            else:
                scheme, _, token = req.headers.get("authorization", "").partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    raise MissingCredentials(
                        "missing credentials",
                        hint="sign the request (an enrolled device) or send 'Authorization: Bearer <token>'",
                    )
                holder = self.store.token_holder(token.strip())
                subject = holder.ctx if holder else None
                ctx = check_bearer(holder, time.time())
            wait = self.limiter.take(ctx.device_id)
            if wait > 0:
                raise RateLimited(
                    f"too many requests from device {ctx.device_name!r}",
                    hint=f"retry after {math.ceil(wait)} s",
                    retry_after_s=wait,
                )
            return ctx
        except TruthvaultError as exc:
            self.record(exc, req, subject, claimed)
            raise

    def _signed(self, req: RequestParts, holder: DeviceAuth | None) -> DeviceContext:
        if holder is None:
            raise UnknownDevice("unknown device", hint="enrol this device (truthvault enroll)")
        if holder.sign_public is None:
            raise BadSignature("this device has no signing key", hint="it authenticates with its token")
        now = time.time()
        try:
            signed = self._verify(holder.sign_public, req, now)
        except BadSignature:
            # During a rotation's grace the key before it still verifies, then never again.
            if not (holder.prev_sign_public and (holder.prev_valid_until or "") > iso_s(now)):
                raise
            signed = self._verify(holder.prev_sign_public, req, now)
        if holder.revoked:
            raise DeviceRevoked(f"device {holder.ctx.device_name!r} was revoked", hint="enrol it again")
        if not self.store.remember_nonce(holder.ctx.device_id, signed.nonce, signed.timestamp, self.window_s):
            raise ReplayedRequest("this request was already received (replayed nonce)")
        return dataclasses.replace(holder.ctx, auth="signature")

    def _verify(self, public: str, req: RequestParts, now: float) -> SignedRequest:
        return verify_request(
            public, req.headers, req.method, req.path, req.query, req.body, now, self.window_s
        )

    def record(
        self,
        exc: TruthvaultError,
        req: RequestParts,
        subject: DeviceContext | None,
        claimed: str | None = None,
    ) -> None:
        """Log a refusal and record it as a security event (never with the credentials offered)."""
        kind = event_type(exc)
        device = subject.device_id if subject else claimed
        if isinstance(exc, RateLimited) and device:
            now = time.monotonic()
            if now - self._rate_events.get(device, -_RATE_EVENT_EVERY_S) < _RATE_EVENT_EVERY_S:
                return
            self._rate_events[device] = now
        log.warning(
            "refused %s %s from %s: %s (device %s)", req.method, req.path, req.client, exc.code, device
        )
        detail: dict[str, object] = {
            "method": req.method,
            "path": req.path,
            "client": req.client,
            "code": exc.code,
            "reason": exc.message,
        }
        if subject is None and claimed:
            detail["claimed_device"] = claimed
        try:
            self.store.add_security_event(
                kind,
                tenant_id=subject.tenant_id if subject else None,
                device_id=subject.device_id if subject else None,
                detail=detail,
            )
        except TruthvaultError:
            log.warning("could not record a security event", exc_info=True)
