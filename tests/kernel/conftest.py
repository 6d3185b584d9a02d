"""Fixtures for the broker: its store on each backend (a vault file, a SQLite hub, a PostgreSQL
hub), a clock the test moves, and a broker over both."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from truthvault.hub.store import HubStore, open_store
from truthvault.kernel import BrokerSettings, BrokerStore, InputBroker
from truthvault.vault import Vault


class Clock:
    """Seconds since the epoch, moved by the test (expiry without sleeping)."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


#: a cheap scrypt: the rules do not depend on the cost (the default is checked on its own)
FAST = BrokerSettings(scrypt_n=1 << 10)


@dataclass
class Backend:
    """One broker store under test, and where its bytes can be read back."""

    name: str
    store: BrokerStore
    tenant_id: str
    vault: Vault | None = None
    hub: HubStore | None = None
    hub_url: str = ""


@pytest.fixture(params=["vault", "hub-sqlite", pytest.param("hub-postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "vault":
        vault = Vault.open(tmp_path / "vault", source="user:cli")
        try:
            yield Backend("vault", vault.broker.store, vault.tenant_id, vault=vault)
        finally:
            vault.close()
        return
    url = (
        str(tmp_path / "hub.db") if request.param == "hub-sqlite" else str(request.getfixturevalue("pg_dsn"))
    )
    hub = open_store(url, create=True)
    try:
        tenant = hub.add_tenant("family", "cloud_first")
        store = hub.broker.store(tenant.id)  # type: ignore[attr-defined]
        yield Backend(request.param, store, tenant.id, hub=hub, hub_url=url)
    finally:
        hub.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def broker(backend: Backend, clock: Clock) -> InputBroker:
    return InputBroker(backend.store, settings=FAST, now=clock, tenant_id=backend.tenant_id)
