"""The audit log's endpoints, each authenticated as one device and scoped to its tenant:

- ``GET /v1/audit/checkpoint``: the tenant's tree head (size, root, time) signed by the hub;
- ``GET /v1/audit/proof?index=N&size=S``: an inclusion proof, with the entry;
- ``GET /v1/audit/consistency?first=A&second=B``: a consistency proof;
- ``GET /v1/audit/entries?from=I&limit=L``: entries in order;
- ``POST /v1/audit/entries``: a batch of entries the device signed (checked against the key
  the device enrolled with) appended once.

The hub signs checkpoints with a key of its own (:class:`CheckpointKey`), kept in a file
readable by the hub's owner only, which every hub process of one database must share.
"""

import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import msgspec
from fastapi import Depends, FastAPI, Query, Request
from starlette.concurrency import run_in_threadpool

from ..crypto import DeviceKeys
from ..errors import Forbidden, InvalidInput, NotFound
from ..kernel import Checkpoint, DeviceBatch, sign_checkpoint
from ..model import MAX_INT64
from .store import DeviceContext, HubStore

__all__ = ["CheckpointKey", "add_audit_routes"]

log = logging.getLogger("truthvault.hub")

_batch_decoder = msgspec.json.Decoder(DeviceBatch)
#: entries a page of GET /v1/audit/entries holds at most
MAX_ENTRIES_PAGE = 1000


class CheckpointKey:
    """The hub's Ed25519 key for checkpoints, in a 0600 file (made on first use)."""

    def __init__(self, keys: DeviceKeys) -> None:
        self._keys = keys
        self.public = keys.public_bundle()["sign"]

    @classmethod
    def at(cls, path: str | Path) -> "CheckpointKey":
        """The key in the file at ``path``, made there (mode 0600) if there is none."""
        target = Path(path).expanduser()
        if not target.exists():
            try:
                DeviceKeys.generate().save(target)
                log.info("made the hub's audit checkpoint key at %s: keep it, devices trust it", target)
            except Exception:  # another hub process made it first
                if not target.exists():
                    raise
        return cls(DeviceKeys.load(target))

    @classmethod
    def ephemeral(cls) -> "CheckpointKey":
        """A key that lives as long as this process (tests, a hub run as a library without one)."""
        return cls(DeviceKeys.generate())

    def sign(self, tenant_id: str, size: int, root: bytes) -> Checkpoint:
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return sign_checkpoint(self._keys.sign, self.public, tenant_id, size, root, at)


Index = Annotated[int, Query(ge=0, le=MAX_INT64, description="the entry's index, from 0")]
Size = Annotated[int, Query(ge=1, le=MAX_INT64, description="the tree size the proof is for")]


def add_audit_routes(
    app: FastAPI, store: HubStore, key: CheckpointKey, device: Callable[..., Awaitable[DeviceContext]]
) -> None:
    """Add the /v1/audit endpoints."""
    Device = Annotated[DeviceContext, Depends(device)]
    _add_read_routes(app, store, key, Device)
    _add_append_route(app, store, Device)


def _add_read_routes(app: FastAPI, store: HubStore, key: CheckpointKey, Device: Any) -> None:
    audit = store.audit

    def _checkpoint(ctx: DeviceContext) -> dict[str, Any]:
        store.audit_queue.flush(ctx.tenant_id)  # what this device's pushes queued is in it
        size, root = audit.head(ctx.tenant_id)
        return msgspec.to_builtins(key.sign(ctx.tenant_id, size, root))  # type: ignore[no-any-return]

    @app.get("/v1/audit/checkpoint", tags=["audit"])
    async def checkpoint(ctx: Device) -> dict[str, Any]:
        """The tenant's audit log head (size, root) signed by the hub's checkpoint key."""
        return await run_in_threadpool(_checkpoint, ctx)

    @app.get("/v1/audit/proof", tags=["audit"])
    async def proof(ctx: Device, index: Index, size: Size) -> dict[str, Any]:
        """The inclusion proof of entry ``index`` in the tree of ``size`` entries, and the entry."""

        def run() -> dict[str, Any]:
            path = audit.inclusion(ctx.tenant_id, index, size)
            entry = audit.entries(ctx.tenant_id, index, 1)[0]
            return {
                "index": index,
                "size": size,
                "entry": entry.entry.decode(),
                "proof": [p.hex() for p in path],
            }

        return await run_in_threadpool(run)

    @app.get("/v1/audit/consistency", tags=["audit"])
    async def consistency(
        ctx: Device,
        first: Annotated[int, Query(ge=0, le=MAX_INT64, description="the older tree size")],
        second: Annotated[int, Query(ge=0, le=MAX_INT64, description="the newer tree size")],
    ) -> dict[str, Any]:
        """The consistency proof from the tree of ``first`` entries to the tree of ``second``."""
        path = await run_in_threadpool(audit.consistency, ctx.tenant_id, first, second)
        return {"first": first, "second": second, "proof": [p.hex() for p in path]}

    @app.get("/v1/audit/entries", tags=["audit"])
    async def entries(
        ctx: Device,
        start: Annotated[int, Query(alias="from", ge=0, le=MAX_INT64, description="the first index")] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_ENTRIES_PAGE, description="at most this many")] = 100,
    ) -> dict[str, Any]:
        """Entries of the tenant's log from index ``from``, in order."""
        found = await run_in_threadpool(audit.entries, ctx.tenant_id, start, limit)
        return {
            "entries": [
                {"index": e.index, "entry": e.entry.decode(), "device": e.device_id, "batch": e.batch_seq}
                for e in found
            ]
        }


def _add_append_route(app: FastAPI, store: HubStore, Device: Any) -> None:
    @app.post("/v1/audit/entries", tags=["audit"])
    async def append(ctx: Device, request: Request) -> dict[str, Any]:
        """Append a batch of entries this device signed (once, however often it is sent)."""
        body = await request.body()
        try:
            batch = _batch_decoder.decode(body)
        except msgspec.DecodeError as exc:
            raise InvalidInput(f"body: {exc}") from None
        if batch.tenant != ctx.tenant_id or batch.device != ctx.device_id:
            raise Forbidden("an audit batch must be of this device and its tenant")

        def run() -> dict[str, Any]:
            auth = store.device_keys(ctx.device_id)
            if auth is None or not auth.sign_public:
                raise NotFound("this device has no signing key: only enrolled devices append audit entries")
            first, new = store.audit.append_batch(batch, auth.sign_public)
            return {"first": first, "count": len(batch.entries), "appended": new}

        return await run_in_threadpool(run)
