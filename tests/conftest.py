"""Shared fixtures: a real PostgreSQL (required, never skipped) and hub stores on both backends."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest

from truthvault.hub.store import HubStore, Limits, open_store

from .stores import Devices

# -- PostgreSQL ----------------------------------------------------------------------------
#: The server the tests use; each test session makes its own database on it and drops it after.
PG_SERVER = os.environ.get("TRUTHVAULT_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (per xdist worker), dropped at the end."""
    name = f"tv_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_SERVER, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is required at {PG_SERVER} ({exc}); start it with: "
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
            pytrace=False,
        )
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield _with_database(PG_SERVER, name)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_dsn(pg_database: str) -> Iterator[str]:
    """A URL whose connections work in a fresh, empty schema of their own (dropped after the test)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield f"{pg_database}?options=-csearch_path%3D{schema}"
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


# -- hub stores ----------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def hub_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a fresh hub store lives: a SQLite file in tmp_path, or an empty PostgreSQL schema."""
    if request.param == "sqlite":
        return str(tmp_path / "hub.db")
    return str(request.getfixturevalue("pg_dsn"))


@pytest.fixture
def hub_store(hub_url: str) -> Iterator[HubStore]:
    """A fresh, open hub store on each backend (ids "sqlite" and "postgresql")."""
    store = open_store(hub_url)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def hub_sql(hub_url: str) -> Callable[..., list[Any]]:
    """Run one SQL statement (``?`` placeholders) straight on the hub store's database."""

    def run(sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if hub_url.startswith("postgresql"):
            with psycopg.connect(hub_url, autocommit=True) as conn:
                cur = conn.execute(sql.replace("?", "%s"), params)
                return cur.fetchall() if cur.description else []
        with closing(sqlite3.connect(hub_url, isolation_level=None)) as conn:
            return conn.execute(sql, params).fetchall()

    return run


# -- devices of one tenant on a hub store --------------------------------------------------
@pytest.fixture
def devices(hub_url: str, tmp_path: Path) -> Iterator[Callable[..., Devices]]:
    """Make vaults joined to one cloud-first tenant of a fresh hub store (each backend)."""
    made: list[Devices] = []

    def make(*names: str, limits: Limits | None = None) -> Devices:
        made.append(Devices(hub_url, tmp_path, list(names), limits))
        return made[-1]

    yield make
    for d in made:
        d.close()
