"""Helpers for tests that drive vaults against a real hub store: devices of one tenant, a
client with the hub's limits, a backup and restore of the hub's database."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import psycopg

from truthvault.hub.store import HubStore, Limits, open_store
from truthvault.model import PushRequest, PushResponse
from truthvault.sync import Syncer
from truthvault.vault import Vault

from .test_resync import StoreClient, join_store

__all__ = ["Devices", "Limited", "backup", "records"]


class Devices:
    """Vaults joined to one cloud-first tenant of a hub store, with a Syncer each."""

    def __init__(self, url: str, tmp: Path, names: list[str], limits: Limits | None = None) -> None:
        self.url, self.limits = url, limits or Limits()
        self.store = open_store(url)
        self.store.add_tenant("t", "cloud_first")
        self.tokens = {name: self.store.add_device("t", name)[1] for name in names}
        self.vaults = {name: Vault.open(tmp / name, source="user:cli") for name in names}
        self.syncers = {name: join_store(self.vaults[name], self.store, self.tokens[name]) for name in names}
        self._connect()

    def _connect(self) -> None:
        for name, token in self.tokens.items():
            self.syncers[name] = Syncer(self.vaults[name], Limited(self.store, token, self.limits))  # type: ignore[arg-type]

    def reopen(self) -> None:
        """Close the store and open it again (after its database changed underneath)."""
        self.store.close()
        self.store = open_store(self.url)
        self._connect()

    def close(self) -> None:
        for vault in self.vaults.values():
            vault.close()
        self.store.close()

    def hub_records(self) -> dict[str, tuple[str, str | None]]:
        ctx = self.syncers[next(iter(self.tokens))].client.ctx  # type: ignore[attr-defined]
        return {
            r.id: (r.status, r.resolution) for r in self.store.list_records(ctx, status=None, limit=10_000)
        }


class Limited(StoreClient):
    def __init__(self, store: HubStore, token: str, limits: Limits) -> None:
        super().__init__(store, token)
        self.limits = limits

    def push(self, batch: PushRequest) -> PushResponse:
        return self.store.push(self.ctx, batch, self.limits, time.time_ns() // 1_000_000)


def records(vault: Vault) -> dict[str, tuple[str, str | None]]:
    return {r.id: (r.status, r.resolution) for r in vault.records(status=None)}


@contextmanager
def backup(url: str) -> Iterator[Callable[[], None]]:
    """Take a backup of the hub's database now; the callable restores it (the store closed)."""
    if url.startswith("postgresql"):
        with psycopg.connect(url, autocommit=True) as conn:
            tables = [
                r[0]
                for r in conn.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                )
            ]
            for table in tables:
                conn.execute(f'CREATE TABLE "bak_{table}" AS TABLE "{table}"')

        def restore() -> None:
            with psycopg.connect(url) as conn:
                # as pg_restore does: the rows go back whole, so their foreign keys need no check
                conn.execute("SET LOCAL session_replication_role = replica")
                for table in tables:
                    conn.execute(f'DELETE FROM "{table}"')
                    conn.execute(f'INSERT INTO "{table}" SELECT * FROM "bak_{table}"')

    else:
        copy = url + ".backup"
        with closing(sqlite3.connect(url)) as live, closing(sqlite3.connect(copy)) as bak:
            live.backup(bak)

        def restore() -> None:
            with closing(sqlite3.connect(copy)) as bak, closing(sqlite3.connect(url)) as live:
                bak.backup(live)

    yield restore
