"""The hub's HTTP face: a FastAPI app over a :class:`~truthvault.hub.store.HubStore`."""

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal

import msgspec
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..clock import HybridClock
from ..errors import Forbidden, InvalidInput, PayloadTooLarge, RateLimited, TruthvaultError, Unauthorized
from ..model import MAX_INT64, PullResponse, PushRequest, PushResponse, Record, decode_push, encode
from ._device_routes import Text, add_device_routes
from ._guard import Guard, RateLimiter, RequestParts
from ._key_routes import add_key_routes
from .store import DeviceContext, HubStore, Limits

__all__ = ["HubSettings", "create_app"]

log = logging.getLogger("truthvault.hub")

_JSON = "application/json"
#: how a page with nothing in it begins (PullResponse's first two fields, empty)
_EMPTY_PAGE = b'{"items":[],"records":[]'


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


class _Notifier:
    """Wakes long-polling pulls of a tenant when a push to it commits.

    In-process events wake waiters at once; a short poll of the tenant's head covers
    pushes that committed in another hub process on the same PostgreSQL.
    """

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def notify(self, tenant_id: str) -> None:
        event = self._events.pop(tenant_id, None)
        if event is not None:
            event.set()

    def arm(self, tenant_id: str) -> asyncio.Event:
        """The event the next push to the tenant sets: take it before reading the head, so a
        push that commits between the read and the wait still wakes the waiter."""
        return self._events.setdefault(tenant_id, asyncio.Event())

    @staticmethod
    async def wait(event: asyncio.Event, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)


class ConflictResolveBody(BaseModel):
    """The body of ``POST /v1/sync/conflict-resolve``."""

    conflict_id: Text = Field(min_length=1, max_length=200, description="the conflict record's id")
    resolution: Literal["keep", "restore"] = Field(
        description="keep the current version, or restore the kept loser as a new user version"
    )


#: the error code of a refusal FastAPI or Starlette makes before the hub's code runs
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def _schema_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(exc: TruthvaultError) -> JSONResponse:
    return JSONResponse({"error": exc.to_dict()}, status_code=exc.status)


def create_app(store: HubStore, settings: HubSettings | None = None) -> FastAPI:
    """Build the hub app. The store is owned by the caller (closed by it)."""
    cfg = settings or HubSettings()
    notifier = _Notifier()
    clock = HybridClock()
    guard = Guard(store, cfg.signature_window_s, RateLimiter(cfg.rate_per_s, cfg.rate_burst))

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

    app = FastAPI(
        title="truthvault hub",
        version=__version__,
        description="Relays and mirrors what the devices of each tenant push. Every /v1 request "
        "but `POST /v1/enroll` and `POST /v1/enroll/recovery` (which take a one-time enrolment code) is "
        "authenticated as one device: enrolled devices sign each request "
        "(`X-TV-Device`, `X-TV-Timestamp`, `X-TV-Nonce`, `X-TV-Signature`); sessions that cannot "
        "sign send `Authorization: Bearer <access token>` (from `POST /v1/auth/token`), and "
        "devices added with `hub device add` their device token.",
        lifespan=lifespan,
    )

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
        return _error(InvalidInput(f"{where}: {first.get('msg')}" if where else str(first.get("msg"))))

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
        """Liveness: the hub is up and its database answers."""
        await run_in_threadpool(store.list_tenants)
        return {"status": "ok", "backend": store.backend, "version": __version__}

    @app.get("/v1/whoami", tags=["hub"])
    async def whoami(ctx: Device) -> dict[str, Any]:
        """The device and tenant this token belongs to, and the hub's limits."""
        return {
            **asdict(ctx),
            "max_payload_bytes": cfg.limits.max_payload_bytes,
            "max_batch_items": cfg.limits.max_batch_items,
            "server_time": clock.now(),
        }

    @app.post(
        "/v1/sync/push",
        tags=["sync"],
        response_class=Response,
        openapi_extra={
            "requestBody": {"required": True, "content": {_JSON: {"schema": _schema_ref("PushRequest")}}},
            "responses": {"200": {"content": {_JSON: {"schema": _schema_ref("PushResponse")}}}},
        },
    )
    async def push(request: Request) -> Response:
        """Apply a batch of SyncItems atomically and idempotently; one result per item."""
        req = await parts(request)

        def apply() -> tuple[DeviceContext, bytes]:
            # authentication, decoding and the write in one trip to the thread pool: pushes
            # are the other hot path
            request.state.ctx = ctx = guard.authenticate(req)
            batch = decode_push(req.body)
            result = store.push(ctx, batch, cfg.limits, time.time_ns() // 1_000_000)
            if batch.items:
                # canonical stamps sort as strings: observing the greatest is observing them all
                clock.observe(max(item.last_modified_at for item in batch.items))
            return ctx, encode(result)

        ctx, body = await run_in_threadpool(apply)
        notifier.notify(ctx.tenant_id)
        return Response(body, media_type=_JSON)

    @app.get(
        "/v1/sync/pull",
        tags=["sync"],
        response_class=Response,
        openapi_extra={"responses": {"200": {"content": {_JSON: {"schema": _schema_ref("PullResponse")}}}}},
    )
    async def pull(
        request: Request,
        since: Annotated[
            int, Query(ge=0, le=MAX_INT64, description="the cursor of the last pull (0: from the start)")
        ] = 0,
        limit: Annotated[int, Query(ge=1, description="at most this many changes")] = 1000,
        wait: Annotated[
            float, Query(ge=0, description="seconds to wait for a change when there is none")
        ] = 0,
        tag: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=64,
                pattern=r"^[0-9a-f]+$",
                description="the tag of the latest commit the device knows of (a pull page's or a "
                "push's); a hub whose history there is another one answers 410 hub_reset",
            ),
        ] = None,
        tag_seq: Annotated[
            int | None,
            Query(
                ge=0, le=MAX_INT64, description="the sequence number `tag` was given for (default: `since`)"
            ),
        ] = None,
    ) -> Response:
        """Changes after a cursor, in order, with the next cursor and `has_more`."""
        limit = min(limit, cfg.max_pull_limit)
        req = await parts(request)

        def first_page() -> tuple[DeviceContext, bytes]:
            # authentication and the read in one trip to the thread pool: pulls are the hot path
            ctx = guard.authenticate(req)
            return ctx, store.pull_raw(ctx, since, limit, tag, tag_seq)

        ctx, body = await run_in_threadpool(first_page)
        deadline = time.monotonic() + min(wait, cfg.max_wait_s)
        read_at = -1  # the head the last page was read at
        while wait and body.startswith(_EMPTY_PAGE) and time.monotonic() < deadline:
            # woken at once by a push here or (LISTEN/NOTIFY) in another hub; the periodic
            # re-read of the head is only a safety net
            event = notifier.arm(ctx.tenant_id)
            head = await run_in_threadpool(store.head, ctx.tenant_id)
            if head > since and head != read_at:
                # (a purged tombstone can leave the head past an empty page: read once a head)
                read_at = head
                body = await run_in_threadpool(store.pull_raw, ctx, since, limit, tag, tag_seq)
                continue
            await notifier.wait(event, min(deadline - time.monotonic(), 5.0))
        return Response(body, media_type=_JSON)

    @app.post("/v1/sync/conflict-resolve", tags=["sync"])
    async def conflict_resolve(body: ConflictResolveBody, ctx: Device) -> Response:
        """Close a conflict: keep the current version, or restore the kept loser."""
        record, item = await run_in_threadpool(
            store.resolve_conflict, ctx, body.conflict_id, body.resolution, clock.now()
        )
        notifier.notify(ctx.tenant_id)
        return Response(encode({"record": record, "item": item}), media_type=_JSON)

    @app.get("/v1/conflicts", tags=["sync"], response_class=Response)
    async def conflicts(
        ctx: Device,
        status: Annotated[Literal["open", "resolved", "all"], Query()] = "open",
        limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    ) -> Response:
        """The tenant's conflict records (U1-vs-U1 losers)."""
        records = await run_in_threadpool(
            store.list_records, ctx, "conflict", None if status == "all" else status, limit
        )
        return Response(encode(records), media_type=_JSON)

    @app.get("/v1/suggestions", tags=["sync"], response_class=Response)
    async def suggestions(
        ctx: Device,
        status: Annotated[Literal["open", "accepted", "rejected", "all"], Query()] = "open",
        limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    ) -> Response:
        """The tenant's suggestions (lower-level versions kept beside user truth)."""
        records = await run_in_threadpool(
            store.list_records, ctx, "suggestion", None if status == "all" else status, limit
        )
        return Response(encode(records), media_type=_JSON)

    @app.get("/v1/events", tags=["sync"])
    async def events(
        ctx: Device,
        since: Annotated[int, Query(ge=0, le=MAX_INT64)] = 0,
        limit: Annotated[int, Query(ge=1, le=10000)] = 100,
        type: Annotated[Text | None, Query(max_length=64, description="only this type (any case)")] = None,
        order: Annotated[
            Literal["oldest", "newest"],
            Query(
                description="oldest: the first `limit` after `since`, in order; newest: the last, newest first"
            ),
        ] = "oldest",
    ) -> list[dict[str, Any]]:
        """The tenant's sync events (SYNC_PUSH, CONFLICT_DETECTED, ...) after `since`, with device names."""
        found = await run_in_threadpool(store.events, ctx.tenant_id, since, limit, type, order == "newest")
        return [asdict(e) for e in found]

    add_device_routes(app, store, guard, device, parts, cfg.access_token_ttl_s)
    add_key_routes(app, store, device)
    _add_wire_schemas(app)
    return app


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
