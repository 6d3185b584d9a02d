"""``POST /v1/actions/{name}``: a device runs a hub action through the kernel; each action is
in the OpenAPI document with its input and output schema."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool

from ..clock import HybridClock
from ..kernel import ActionSpec, ValidationFailed
from ._actions import HUB_ACTIONS, HubScope
from ._governance import device_actor, hub_kernel
from .store import DeviceContext, HubStore

__all__ = ["add_action_routes"]

#: actions whose success changes what devices pull: waiting pulls are woken
_CHANGES_FEED = {"conflict.resolve"}


def _body_schema(spec: ActionSpec[HubScope, Any, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["input"],
        "additionalProperties": False,
        "properties": {
            "input": spec.input.model_json_schema(ref_template="#/components/schemas/{model}"),
            "source": {"type": "string", "description": "who acts (default user:device)"},
            "approval": {"type": "string", "description": "an approved request to redeem"},
        },
    }


def _parse(body: bytes) -> tuple[dict[str, Any], str | None, str | None]:
    try:
        data = msgspec.json.decode(body) if body else {}
    except msgspec.DecodeError as exc:
        raise ValidationFailed(f"body: not JSON ({exc})", field="body") from None
    if not isinstance(data, dict):
        raise ValidationFailed("body: must be a JSON object", field="body")
    extra = set(data) - {"input", "source", "approval"}
    if extra:
        raise ValidationFailed(
            f"{sorted(extra)[0]}: not a field of an action request", field=sorted(extra)[0]
        )
    params, source, approval = data.get("input", {}), data.get("source"), data.get("approval")
    for name, value in (("source", source), ("approval", approval)):
        if value is not None and not isinstance(value, str):
            raise ValidationFailed(f"{name}: must be a string", field=name)
    if not isinstance(params, dict):
        raise ValidationFailed("input: must be a JSON object", field="input")
    return params, source, approval


def add_action_routes(
    app: FastAPI,
    store: HubStore,
    clock: HybridClock,
    notify: Callable[[str], None],
    device: Callable[[Request], Awaitable[DeviceContext]],
) -> None:
    """Add ``GET /v1/actions`` and one ``POST /v1/actions/{name}`` per hub action."""

    @app.get("/v1/actions", tags=["actions"])
    async def actions() -> list[dict[str, Any]]:
        """The hub's actions with their contracts (version, risk, input and output schema)."""
        return [spec.schema() for spec in HUB_ACTIONS]

    for spec in HUB_ACTIONS:
        _add_one(app, spec, store, clock, notify, device)


def _add_one(
    app: FastAPI,
    spec: ActionSpec[HubScope, Any, Any],
    store: HubStore,
    clock: HybridClock,
    notify: Callable[[str], None],
    device: Callable[[Request], Awaitable[DeviceContext]],
) -> None:
    async def run(request: Request) -> dict[str, Any]:
        ctx = await device(request)
        params, source, approval = _parse(await request.body())
        kernel = hub_kernel(store, HubScope(store, ctx.tenant_name, ctx.tenant_id, ctx), clock)
        actor = device_actor(ctx, source)
        result = await run_in_threadpool(
            lambda: kernel.run(spec.name, params, actor=actor, approval=approval)
        )
        if spec.name in _CHANGES_FEED:
            notify(ctx.tenant_id)
        out: dict[str, Any] = result.model_dump(mode="json")
        return out

    app.add_api_route(
        f"/v1/actions/{spec.name}",
        run,
        methods=["POST"],
        tags=["actions"],
        summary=spec.summary,
        description=f"{spec.summary}\n\ncontract {spec.version}, risk {spec.risk}",
        response_model=spec.output,
        operation_id=f"action_{spec.name.replace('.', '_')}",
        openapi_extra={
            "requestBody": {"required": True, "content": {"application/json": {"schema": _body_schema(spec)}}}
        },
    )
