"""Opening a hub store: a database that holds no hub becomes one only when asked (both backends)."""

from __future__ import annotations

from pathlib import Path

import pytest

from truthvault.errors import NotFound
from truthvault.hub.store import open_store


def test_a_database_without_a_hub_is_made_one_only_with_create(hub_url: str) -> None:
    sqlite = not hub_url.startswith("postgresql")
    for _ in range(2):  # a refusal leaves nothing behind that a second open would take for a hub
        with pytest.raises(NotFound, match="no hub database at"):
            open_store(hub_url, create=False)
    if sqlite:
        assert not Path(hub_url).exists()
    open_store(hub_url, create=True).close()
    store = open_store(hub_url, create=False)
    try:
        store.add_tenant("family", "local_first")
    finally:
        store.close()
    again = open_store(hub_url, create=False)
    try:
        assert [t.name for t in again.list_tenants()] == ["family"]
    finally:
        again.close()


def test_an_empty_sqlite_file_is_no_hub(tmp_path: Path) -> None:
    empty = tmp_path / "hub.db"
    empty.touch()
    with pytest.raises(NotFound, match="holds no truthvault hub"):
        open_store(str(empty), create=False)
    assert empty.stat().st_size == 0 and not (tmp_path / "hub.db-wal").exists()
    with pytest.raises(NotFound, match="no hub database at"):
        open_store(str(tmp_path / "nowhere" / "hub.db"), create=False)
    assert not (tmp_path / "nowhere").exists()
