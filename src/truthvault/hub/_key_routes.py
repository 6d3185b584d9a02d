"""The hub's key endpoints for local-first tenants: it relays wrapped keys it cannot open."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..clock import HybridClock
from ..errors import ConflictState
from ._device_routes import Text
from ._governance import run_for_device
from .store import DeviceContext, HubStore

__all__ = ["RecoveryBody", "WrappedKeysBody", "add_key_routes"]

_BLOB = Field(min_length=1, max_length=65536, description="a wrapped-key envelope (opaque to the hub)")
_KID = Field(min_length=1, max_length=64, description="the wrapped keyring's current key id")


class WrappedKeysBody(BaseModel):
    """The body of ``PUT /v1/keys/wrapped``."""

    blobs: dict[Text, Text] = Field(
        max_length=1000, description="device id -> keyring wrapped to its box key"
    )
    kid: Text = _KID
    genesis: bool = Field(default=False, description="the caller created the tenant's first keyring")


class RecoveryBody(BaseModel):
    """The body of ``PUT /v1/keys/recovery``."""

    blob: Text = _BLOB
    kid: Text = _KID


def _local_first(ctx: DeviceContext) -> None:
    if ctx.vault_mode != "local_first":
        raise ConflictState(
            f"tenant {ctx.tenant_name!r} is {ctx.vault_mode}: its payloads are not end-to-end encrypted"
        )


def add_key_routes(
    app: FastAPI, store: HubStore, device: Callable[[Request], Awaitable[DeviceContext]], clock: HybridClock
) -> None:
    """Add /v1/keys/* to the app (every route authenticated and scoped to the caller's tenant)."""
    Device = Annotated[DeviceContext, Depends(device)]

    @app.get("/v1/keys/devices", tags=["keys"])
    async def key_devices(ctx: Device) -> list[dict[str, Any]]:
        """The tenant's devices with their box keys and which key their wrapped copy holds (a
        revoked device: no box key, so nothing is wrapped to it again)."""
        _local_first(ctx)
        found = await run_in_threadpool(store.key_holders, ctx)
        return [
            {
                "id": h.device_id,
                "name": h.name,
                "box_public": h.box_public,
                "kid": h.kid,
                "revoked": h.revoked,
            }
            for h in found
        ]

    @app.put("/v1/keys/wrapped", tags=["keys"])
    async def put_wrapped(body: WrappedKeysBody, ctx: Device) -> dict[str, int]:
        """Store the tenant keyring wrapped to devices of this tenant (for each, its own copy)."""
        _local_first(ctx)
        params = {"blobs": body.blobs, "kid": body.kid, "genesis": body.genesis}
        done = await run_in_threadpool(run_for_device, store, clock, ctx, "keys.share", params)
        return {"stored": done["stored"]}

    @app.get("/v1/keys/wrapped", tags=["keys"])
    async def get_wrapped(ctx: Device) -> dict[str, Any]:
        """This device's own wrapped keyring (a device can fetch no other), and whether the tenant has one."""
        _local_first(ctx)
        found = await run_in_threadpool(store.get_wrapped_key, ctx)
        return {"blob": found.blob, "kid": found.kid, "tenant_keyed": found.tenant_keyed}

    @app.put("/v1/keys/recovery", tags=["keys"])
    async def put_recovery(body: RecoveryBody, ctx: Device) -> dict[str, bool]:
        """Store the tenant keyring wrapped with the recovery passphrase (scrypt)."""
        _local_first(ctx)
        params = {"blob": body.blob, "kid": body.kid}
        await run_in_threadpool(run_for_device, store, clock, ctx, "keys.recovery", params)
        return {"stored": True}

    @app.get("/v1/keys/recovery/status", tags=["keys"])
    async def recovery_status(ctx: Device) -> dict[str, Any]:
        """Whether the tenant has a recovery copy (and its key id), without fetching it: not on record."""
        _local_first(ctx)
        kid = await run_in_threadpool(store.recovery_kid, ctx)
        return {"set": kid is not None, "kid": kid}

    @app.get("/v1/keys/recovery", tags=["keys"])
    async def get_recovery(ctx: Device) -> dict[str, Any]:
        """The tenant keyring wrapped with the recovery passphrase, or null when none is set."""
        _local_first(ctx)
        return {"blob": await run_in_threadpool(store.get_recovery_blob, ctx)}
