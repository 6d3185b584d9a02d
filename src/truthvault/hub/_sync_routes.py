"""The hub's sync endpoints: push, pull (with its long poll), conflicts, suggestions, events."""

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..clock import HybridClock
from ..model import MAX_INT64, PullResponse, decode_push, encode
from ._device_routes import Text
from ._governance import run_for_device
from ._guard import Guard, RequestParts
from .store import DeviceContext, HubStore, Limits

__all__ = ["ConflictResolveBody", "Notifier", "add_pull_route", "add_push_route", "add_record_routes"]

_JSON = "application/json"
#: how a page with nothing in it begins: a PullResponse (the page's one definition) up to its
#: items and records, empty
_EMPTY_PAGE = encode(PullResponse(items=[], records=[], cursor=0, has_more=False, head=0)).partition(
    b',"cursor"'
)[0]

Parts = Callable[[Request], Awaitable[RequestParts]]


def schema_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


class Notifier:
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


Since = Annotated[
    int, Query(ge=0, le=MAX_INT64, description="the cursor of the last pull (0: from the start)")
]
Limit = Annotated[int, Query(ge=1, description="at most this many changes")]
Wait = Annotated[float, Query(ge=0, description="seconds to wait for a change when there is none")]
Tag = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        pattern=r"^[0-9a-f]+$",
        description="the tag of the latest commit the device knows of (a pull page's or a "
        "push's); a hub whose history there is another one answers 410 hub_reset",
    ),
]
TagSeq = Annotated[
    int | None,
    Query(ge=0, le=MAX_INT64, description="the sequence number `tag` was given for (default: `since`)"),
]


def add_push_route(
    app: FastAPI,
    store: HubStore,
    limits: Limits,
    guard: Guard,
    clock: HybridClock,
    notifier: Notifier,
    parts: Parts,
) -> None:
    """Add ``POST /v1/sync/push``."""

    @app.post(
        "/v1/sync/push",
        tags=["sync"],
        response_class=Response,
        openapi_extra={
            "requestBody": {"required": True, "content": {_JSON: {"schema": schema_ref("PushRequest")}}},
            "responses": {"200": {"content": {_JSON: {"schema": schema_ref("PushResponse")}}}},
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
            result = store.push(ctx, batch, limits, time.time_ns() // 1_000_000)
            if batch.items:
                # canonical stamps sort as strings: observing the greatest is observing them all
                clock.observe(max(item.last_modified_at for item in batch.items))
            return ctx, encode(result)

        ctx, body = await run_in_threadpool(apply)
        notifier.notify(ctx.tenant_id)
        return Response(body, media_type=_JSON)


def add_pull_route(
    app: FastAPI,
    store: HubStore,
    max_limit: int,
    max_wait_s: float,
    guard: Guard,
    notifier: Notifier,
    parts: Parts,
) -> None:
    """Add ``GET /v1/sync/pull``, long-polling for ``wait`` seconds when there is nothing new."""

    @app.get(
        "/v1/sync/pull",
        tags=["sync"],
        response_class=Response,
        openapi_extra={"responses": {"200": {"content": {_JSON: {"schema": schema_ref("PullResponse")}}}}},
    )
    async def pull(
        request: Request,
        since: Since = 0,
        limit: Limit = 1000,
        wait: Wait = 0,
        tag: Tag = None,
        tag_seq: TagSeq = None,
    ) -> Response:
        """Changes after a cursor, in order, with the next cursor and `has_more`."""
        limit = min(limit, max_limit)
        req = await parts(request)

        def first_page() -> tuple[DeviceContext, bytes]:
            # authentication and the read in one trip to the thread pool: pulls are the hot path
            ctx = guard.authenticate(req)
            return ctx, store.pull_raw(ctx, since, limit, tag, tag_seq)

        ctx, body = await run_in_threadpool(first_page)
        deadline = time.monotonic() + min(wait, max_wait_s)
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


def add_record_routes(
    app: FastAPI,
    store: HubStore,
    clock: HybridClock,
    notifier: Notifier,
    device: Callable[[Request], Awaitable[DeviceContext]],
) -> None:
    """Add conflict resolution, the lists of conflicts and suggestions, and the event feed."""
    Device = Annotated[DeviceContext, Depends(device)]
    Max = Annotated[int, Query(ge=1, le=10000)]

    @app.post("/v1/sync/conflict-resolve", tags=["sync"])
    async def conflict_resolve(body: ConflictResolveBody, ctx: Device) -> Response:
        """Close a conflict: keep the current version, or restore the kept loser."""
        params = {"conflict_id": body.conflict_id, "resolution": body.resolution}
        done = await run_in_threadpool(run_for_device, store, clock, ctx, "conflict.resolve", params)
        notifier.notify(ctx.tenant_id)
        return Response(encode({"record": done["record"], "item": done["item"]}), media_type=_JSON)

    @app.get("/v1/conflicts", tags=["sync"], response_class=Response)
    async def conflicts(
        ctx: Device,
        status: Annotated[Literal["open", "resolved", "all"], Query()] = "open",
        limit: Max = 1000,
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
        limit: Max = 1000,
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
