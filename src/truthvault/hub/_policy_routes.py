"""The hub's policy endpoints: a tenant's Cedar policy, read by every device at sync and set by
the user (level 1), each set a new version."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ..clock import HybridClock
from ..kernel import PolicyVersion
from ..kernel._policy_compile import MAX_POLICY_CHARS
from ._device_routes import Text
from ._governance import run_for_device
from .store import DeviceContext, HubStore

__all__ = ["PolicyBody", "add_policy_routes"]


class PolicyBody(BaseModel):
    """The body of ``PUT /v1/policy``."""

    text: Text = Field(min_length=1, max_length=MAX_POLICY_CHARS, description="the policy, in Cedar")
    source: Text = Field(
        min_length=3, max_length=140, description="who sets it: a level-1 source such as user:cli"
    )


def _body(version: PolicyVersion, *, text: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {"version": version.version, "set_by": version.set_by, "set_at": version.set_at}
    if text:
        out["text"] = version.text
    return out


def add_policy_routes(
    app: FastAPI, store: HubStore, device: Callable[[Request], Awaitable[DeviceContext]], clock: HybridClock
) -> None:
    """Add /v1/policy to the app (authenticated, scoped to the caller's tenant)."""
    Device = Annotated[DeviceContext, Depends(device)]

    @app.get("/v1/policy", tags=["policy"])
    async def get_policy(
        ctx: Device,
        known: Annotated[int | None, Query(ge=0, description="the version the device holds")] = None,
    ) -> dict[str, Any]:
        """The tenant's policy in force: version (0: the default), text, who set it and when.
        With ``known`` equal to the version in force, the text is left out (``changed``: false)."""
        current = await run_in_threadpool(store.policy, ctx)
        changed = known != current.version
        return {**_body(current, text=changed), "changed": changed}

    @app.put("/v1/policy", tags=["policy"])
    async def put_policy(body: PolicyBody, ctx: Device) -> dict[str, Any]:
        """Set the tenant's policy: a new version. ``source`` must be a level-1 source; text
        Cedar cannot use is refused with the line named, and nothing changes."""
        done = await run_in_threadpool(
            run_for_device, store, clock, ctx, "policy.set", {"text": body.text}, body.source
        )
        return {"version": done["version"], "set_by": done["set_by"], "set_at": done["set_at"]}
