"""The hub's health, for real: /readyz answers 503 when the database cannot be reached (a
PostgreSQL database whose connections were terminated and that takes no new ones; a SQLite file
moved away) and 200 again once it can; /healthz stays liveness; /diagz needs the admin token."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from truthvault.hub import migrations
from truthvault.hub.app import create_app
from truthvault.hub.store import HubStore, open_store

from ..conftest import PG_SERVER, _with_database

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def client(hub_store: HubStore) -> Iterator[TestClient]:
    with TestClient(create_app(hub_store)) as c:
        yield c


def test_readyz_answers_200_with_the_schema_revision(client: TestClient, hub_store: HubStore) -> None:
    answer = client.get("/readyz")
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ready",
        "backend": hub_store.backend,
        "schema_revision": migrations.HEAD_REVISION,
    }


def test_readyz_is_503_while_a_sqlite_hub_file_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    store = open_store(str(path))
    try:
        with TestClient(create_app(store)) as client:
            assert client.get("/readyz").status_code == 200
            os.rename(path, tmp_path / "moved.db")  # the process's open connections still read it
            answer = client.get("/readyz")
            assert answer.status_code == 503
            assert answer.json()["error"] == {"code": "not_ready", "message": "the database is unreachable"}
            assert client.get("/healthz").status_code == 200  # liveness: the process answers
            os.rename(tmp_path / "moved.db", path)
            assert client.get("/readyz").status_code == 200
    finally:
        store.close()


@pytest.mark.postgres
def test_readyz_is_503_while_postgresql_takes_no_connections() -> None:
    name = f"tv_ready_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_SERVER, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            store = open_store(_with_database(PG_SERVER, name))
            try:
                with TestClient(create_app(store)) as client:
                    assert client.get("/readyz").status_code == 200
                    admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
                    admin.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
                    )
                    answer = client.get("/readyz")
                    assert answer.status_code == 503
                    assert answer.json()["error"]["code"] == "not_ready"
                    assert name not in answer.text  # where the database is stays in the log
                    token = "tvadm_" + "x" * 20
                    assert client.get("/healthz").status_code == 200
                    diag = client.get("/diagz", headers={"Authorization": f"Bearer {token}"})
                    assert diag.status_code == 503 and diag.json()["error"]["code"] == "not_ready"
                    assert name not in diag.text
                    admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
                    assert client.get("/readyz").status_code == 200
            finally:
                store.close()
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_diagz_needs_the_admin_token(client: TestClient, hub_store: HubStore) -> None:
    answer = client.get("/diagz")
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized"
    _device, token = hub_store.add_device(hub_store.add_tenant("acme", "cloud_first").name, "laptop")
    # a device's token is not the admin's
    assert client.get("/diagz", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    assert client.get("/diagz", headers={"Authorization": "Bearer tvadm_guessed"}).status_code == 401
    assert "ADMIN_AUTH_FAILED" in [e.type for e in hub_store.security_events()]
    _made, secret = hub_store.admin.create_token("ops")
    assert client.get("/diagz", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    hub_store.admin.revoke_token("ops")
    assert client.get("/diagz", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
    assert secret not in str(hub_store.admin.tokens())


def test_diagz_shows_database_backlog_dead_letters_audit_and_device_lag(
    client: TestClient, hub_store: HubStore
) -> None:
    acme = hub_store.add_tenant("acme", "cloud_first")
    laptop, _ = hub_store.add_device("acme", "laptop")
    hub_store.add_device("acme", "phone")
    hub_store.add_event(acme.id, "SYNC_PUSH", {"items": 1}, laptop.id)
    hub_store.dead_letters.add("workflow", "wf-1", "tenant.provision/policy (run)", "boom", {}, 3)
    hub_store.admin.record_verification(True, 1, 12, {"tenants": {"acme": 12}})
    _, secret = hub_store.admin.create_token()
    body = client.get("/diagz", headers={"Authorization": f"Bearer {secret}"}).json()
    assert body["database"] == {"backend": hub_store.backend, "reachable": True,
                                "schema_revision": migrations.HEAD_REVISION, "schema_current": True}  # fmt: skip
    assert body["workflows"]["running"] == body["workflows"]["queued"] == 0
    assert body["dead_letters"]["open"] == 1 and body["dead_letters"]["total"] == 1
    assert body["audit"]["last_verification"]["entries"] == 12
    assert body["audit"]["last_verification"]["ok"] is True
    lag = {d["device"]: d for d in body["devices"]}
    assert lag["laptop"]["last_sync_at"] is not None and lag["laptop"]["lag_s"] >= 0
    assert lag["phone"]["last_sync_at"] is None and lag["phone"]["lag_s"] is None
    assert body["webhooks"] == {"hooks": 0, "pending": 0, "oldest_pending_at": None}


def test_every_audit_verification_is_recorded_a_failed_one_too(hub_store: HubStore, hub_sql: Any) -> None:
    from truthvault.cli._audit_cmds import hub_verify
    from truthvault.hub import run_as_admin
    from truthvault.kernel import AuditTampered

    assert hub_store.admin.last_verification() is None
    acme = hub_store.add_tenant("acme", "cloud_first")
    for _ in range(3):
        run_as_admin(hub_store, "acme", "tenant.code", {"ttl_s": 60})
    hub_store.audit_queue.flush(acme.id)
    hub_verify(hub_store, None, as_json=True)
    first = hub_store.admin.last_verification()
    assert first is not None and first.ok and (first.tenants, first.entries) == (1, 3)
    pk = hub_sql("SELECT pk FROM tenants WHERE id = ?", (acme.id,))[0][0]
    row = hub_sql("SELECT entry FROM audit_entries WHERE tenant_pk = ? AND idx = 1", (pk,))[0][0]
    hub_sql("UPDATE audit_entries SET entry = ? WHERE tenant_pk = ? AND idx = 1",
            (bytes(row).replace(b'"allowed"', b'"denied"'), pk))  # fmt: skip
    with pytest.raises(AuditTampered):
        hub_verify(hub_store, None, as_json=True)
    last = hub_store.admin.last_verification()
    assert last is not None and not last.ok and last.detail["tenant"] == "acme"
