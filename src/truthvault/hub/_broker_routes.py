"""The hub's broker endpoints: devices post the requests they asked (and what became of them),
fetch their tenant's requests changed since a number, and decide one.

Every route is authenticated as one device and reads or writes only its tenant's requests.
A request travels without a form's values or a secret: the body models forbid extra fields.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from ..errors import StorageError
from ..kernel import KINDS, MAX_NEEDED, STATUSES, BrokerRequest, Risk
from ..model import MAX_INT64
from ._broker import HubBroker
from ._device_routes import Text
from .store import DeviceContext, HubStore

__all__ = ["add_broker_routes", "hub_broker"]

Kind = Literal["approval", "confirm", "pin", "form", "secret"]
Status = Literal["pending", "approved", "denied", "expired", "used"]
RiskName = Literal["read", "write", "destructive", "security"]
assert set(Kind.__args__) == set(KINDS) and set(Status.__args__) == set(STATUSES)  # type: ignore[attr-defined]
assert set(RiskName.__args__) == {r.value for r in Risk}  # type: ignore[attr-defined]

# Text refuses NUL, which PostgreSQL cannot store in a text column
_Short = Annotated[Text, Field(max_length=200)]
_Long = Annotated[Text, Field(max_length=500)]


class TargetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entity_id: _Short
    entity_type: _Short = ""
    version: int = Field(default=0, ge=0, le=MAX_INT64)
    level: int | None = Field(default=None, ge=1, le=5)


class ApprovalBody(BaseModel):
    """One device's approval of a request that needs several, with its seal made there."""

    model_config = ConfigDict(extra="forbid")
    by: _Short = Field(min_length=1)
    device: _Short = Field(min_length=1)
    at: float = Field(ge=0)
    seal: _Short | None = None
    name: _Short | None = Field(
        default=None, description="the device's name as the hub knows it (not sealed)"
    )


class RequestBody(BaseModel):
    """One request as it travels: never a form's values or a secret."""

    model_config = ConfigDict(extra="forbid")
    id: _Short = Field(min_length=1)
    kind: Kind
    action: _Short
    risk: RiskName
    source: _Short = Field(min_length=1)
    device_id: _Short
    reason: _Long = ""
    input_hash: Annotated[Text, Field(max_length=128)] = ""
    targets: list[TargetBody] = Field(default_factory=list, max_length=1000)
    fields: list[_Short] = Field(default_factory=list, max_length=100)
    created_at: float = Field(ge=0)
    expires_at: float = Field(ge=0)
    status: Status = "pending"
    decided_by: _Short | None = None
    decided_device: _Short | None = None
    decided_at: float | None = Field(default=None, ge=0)
    deny_reason: _Long | None = None
    provided: bool = False
    seal: _Short | None = None
    needed: int = Field(
        default=1, ge=1, le=MAX_NEEDED, description="approvals from distinct devices it needs"
    )
    approvals: list[ApprovalBody] = Field(default_factory=list, max_length=2 * MAX_NEEDED)


class PostBody(BaseModel):
    """The body of ``POST /v1/approvals``."""

    model_config = ConfigDict(extra="forbid")
    requests: list[RequestBody] = Field(max_length=1000)


class DecideBody(BaseModel):
    """The body of ``POST /v1/approvals/decide``."""

    model_config = ConfigDict(extra="forbid")
    request_id: _Short = Field(min_length=1, description="the request's id")
    decision: Literal["approve", "deny"]
    source: _Short = Field(min_length=1, description="who decides: a level-1 source such as user:cli")
    reason: _Long | None = Field(default=None, description="why it is denied (required to deny)")
    decided_at: float | None = Field(default=None, ge=0, description="when the device decided (sealed)")
    seal: _Short | None = Field(
        default=None, description="the deciding device's seal of the decision, which the hub relays"
    )


def hub_broker(store: HubStore) -> HubBroker:
    """The store's broker (every store the hub opens has one)."""
    broker = getattr(store, "broker", None)
    if not isinstance(broker, HubBroker):
        raise StorageError("this hub store has no input broker")
    return broker


def _wire(seq: int | None, request: BrokerRequest) -> dict[str, Any]:
    body = request.to_wire()
    if seq is not None:
        body["seq"] = seq
    return body


def add_broker_routes(
    app: FastAPI, store: HubStore, device: Callable[[Request], Awaitable[DeviceContext]]
) -> None:
    """Add ``POST /v1/approvals``, ``GET /v1/approvals`` and ``POST /v1/approvals/decide``."""
    Device = Annotated[DeviceContext, Depends(device)]
    broker = hub_broker(store)

    @app.post("/v1/approvals", tags=["approvals"])
    async def post_requests(body: PostBody, ctx: Device) -> dict[str, Any]:
        """Requests this device asked, and what became of them here (decided, used, expired)."""
        requests = [BrokerRequest.from_wire(r.model_dump(), ctx.tenant_id) for r in body.requests]
        held = await run_in_threadpool(broker.post, ctx, requests)
        return {"requests": [_wire(None, r) for r in held]}

    @app.get("/v1/approvals", tags=["approvals"])
    async def list_requests(
        ctx: Device,
        since: Annotated[int, Query(ge=0, le=MAX_INT64, description="the last change number seen")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 500,
        status: Annotated[Literal["pending", "all"], Query()] = "all",
    ) -> dict[str, Any]:
        """The tenant's requests changed after `since`, in order, each with its change number
        (`seq`); `cursor` is the last one (`since` when there is none)."""
        changes = await run_in_threadpool(broker.changes, ctx, since, limit)
        cursor = changes[-1][0] if changes else since
        shown = [(seq, r) for seq, r in changes if status == "all" or r.status == "pending"]
        return {
            "requests": [_wire(seq, r) for seq, r in shown],
            "cursor": cursor,
            "has_more": len(changes) == limit,
        }

    @app.post("/v1/approvals/decide", tags=["approvals"])
    async def decide(body: DecideBody, ctx: Device) -> dict[str, Any]:
        """Approve or deny a pending request as a level-1 source; the hub records this device
        as the one that decided. 403 below level 1, 409 when it is no longer pending."""
        decided = await run_in_threadpool(
            lambda: broker.decide(
                ctx,
                body.request_id,
                approve=body.decision == "approve",
                source=body.source,
                reason=body.reason,
                decided_at=body.decided_at,
                seal=body.seal,
            )
        )
        return {"request": _wire(None, decided)}
