"""The hub's health: ``/readyz`` (can it serve: is its database reachable?) and ``/diagz`` (the
admin's view: the database, the workflow backlog, the dead letters, the last audit check, each
device's sync lag). ``/healthz`` (liveness: the process answers) is the app's own.

``/readyz`` is unauthenticated, so a refusal says only what is wrong, never where the database
is (the detail is logged); ``/diagz`` takes the hub admin's token (``hub admin-token``).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..clock import parse_stamp
from ..errors import StorageError, TruthvaultError, Unauthorized
from . import migrations
from .store import HubStore

__all__ = ["add_health_routes", "diagnostics", "readiness", "workflow_backlog"]

log = logging.getLogger("truthvault.hub")

#: DBOS's state of a workflow -> the backlog bucket it counts in
_BACKLOG = {"PENDING": "running", "ENQUEUED": "queued", "DELAYED": "queued"}
_SAGA = "truthvault.saga"


def readiness(store: HubStore) -> tuple[bool, dict[str, Any]]:
    """Whether the hub can serve: its database answers a new connection, at the schema this
    code needs. The body to answer (the detail of a failure is logged, not answered)."""
    try:
        revision = store.database.ping()  # type: ignore[attr-defined]
    except TruthvaultError as exc:
        log.error("not ready: %s", exc.message)
        return False, {"status": "unavailable", "error": {"code": "not_ready", "message": "the database is unreachable"}}  # fmt: skip
    if revision != migrations.HEAD_REVISION:
        log.error("not ready: schema revision %s, this hub needs %s", revision, migrations.HEAD_REVISION)
        message = f"the database is at schema revision {revision}, this hub needs {migrations.HEAD_REVISION}"
        return False, {"status": "unavailable", "error": {"code": "not_ready", "message": message}}
    return True, {"status": "ready", "backend": store.backend, "schema_revision": revision}


def _hub_url(store: HubStore) -> str:
    database = store.database  # type: ignore[attr-defined]
    url = getattr(database, "url", None)
    return str(url) if url else str(Path(database.path))


def workflow_backlog(hub_url: str) -> dict[str, Any]:
    """How many of the hub's workflows are running and queued, read from DBOS's tables (none
    yet when no workflow ever ran)."""
    from ._workflows import dbos_url

    url, schema = dbos_url(hub_url)
    counts = {"running": 0, "queued": 0}
    sql = "SELECT status, count(*) FROM {table} WHERE name = {p} GROUP BY status"
    try:
        if schema is None:
            path = Path(url.removeprefix("sqlite:///"))
            if not path.is_file():
                return {**counts, "kept": False}
            with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as c:
                rows = c.execute(sql.format(table="workflow_status", p="?"), (_SAGA,)).fetchall()
        else:
            import psycopg

            with psycopg.connect(url, autocommit=True, connect_timeout=3) as conn:
                found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}".workflow_status',))
                if not (found.fetchone() or (False,))[0]:
                    return {**counts, "kept": False}
                table = f'"{schema}".workflow_status'
                rows = conn.execute(sql.format(table=table, p="%s"), (_SAGA,)).fetchall()
    except Exception as exc:  # DBOS's database: another engine's, whatever its driver raises
        log.warning("cannot read the workflow backlog: %s", exc)
        return {**counts, "kept": True, "error": "cannot read the workflow database"}
    for status, n in rows:
        bucket = _BACKLOG.get(str(status))
        if bucket:
            counts[bucket] += int(n)
    return {**counts, "kept": True}


def _device_lag(store: HubStore, now: float) -> list[dict[str, Any]]:
    """Each device of each tenant: when it was last seen and last synced, and how long ago."""
    database = store.database  # type: ignore[attr-defined]
    with database.read() as db:
        devices = db.execute(
            "SELECT t.name, t.pk, d.id, d.name, d.last_seen_at, d.revoked FROM devices d "
            "JOIN tenants t ON t.pk = d.tenant_pk ORDER BY t.name, d.name"
        ).fetchall()
        synced = db.execute(
            "SELECT tenant_pk, device_id, MAX(at) FROM sync_events "
            "WHERE type IN ('SYNC_PUSH', 'SYNC_PULL') GROUP BY tenant_pk, device_id"
        ).fetchall()
    last_sync = {(int(pk), str(d)): str(at) for pk, d, at in synced if d}
    shown = []
    for tenant, pk, device_id, name, seen, revoked in devices:
        synced_at = last_sync.get((int(pk), str(device_id)))
        newest = max((s for s in (seen, synced_at) if s), default=None)
        lag = None if newest is None else max(0.0, now - parse_stamp(newest)[0] / 1000)
        shown.append(
            {"tenant": tenant, "device": name, "device_id": device_id, "revoked": bool(revoked),
             "last_seen_at": seen, "last_sync_at": synced_at,
             "lag_s": None if lag is None else round(lag, 1)}
        )  # fmt: skip
    return shown


def diagnostics(store: HubStore, now: float | None = None) -> dict[str, Any]:
    """What ``/diagz`` shows (each part on its own: one that fails says so, the others stand)."""
    now = time.time() if now is None else now
    out: dict[str, Any] = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}
    try:
        revision = store.database.ping()  # type: ignore[attr-defined]
        out["database"] = {"backend": store.backend, "reachable": True, "schema_revision": revision,
                           "schema_current": revision == migrations.HEAD_REVISION}  # fmt: skip
    except TruthvaultError as exc:
        out["database"] = {"backend": store.backend, "reachable": False, "error": exc.message}
        return out  # nothing else can be read
    out["workflows"] = workflow_backlog(_hub_url(store))
    counts = store.dead_letters.counts()
    out["dead_letters"] = {**counts, "total": sum(counts.values())}
    last = store.admin.last_verification()
    out["audit"] = {
        "pending": store.audit_queue.pending(),
        "last_verification": None if last is None else
        {"at": last.at, "ok": last.ok, "tenants": last.tenants, "entries": last.entries, "detail": last.detail},
    }  # fmt: skip
    out["devices"] = _device_lag(store, now)
    out["webhooks"] = store.webhooks.backlog()  # deliveries their devices have not taken yet
    return out


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("this needs the hub's admin token", hint="make one: 'truthvault hub admin-token'")
    return token.strip()


def add_health_routes(app: FastAPI, store: HubStore) -> None:
    """Add ``/readyz`` and ``/diagz``."""

    @app.get("/readyz", tags=["hub"])
    async def readyz() -> JSONResponse:
        """Readiness: 200 when the database answers a new connection at the schema this hub
        needs; 503, with a JSON message, when it does not."""
        ok, body = await run_in_threadpool(readiness, store)
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/diagz", tags=["hub"], response_model=None)
    async def diagz(request: Request) -> dict[str, Any] | JSONResponse:
        """The admin's view (``Authorization: Bearer <admin token>``): the database, the
        workflow backlog, the dead letters, the last audit verification, each device's lag.
        503 while the database is unreachable (the token is checked there), as ``/readyz``."""
        token = _bearer(request)
        try:
            await run_in_threadpool(store.admin.authenticate, token)
        except StorageError as exc:
            log.error("diagz: the admin token cannot be checked: %s", exc.message)
            message = "the database is unreachable, so the admin token cannot be checked: see /readyz"
            return JSONResponse(
                {"status": "unavailable", "error": {"code": "not_ready", "message": message}}, status_code=503
            )
        except Unauthorized:
            await run_in_threadpool(store.add_security_event, "ADMIN_AUTH_FAILED", detail={"path": "/diagz"})
            raise
        return await run_in_threadpool(diagnostics, store)
