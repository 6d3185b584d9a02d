"""The hub's own layers (docs/ARCHITECTURE.md, "The hub store"), checked from the source: the
sync engine knows its storage only by the port, and the repositories know nothing of sync."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..test_layers import MODULES, _imports

#: the engine's modules: they reach storage through hub/_port.py only
ENGINE = {"hub._engine", "hub._applier", "hub._rules", "hub._port"}
#: what holds SQL or a driver
STORAGE = {
    "truthvault.hub._sql",
    "truthvault.hub._sync_sql",
    "truthvault.hub._notes",
    "truthvault.hub.sqlite",
    "truthvault.hub.postgres",
    "sqlite3",
    "psycopg",
    "psycopg_pool",
}
REPOSITORIES = {"hub._tenants", "hub._auth", "hub._keys"}


def test_the_hub_modules_are_read() -> None:
    assert {name for name, _ in MODULES} >= ENGINE | REPOSITORIES


@pytest.mark.parametrize(("name", "path"), [m for m in MODULES if m[0] in ENGINE], ids=lambda v: str(v))
def test_the_engine_imports_no_storage(name: str, path: Path) -> None:
    found = _imports(name, path)
    assert not {m for m in found if m in STORAGE or m.split(".")[0] in STORAGE}, name


@pytest.mark.parametrize(("name", "path"), [m for m in MODULES if m[0] in REPOSITORIES], ids=lambda v: str(v))
def test_the_repositories_know_nothing_of_sync(name: str, path: Path) -> None:
    found = _imports(name, path)
    sync = {
        "truthvault.hub._engine",
        "truthvault.hub._applier",
        "truthvault.hub._sync_sql",
        "truthvault.merge",
    }
    assert not found & sync, name
