"""The hub's enrolment, access-token and device endpoints (each tenant sees only its own devices)."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Request
from pydantic import AfterValidator, BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..clock import HybridClock
from ..errors import BadSignature, RateLimited, TruthvaultError
from ._governance import run_for_device
from ._guard import Guard, RequestParts
from .store import DeviceContext, HubStore

_T = TypeVar("_T")

__all__ = ["EnrollBody", "RecoveryCheckBody", "RevokeBody", "RotateKeyBody", "Text", "add_device_routes"]


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


#: request text: refused at the edge if it holds a NUL, which PostgreSQL cannot store or compare
Text = Annotated[str, AfterValidator(_no_nul)]

_KEY = Field(min_length=1, max_length=100, description="a raw public key in unpadded base64url")


class EnrollBody(BaseModel):
    """The body of ``POST /v1/enroll``."""

    code: Text = Field(min_length=1, max_length=64, description="the one-time enrolment code")
    device_name: Text = Field(min_length=1, max_length=200, description="a name for the device, e.g. laptop")
    sign_public: Text = _KEY
    box_public: Text = _KEY


class RecoveryCheckBody(BaseModel):
    """The body of ``POST /v1/enroll/recovery``."""

    code: Text = Field(min_length=1, max_length=64, description="an unspent one-time enrolment code")


class RevokeBody(BaseModel):
    """The body of ``POST /v1/devices/revoke``."""

    name: Text = Field(min_length=1, max_length=200, description="the device to revoke")


class RotateKeyBody(BaseModel):
    """The body of ``POST /v1/devices/rotate-key``."""

    sign_public: Text = _KEY
    box_public: Text = _KEY
    grace_seconds: float = Field(
        default=86400, ge=0, le=30 * 86400, description="how long the old key keeps working"
    )


def _require_signature(ctx: DeviceContext) -> None:
    if ctx.auth != "signature":
        raise BadSignature(
            "this endpoint needs a signed request", hint="only an enrolled device, signing, may do this"
        )


def add_device_routes(
    app: FastAPI,
    store: HubStore,
    guard: Guard,
    device: Callable[[Request], Awaitable[DeviceContext]],
    parts: Callable[[Request], Awaitable[RequestParts]],
    access_token_ttl_s: float,
    clock: HybridClock,
) -> None:
    """Add /v1/enroll, /v1/enroll/recovery, /v1/auth/token and /v1/devices* to the app."""
    _add_enrol_routes(app, store, guard, parts)
    _add_device_routes(app, store, device, access_token_ttl_s, clock)


def _with_code(guard: Guard, req: RequestParts, use: Callable[[], _T]) -> _T:
    """Spend one of the client's code attempts on ``use`` (which spends or reads a code); a
    refusal is on record. Codes are 80 bits, but guessing still costs a client its rate, the
    same budget whether it enrols or checks a recovery: a code guessed there is a code guessed."""
    try:
        wait = guard.limiter.take(f"enroll:{req.client}")
        if wait > 0:
            raise RateLimited("too many enrolment attempts", retry_after_s=wait)
        return use()
    except TruthvaultError as exc:
        guard.record(exc, req, None)
        raise


def _add_enrol_routes(
    app: FastAPI, store: HubStore, guard: Guard, parts: Callable[[Request], Awaitable[RequestParts]]
) -> None:
    @app.post("/v1/enroll", tags=["devices"])
    async def enroll(body: EnrollBody, request: Request) -> dict[str, Any]:
        """Register a new device with a one-time enrolment code and its public keys (unauthenticated)."""
        req = await parts(request)

        def run() -> dict[str, Any]:
            created, tenant = _with_code(
                guard,
                req,
                lambda: store.enroll(body.code, body.device_name, body.sign_public, body.box_public),
            )
            return {
                "tenant_id": tenant.id,
                "tenant_name": tenant.name,
                "vault_mode": tenant.vault_mode,
                "device_id": created.id,
                "device_name": created.name,
            }

        return await run_in_threadpool(run)

    @app.post("/v1/enroll/recovery", tags=["keys"])
    async def enroll_recovery(body: RecoveryCheckBody, request: Request) -> dict[str, Any]:
        """The passphrase-wrapped keyring of an unspent enrolment code's tenant (authenticated by
        the code alone, which stays unspent), so a device checks its recovery passphrase before
        it enrols. Whoever holds the code could enrol and fetch it anyway; each fetch is recorded."""
        req = await parts(request)

        def run() -> dict[str, Any]:
            tenant, blob = _with_code(guard, req, lambda: store.recovery_blob_for_code(body.code))
            return {"tenant_name": tenant.name, "blob": blob}

        return await run_in_threadpool(run)


def _add_device_routes(
    app: FastAPI,
    store: HubStore,
    device: Callable[[Request], Awaitable[DeviceContext]],
    access_token_ttl_s: float,
    clock: HybridClock,
) -> None:
    Device = Annotated[DeviceContext, Depends(device)]

    @app.post("/v1/auth/token", tags=["devices"])
    async def access_token(ctx: Device) -> dict[str, str]:
        """A short-lived bearer token for this device; the request must be signed (this is the refresh)."""
        _require_signature(ctx)
        token, expires_at = await run_in_threadpool(store.issue_access_token, ctx, access_token_ttl_s)
        return {"token": token, "expires_at": expires_at}

    @app.get("/v1/devices", tags=["devices"])
    async def devices(ctx: Device) -> list[dict[str, Any]]:
        """The devices of the caller's tenant, with when each was last seen."""
        found = await run_in_threadpool(store.list_devices, ctx.tenant_name)
        return [
            {
                "name": d.name,
                "id": d.id,
                "created_at": d.created_at,
                "last_seen_at": d.last_seen_at,
                "revoked": d.revoked,
                "fingerprint": d.fingerprint,
                "this_device": d.id == ctx.device_id,
            }
            for d in found
        ]

    @app.post("/v1/devices/revoke", tags=["devices"])
    async def revoke(body: RevokeBody, ctx: Device) -> dict[str, Any]:
        """Revoke a device of the caller's tenant: its every later request is refused."""
        done = await run_in_threadpool(
            run_for_device, store, clock, ctx, "device.revoke", {"name": body.name}
        )
        return {"name": done["name"], "id": done["id"], "revoked": True}

    @app.post("/v1/devices/rotate-key", tags=["devices"])
    async def rotate_key(body: RotateKeyBody, ctx: Device) -> dict[str, Any]:
        """Replace this device's keys (signed with the current key); the old key works during the grace."""
        _require_signature(ctx)
        params = {
            "sign_public": body.sign_public,
            "box_public": body.box_public,
            "grace_seconds": body.grace_seconds,
        }
        done = await run_in_threadpool(run_for_device, store, clock, ctx, "device.rotate_key", params)
        return {"device_id": ctx.device_id, "grace_until": done["grace_until"]}
