"""Fixtures for the vault tests: real vault files in tmp_path, and a hub-less exchange."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from truthvault.model import PullResponse, PushRequest, PushResponse, PushResult
from truthvault.vault import ApplyStats, Vault


@pytest.fixture
def make_vault(tmp_path: Path) -> Iterator[Callable[[str], Vault]]:
    """Open vaults under tmp_path by name; all are closed at the end."""
    opened: list[Vault] = []

    def make(name: str = "v") -> Vault:
        vault = Vault.open(tmp_path / name, source="user:cli")
        opened.append(vault)
        return vault

    yield make
    for vault in opened:
        vault.close()


@pytest.fixture
def vault(make_vault: Callable[[str], Vault]) -> Vault:
    """A fresh vault."""
    return make_vault("home")


def as_pull(request: PushRequest, cursor: int = 0) -> PullResponse:
    """What a hub would hand other devices after storing ``request`` (items only)."""
    return PullResponse(items=list(request.items), records=[], cursor=cursor, has_more=False, head=cursor)


def hub_ack(request: PushRequest) -> PushResponse:
    """A hub's answer that applied every item of ``request``."""
    results = [
        PushResult(entity_id=i.entity_id, outcome="applied", mutation=i.mutation) for i in request.items
    ]
    last = max((i.mutation or 0 for i in request.items), default=0)
    return PushResponse(results=results, head=0, last_mutation=last)


def deliver(src: Vault, dst: Vault, *, ack: bool = True) -> ApplyStats | None:
    """Push src's queue straight into dst as a pull (a one-peer hub); ack it on src."""
    request = src.replica.pending_batch()
    if request is None:
        return None
    stats = dst.replica.apply_pull(as_pull(request, dst.replica.cursor))
    if ack:
        src.replica.ack(request, hub_ack(request))
    return stats
