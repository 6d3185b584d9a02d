"""The hub's entity contract endpoints: a tenant's contract versions, adding one (checked for
breaking changes against every version its devices use), and what a device writes under."""

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, Field, field_validator
from starlette.concurrency import run_in_threadpool

from ..clock import HybridClock
from ..kernel import Contract
from ._auth import iso_s
from ._contracts import DeviceReport
from ._device_routes import Text
from ._governance import run_for_device
from .store import DeviceContext, HubStore

__all__ = ["ContractBody", "ContractUseBody", "add_contract_routes"]

_TYPE = r"^[a-z][a-z0-9_.-]{0,63}$"


class ContractBody(BaseModel):
    """The body of ``POST /v1/contracts/{entity_type}``."""

    json_schema: dict[str, Any] = Field(
        alias="schema", description='the new version\'s JSON Schema (Draft 2020-12, "type": "object")'
    )
    major: bool = Field(default=False, description="a new major version: breaking changes are allowed")
    source: Text = Field(
        default="user:cli", min_length=1, max_length=200, description="who adds it: a user source (level 1)"
    )


class ContractUseBody(BaseModel):
    """The body of ``PUT /v1/contract-use``."""

    held: dict[Text, list[int]] = Field(
        max_length=1000, description="entity type -> the contract versions this device writes under"
    )
    # What else a device reports at sync (offline governance); an older client sends none of it.
    app_version: Text | None = Field(
        default=None, min_length=1, max_length=64, description="the device's truthvault version"
    )
    last_sync_at: AwareDatetime | None = Field(
        default=None, description="when the device last synced before this sync (ISO 8601 with a zone)"
    )
    pending: int | None = Field(default=None, ge=0, le=2**31 - 1, description="changes it holds unsynced")
    parked: int | None = Field(default=None, ge=0, le=2**31 - 1, description="items it parked")

    @field_validator("last_sync_at")
    @classmethod
    def _plausible(cls, value: datetime | None) -> datetime | None:
        # a far year overflows once moved to UTC (year 0, 10000), and no sync happened before 2000
        if value is not None and not 2000 <= value.year <= 9000:
            raise ValueError("must be a time between the years 2000 and 9000")
        return value

    def status(self) -> DeviceReport | None:
        """What the device reported besides its versions, None when it reported none of it."""
        if (
            self.app_version is None
            and self.last_sync_at is None
            and self.pending is None
            and self.parked is None
        ):
            return None
        return DeviceReport(
            app_version=self.app_version,
            previous_sync_at=None if self.last_sync_at is None else iso_s(self.last_sync_at.timestamp()),
            pending=self.pending or 0,
            parked=self.parked or 0,
        )


def _said(marker: int, contract: Contract) -> dict[str, Any]:
    return {"marker": marker, **contract.to_dict()}


def add_contract_routes(
    app: FastAPI, store: HubStore, device: Callable[[Request], Awaitable[DeviceContext]], clock: HybridClock
) -> None:
    """Add /v1/contracts and /v1/contract-use (authenticated, scoped to the caller's tenant)."""
    Device = Annotated[DeviceContext, Depends(device)]

    @app.get("/v1/contracts", tags=["contracts"])
    async def list_contracts(
        ctx: Device, since: Annotated[int, Query(ge=0, le=2**53 - 1)] = 0
    ) -> dict[str, Any]:
        """The tenant's contract versions after marker ``since`` (all by default; the built-in
        note and task v1 come with the code), the highest marker, and the versions in use."""
        found = await run_in_threadpool(store.contracts.list, ctx.tenant_id, since)
        in_use = await run_in_threadpool(store.contracts.in_use, ctx.tenant_id)
        return {
            "contracts": [_said(m, c) for m, c in found],
            "marker": max([m for m, _ in found], default=since),
            "in_use": {t: {str(v): n for v, n in vs.items()} for t, vs in in_use.items()},
        }

    @app.post("/v1/contracts/{entity_type}", tags=["contracts"], status_code=201)
    async def add_contract(
        entity_type: Annotated[str, Path(pattern=_TYPE)], body: ContractBody, ctx: Device
    ) -> dict[str, Any]:
        """Add the next version of a type's contract. It is checked against the newest version
        and every version a device of the tenant uses; a breaking change is refused (409
        breaking_change, listing what breaks) unless ``major``. Only a user source adds one."""
        params = {"type": entity_type, "schema": body.json_schema, "major": body.major}
        done = await run_in_threadpool(run_for_device, store, clock, ctx, "contract.add", params, body.source)
        return {"marker": done["marker"], **done["contract"]}

    @app.put("/v1/contract-use", tags=["contracts"])
    async def report_use(body: ContractUseBody, ctx: Device) -> dict[str, int]:
        """What this device writes under now, per type (it replaces what the hub noted of it),
        and, from a current device, its app version, last sync and unsynced changes."""
        noted = await run_in_threadpool(store.contracts.report, ctx, body.held, body.status())
        return {"noted": noted}
