"""The hub's webhook endpoints.

``POST /v1/hooks/{hook_id}`` is the one /v1 route a stranger calls: a service the user gave the
hook's URL and secret. It proves itself by the secret alone (``Authorization: Bearer <secret>``
or ``X-Truthvault-Secret``; never in the URL, where proxies and logs keep it). An unknown hook
and a wrong secret get the same 401, so a caller cannot tell which hooks exist; a body is read
up to its limit only, then checked after the secret. Accepted: 202 with the delivery's id.

The others are a device's, authenticated and scoped to its tenant: register a hook (or give it a
new secret), remove it, take its pending deliveries, and ack the ones taken so the hub deletes
them.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..errors import PayloadTooLarge, RateLimited, Unauthorized
from ..kernel._automation import MAX_DELIVERY_BYTES
from ._device_routes import Text
from ._guard import RateLimiter
from .store import DeviceContext, HubStore

__all__ = ["add_webhook_routes"]

_HOOK_ID = Path(pattern=r"^[A-Za-z0-9_-]{22,64}$", description="the hook's public id")
_Id = Annotated[Text, Field(min_length=1, max_length=64)]


class RegisterBody(BaseModel):
    """The body of ``PUT /v1/webhooks/{hook_id}``: never the secret, only its hash."""

    model_config = ConfigDict(extra="forbid")
    secret_sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="the SHA-256 of the hook's secret, in lowercase hex"
    )
    rule_id: _Id = Field(description="the automation rule the hook feeds")


class AckBody(BaseModel):
    """The body of ``POST /v1/webhooks/deliveries/ack``."""

    model_config = ConfigDict(extra="forbid")
    ids: list[_Id] = Field(max_length=1000, description="the deliveries this device has taken")


def _secret(request: Request) -> str | None:
    given = request.headers.get("x-truthvault-secret")
    if given:
        return given.strip()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def _body(request: Request) -> bytes:
    """The body, read no further than the limit (PayloadTooLarge past it)."""
    size = int(request.headers.get("content-length") or 0)
    if size > MAX_DELIVERY_BYTES:
        raise PayloadTooLarge(f"body: {size} bytes is over the limit of {MAX_DELIVERY_BYTES}")
    chunks, read = [], 0
    async for chunk in request.stream():
        read += len(chunk)
        if read > MAX_DELIVERY_BYTES:
            raise PayloadTooLarge(f"body: over the limit of {MAX_DELIVERY_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def add_webhook_routes(
    app: FastAPI,
    store: HubStore,
    device: Callable[[Request], Awaitable[DeviceContext]],
    limiter: RateLimiter,
) -> None:
    """Add the public ``POST /v1/hooks/{hook_id}`` and the devices' ``/v1/webhooks`` routes."""
    Device = Annotated[DeviceContext, Depends(device)]
    hooks = store.webhooks

    @app.post(
        "/v1/hooks/{hook_id}",
        tags=["webhooks"],
        status_code=202,
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}
        },
    )
    async def deliver(hook_id: Annotated[str, _HOOK_ID], request: Request) -> JSONResponse:
        """Deliver a JSON object to a webhook, with its secret in `Authorization: Bearer` (or
        `X-Truthvault-Secret`). 401 for a missing or wrong secret or an unknown hook alike;
        413 over 256 KiB; 422 for a body that is not a JSON object (or too deeply nested);
        429 when the hook holds as many deliveries as it may until its device takes them."""
        client = request.client.host if request.client else "-"
        # per client, as enrolment is (a key per hook too would let made-up hook ids grow the table)
        wait = limiter.take(f"webhook:{client}")
        if wait > 0:
            raise RateLimited("too many requests to this webhook", retry_after_s=wait)
        body = await _body(request)
        secret = _secret(request)
        try:
            tenant_id, delivery_id = await run_in_threadpool(hooks.deliver, hook_id, secret, body)
        except Unauthorized as exc:
            await run_in_threadpool(_refused, store, hook_id, client, secret is not None, exc)
            raise
        del tenant_id
        return JSONResponse({"delivery": delivery_id, "status": "accepted"}, status_code=202)

    @app.put("/v1/webhooks/{hook_id}", tags=["webhooks"])
    async def register(hook_id: Annotated[str, _HOOK_ID], body: RegisterBody, ctx: Device) -> dict[str, Any]:
        """Register a webhook for a rule of the tenant, by its secret's hash (the secret stays
        with the device and its user), or give it a new secret. 409 if another tenant holds it."""
        created = await run_in_threadpool(hooks.register, ctx, hook_id, body.secret_sha256, body.rule_id)
        return {"hook_id": hook_id, "created": created}

    @app.get("/v1/webhooks", tags=["webhooks"])
    async def list_hooks(ctx: Device) -> dict[str, Any]:
        """The tenant's webhooks: each hook's rule, the device that registered it, when, and
        how many deliveries it holds (never its secret, nor the secret's hash)."""
        return {"hooks": await run_in_threadpool(hooks.hooks, ctx)}

    @app.delete("/v1/webhooks/{hook_id}", tags=["webhooks"])
    async def remove(hook_id: Annotated[str, _HOOK_ID], ctx: Device) -> dict[str, Any]:
        """Remove a webhook of the tenant, and the deliveries it still holds."""
        dropped = await run_in_threadpool(hooks.remove, ctx, hook_id)
        return {"hook_id": hook_id, "dropped": dropped}

    @app.get("/v1/webhooks/{hook_id}/deliveries", tags=["webhooks"])
    async def pending(
        hook_id: Annotated[str, _HOOK_ID], ctx: Device, limit: Annotated[int, Query(ge=1, le=500)] = 100
    ) -> dict[str, Any]:
        """The oldest deliveries a webhook of the tenant holds (404 for a hook it has not)."""
        found = await run_in_threadpool(hooks.pending, ctx, hook_id, limit)
        return {"deliveries": [d.to_wire() for d in found]}

    @app.post("/v1/webhooks/deliveries/ack", tags=["webhooks"])
    async def ack(body: AckBody, ctx: Device) -> dict[str, int]:
        """The deliveries this device has taken (kept durably): the hub deletes them."""
        return {"acked": await run_in_threadpool(hooks.ack, ctx, body.ids)}


def _refused(store: HubStore, hook_id: str, client: str, had_secret: bool, exc: Unauthorized) -> None:
    """Record a refused delivery as a security event: of the hook's tenant when it has one
    (its admin sees someone knocking), never with the secret offered."""
    tenant_id = store.webhooks.tenant_of(hook_id)
    reason = "unknown hook" if tenant_id is None else ("wrong secret" if had_secret else "no secret")
    store.add_security_event(
        "WEBHOOK_REFUSED",
        tenant_id=tenant_id,
        detail={"hook": hook_id, "client": client, "code": exc.code, "reason": reason},
    )
