"""Opening a hub store: the schema is Alembic's, migrated on open, skipped when current, reversible."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from subprocess import PIPE
from typing import Any

import msgspec
import pytest
from alembic import command
from alembic.script import ScriptDirectory

from truthvault.errors import StorageError
from truthvault.hub import migrations
from truthvault.hub.store import HubStore, Limits, open_store
from truthvault.model import PushRequest, SyncItem

Sql = Callable[..., list[Any]]
TABLES = {"tenants", "devices", "entities", "records", "sync_events"}


def _tables(hub_url: str, hub_sql: Sql) -> set[str]:
    if hub_url.startswith("postgresql"):
        rows = hub_sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
    else:
        rows = hub_sql("SELECT name FROM sqlite_master WHERE type = 'table'")
    return {row[0] for row in rows}


def test_head_revision_is_alembics_only_head() -> None:
    script = ScriptDirectory.from_config(migrations.alembic_config("unused.db"))
    assert script.get_heads() == [migrations.HEAD_REVISION]


def test_open_migrates_a_new_database(hub_store: HubStore, hub_url: str, hub_sql: Sql) -> None:
    assert hub_sql("SELECT version_num FROM alembic_version") == [(migrations.HEAD_REVISION,)]
    assert TABLES | {"alembic_version"} <= _tables(hub_url, hub_sql)


def test_open_skips_alembic_when_current(
    hub_store: HubStore, hub_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub_store.add_tenant("acme", "local_first")
    calls: list[str] = []
    monkeypatch.setattr(migrations, "upgrade", lambda url, revision="head": calls.append(url))
    again = open_store(hub_url)
    try:
        assert [t.name for t in again.list_tenants()] == ["acme"]
    finally:
        again.close()
    assert calls == []


def test_downgrade_then_open_migrates_again(hub_url: str, hub_sql: Sql) -> None:
    open_store(hub_url).close()
    command.downgrade(migrations.alembic_config(hub_url), "base")
    assert _tables(hub_url, hub_sql) & TABLES == set()
    assert hub_sql("SELECT version_num FROM alembic_version") == []
    store = open_store(hub_url)
    try:
        store.add_tenant("acme", "cloud_first")
        assert store.get_tenant("acme").vault_mode == "cloud_first"
    finally:
        store.close()
    assert hub_sql("SELECT version_num FROM alembic_version") == [(migrations.HEAD_REVISION,)]


def test_slimming_the_entities_table_keeps_every_entity(hub_url: str, hub_sql: Sql) -> None:
    # 0004 drops the truth columns that repeated the wire form; synced data must survive it both ways.
    store = open_store(hub_url)
    try:
        store.add_tenant("acme", "cloud_first")
        _, token = store.add_device("acme", "laptop")
        ctx = store.authenticate(token)
        item = SyncItem(
            entity_type="note",
            entity_id="n1",
            tenant_id=ctx.tenant_id,
            truth_level=1,
            origin_source="user:cli",
            last_modified_at="2026-11-22T01:00:00.000Z-0000",
            device_id=ctx.device_id,
            payload=msgspec.Raw(b'{"text":"kept"}'),
            mutation=1,
        )
        store.push(ctx, PushRequest(items=[item]), Limits(), 1_800_000_000_000)
        before = store.pull_raw(ctx, 0, 10)
    finally:
        store.close()
    command.downgrade(migrations.alembic_config(hub_url), "0003")
    assert hub_sql("SELECT entity_type, truth_level, version, base_clock FROM entities") == [("", 1, 1, None)]
    store = open_store(hub_url)  # migrates to the head again
    try:
        # the same page, but for the tag of its history: 0006 tags the history it finds anew
        after = msgspec.json.decode(store.pull_raw(ctx, 0, 10))
        assert after.pop("tag") != msgspec.json.decode(before).pop("tag")
        assert after == {k: v for k, v in msgspec.json.decode(before).items() if k != "tag"}
        assert b'"text":"kept"' in before
    finally:
        store.close()
    with pytest.raises(Exception, match="entity_type"):
        hub_sql("SELECT entity_type FROM entities")


@pytest.mark.postgres
def test_hubs_starting_together_migrate_once(pg_dsn: str) -> None:
    # Real processes, as several hubs share one PostgreSQL; each imports, says so, then waits
    # for the word to go so that their migrations overlap.
    code = (
        "import sys, alembic.command, sqlalchemy.dialects.postgresql.psycopg; "
        "from truthvault.hub.store import open_store; "
        "print('ready', flush=True); sys.stdin.readline(); open_store(sys.argv[1]).close()"
    )
    with contextlib.ExitStack() as stack:
        hubs = [
            stack.enter_context(
                subprocess.Popen(
                    [sys.executable, "-c", code, pg_dsn], stdin=PIPE, stdout=PIPE, stderr=PIPE, text=True
                )
            )
            for _ in range(3)
        ]
        assert [hub.stdout.readline() for hub in hubs if hub.stdout] == ["ready\n"] * 3
        for hub in hubs:
            assert hub.stdin
            hub.stdin.write("go\n")
            hub.stdin.flush()
        errors = [hub.stderr.read() for hub in hubs if hub.stderr]
        assert [hub.wait(timeout=120) for hub in hubs] == [0, 0, 0], errors
    store = open_store(pg_dsn)
    try:
        store.add_tenant("acme", "local_first")
        assert [t.name for t in store.list_tenants()] == ["acme"]
    finally:
        store.close()


def test_offline_sql_renders_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    cfg = migrations.alembic_config("postgresql://example/hub")
    command.upgrade(cfg, "head", sql=True)
    sql = capsys.readouterr().out
    assert "CREATE TABLE entities" in sql and "WHERE deleted" in sql


def test_sqlite_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "hub.db"
    store = open_store(str(path))
    try:
        store.add_tenant("acme", "local_first")
        files = sorted(path.parent.iterdir())
        assert [f.name for f in files] == ["hub.db", "hub.db-shm", "hub.db-wal"]
        assert {f.stat().st_mode & 0o777 for f in files} == {0o600}
    finally:
        store.close()


def test_open_fails_with_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StorageError, match="cannot create"):
        open_store(str(tmp_path / "file" / "hub.db"))


@pytest.mark.postgres
def test_open_fails_with_a_storage_error_when_postgresql_is_unreachable() -> None:
    with pytest.raises(StorageError, match="cannot open") as refused:
        open_store("postgresql://postgres:secret@127.0.0.1:1/hub?connect_timeout=2")
    assert "secret" not in str(refused.value)


def test_sqlite_checkpoints_in_the_background(tmp_path: Path) -> None:
    # A push's commit only appends to the WAL; a background thread copies it into the file.
    path = tmp_path / "hub.db"
    store = open_store(str(path))
    try:
        store.add_tenant("acme", "cloud_first")
        _, token = store.add_device("acme", "laptop")
        ctx = store.authenticate(token)
        before = path.stat().st_size
        items = [
            SyncItem(
                entity_type="note",
                entity_id=f"n{n}",
                tenant_id=ctx.tenant_id,
                truth_level=1,
                origin_source="user:cli",
                last_modified_at="2026-11-22T01:00:00.000Z-0000",
                device_id=ctx.device_id,
                payload=msgspec.Raw(b'{"text":"%s"}' % (b"x" * 1000)),
                mutation=n + 1,
            )
            for n in range(300)
        ]
        store.push(ctx, PushRequest(items=items), Limits(), 1_800_000_000_000)
        deadline = time.monotonic() + 10
        while path.stat().st_size < before + 300_000 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_size >= before + 300_000
    finally:
        store.close()
