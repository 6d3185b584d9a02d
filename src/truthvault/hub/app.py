"""The hub's HTTP face: a FastAPI app over a :class:`~truthvault.hub.store.HubStore`."""

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any

import msgspec
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..clock import HybridClock
from ..errors import Forbidden, InvalidInput, PayloadTooLarge, RateLimited, TruthvaultError, Unauthorized
from ..model import PullResponse, PushRequest, PushResponse, Record
from ._action_routes import add_action_routes
from ._audit_routes import CheckpointKey, add_audit_routes
from ._broker_routes import add_broker_routes
from ._contract_routes import add_contract_routes
from ._device_routes import add_device_routes
from ._guard import Guard, RateLimiter, RequestParts
from ._health import add_health_routes
from ._key_routes import add_key_routes
from ._policy_routes import add_policy_routes
from ._sync_routes import ConflictResolveBody, Notifier, add_pull_route, add_push_route, add_record_routes
from ._webhook_routes import add_webhook_routes
from .store import DeviceContext, HubStore, Limits

__all__ = ["ConflictResolveBody", "HubSettings", "create_app"]

log = logging.getLogger("truthvault.hub")

_DESCRIPTION = (
    "Relays and mirrors what the devices of each tenant push. Every /v1 request "
    "but `POST /v1/enroll` and `POST /v1/enroll/recovery` (which take a one-time enrolment code) "
    "and `POST /v1/hooks/{hook_id}` (a webhook, which takes its own secret) is "
    "authenticated as one device: enrolled devices sign each request "
    "(`X-TV-Device`, `X-TV-Timestamp`, `X-TV-Nonce`, `X-TV-Signature`); sessions that cannot "
    "sign send `Authorization: Bearer <access token>` (from `POST /v1/auth/token`), and "
    "devices added with `hub device add` their device token."
)


@dataclass(frozen=True, slots=True)
class HubSettings:
    """How a hub behaves; the CLI fills this from its flags."""

    limits: Limits = field(default_factory=Limits)
    max_body_bytes: int = 64 << 20
    max_pull_limit: int = 5000
    max_wait_s: float = 60.0
    tombstone_retention_s: float = 30 * 86400
    purge_interval_s: float = 3600.0
    #: how far a signed request's timestamp may be from the hub's clock
    signature_window_s: float = 300.0
    #: per device, in this process: requests a second, and the burst allowed above that
    rate_per_s: float = 200.0
    rate_burst: float = 400.0
    access_token_ttl_s: float = 900.0
    #: the file of the hub's audit checkpoint key (made, mode 0600, if missing); None: a key
    #: for this process only, which devices that kept a checkpoint would refuse after a restart
    audit_key_path: str | None = None


#: the error code of a refusal FastAPI or Starlette makes before the hub's code runs
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def _error(exc: TruthvaultError) -> JSONResponse:
    return JSONResponse({"error": exc.to_dict()}, status_code=exc.status)


def create_app(store: HubStore, settings: HubSettings | None = None) -> FastAPI:
    """Build the hub app. The store is owned by the caller (closed by it)."""
    cfg = settings or HubSettings()
    notifier = Notifier()
    clock = HybridClock()
    guard = Guard(store, cfg.signature_window_s, RateLimiter(cfg.rate_per_s, cfg.rate_burst))
    app = FastAPI(
        title="truthvault hub",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=_lifespan(store, cfg, notifier),
    )
    _add_error_handlers(app, guard)

    async def parts(request: Request) -> RequestParts:
        size = int(request.headers.get("content-length") or 0)
        if size > cfg.max_body_bytes:
            raise PayloadTooLarge(f"body: {size} bytes is over the limit of {cfg.max_body_bytes}")
        body = await request.body()
        if len(body) > cfg.max_body_bytes:
            raise PayloadTooLarge(f"body: {len(body)} bytes is over the limit of {cfg.max_body_bytes}")
        return RequestParts(
            request.method, request.url.path, request.url.query, request.headers, body, _client(request)
        )

    async def device(request: Request) -> DeviceContext:
        ctx = await run_in_threadpool(guard.authenticate, await parts(request))
        request.state.ctx = ctx
        return ctx

    Device = Annotated[DeviceContext, Depends(device)]

    @app.get("/healthz", tags=["hub"])
    async def healthz() -> dict[str, str]:
        """Liveness: the hub's process answers (whether it can serve: /readyz)."""
        return {"status": "ok", "backend": store.backend, "version": __version__}

    add_health_routes(app, store)

    @app.get("/v1/whoami", tags=["hub"])
    async def whoami(ctx: Device) -> dict[str, Any]:
        """The device and tenant this token belongs to, and the hub's limits."""
        return {
            **asdict(ctx),
            "max_payload_bytes": cfg.limits.max_payload_bytes,
            "max_batch_items": cfg.limits.max_batch_items,
            "server_time": clock.now(),
        }

    add_push_route(app, store, cfg.limits, guard, clock, notifier, parts)
    add_pull_route(app, store, cfg.max_pull_limit, cfg.max_wait_s, guard, notifier, parts)
    add_record_routes(app, store, clock, notifier, device)
    add_device_routes(app, store, guard, device, parts, cfg.access_token_ttl_s, clock)
    add_key_routes(app, store, device, clock)
    add_action_routes(app, store, clock, notifier.notify, device)
    add_policy_routes(app, store, device, clock)
    add_broker_routes(app, store, device)
    add_contract_routes(app, store, device, clock)
    add_webhook_routes(app, store, device, guard.limiter)
    key = CheckpointKey.at(cfg.audit_key_path) if cfg.audit_key_path else CheckpointKey.ephemeral()
    add_audit_routes(app, store, key, device)
    _add_wire_schemas(app)
    return app


def _lifespan(
    store: HubStore, cfg: HubSettings, notifier: Notifier
) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """The app's life: the tombstone purge runs, and other hub processes' pushes wake waiters."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(_purge_loop(store, cfg))
        loop = asyncio.get_running_loop()

        # pushes committed by other hub processes (PostgreSQL LISTEN/NOTIFY) wake our waiters
        def changed(tenant_id: str) -> None:
            loop.call_soon_threadsafe(notifier.notify, tenant_id)

        unwatch = store.watch(changed)
        try:
            yield
        finally:
            unwatch()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return lifespan


def _add_error_handlers(app: FastAPI, guard: Guard) -> None:
    """Every error the app answers has one shape: ``{"error": {"code", "message"}}``."""

    @app.exception_handler(TruthvaultError)
    async def _on_truthvault_error(request: Request, exc: TruthvaultError) -> JSONResponse:
        if exc.status >= 500:
            log.error("request failed: %s", exc.message)
        ctx: DeviceContext | None = getattr(request.state, "ctx", None)
        if ctx is not None and isinstance(exc, Unauthorized | Forbidden):
            # A refusal after authentication: another tenant's data, a signature an endpoint needs.
            req = RequestParts(request.method, request.url.path, request.url.query, {}, b"", _client(request))
            await run_in_threadpool(guard.record, exc, req, ctx)
        response = _error(exc)
        if isinstance(exc, RateLimited):
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        return response

    @app.exception_handler(RequestValidationError)
    async def _on_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
        error = InvalidInput(f"{where}: {first.get('msg')}" if where else str(first.get("msg")))
        body: dict[str, object] = {**error.to_dict(), **({"field": where} if where else {})}
        return JSONResponse({"error": body}, status_code=error.status)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own refusals (a body it cannot parse: 400; an unknown path: 404; 405) would
        # otherwise answer {"detail": ...}; every error of the hub has one shape.
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return JSONResponse(
            {"error": {"code": code, "message": str(exc.detail)}},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return JSONResponse(
            {"error": {"code": "internal", "message": "internal error; see the hub's log"}},
            status_code=500,
        )


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def _add_wire_schemas(app: FastAPI) -> None:
    """Put the msgspec wire types into the OpenAPI components."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        _, components = msgspec.json.schema_components(
            [PushRequest, PushResponse, PullResponse, Record],
            ref_template="#/components/schemas/{name}",
        )
        schema.setdefault("components", {}).setdefault("schemas", {}).update(components)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


async def _purge_loop(store: HubStore, cfg: HubSettings) -> None:
    """Purge tombstones past their retention, now and then every purge interval."""
    while True:
        cutoff_ms = int((time.time() - cfg.tombstone_retention_s) * 1000)
        try:
            purged = await run_in_threadpool(store.purge_tombstones, cutoff_ms)
            if purged:
                log.info("purged %d tombstones older than the retention", purged)
        except TruthvaultError as exc:
            log.warning("tombstone purge failed: %s", exc)
        await asyncio.sleep(cfg.purge_interval_s)
