"""Sequence numbers become visible in order: a pull never skips a change committed later.

Several writer threads (each its own device, spread over two store instances as if two
hub processes shared the database) push while a reader pulls page after page. Every
item is a new entity, so the tenant's feed holds exactly the numbers 1..head, each once:
after every page the reader must have seen exactly 1..cursor. A reader whose cursor had
jumped over a number still in flight would miss it for good and fail that check.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import msgspec
import pytest

from truthvault.clock import HybridClock
from truthvault.hub.store import DeviceContext, HubStore, Limits, open_store
from truthvault.model import PushRequest, SyncItem, encode

WRITERS = 4
BATCHES = 25
BATCH = 8
NOW_MS = 1_800_000_000_000


@pytest.fixture
def second_store(hub_url: str, hub_store: HubStore) -> Iterator[HubStore]:
    """Another store on the same database, standing in for a second hub process."""
    store = open_store(hub_url)
    try:
        yield store
    finally:
        store.close()


def _writer(store: HubStore, ctx: DeviceContext, errors: list[BaseException]) -> None:
    clock = HybridClock(wall=lambda: NOW_MS)
    try:
        for b in range(BATCHES):
            items = [
                SyncItem(
                    entity_type="note",
                    entity_id=f"{ctx.device_name}-{b}-{i}",
                    tenant_id=ctx.tenant_id,
                    truth_level=1,
                    origin_source="user:cli",
                    last_modified_at=clock.now(),
                    device_id=ctx.device_id,
                    payload=msgspec.Raw(encode({"n": i})),
                    mutation=b * BATCH + i + 1,
                )
                for i in range(BATCH)
            ]
            result = store.push(ctx, PushRequest(items=items), Limits(), NOW_MS)
            assert {r.outcome for r in result.results} == {"applied"}
    except BaseException as exc:  # reported by the test thread
        errors.append(exc)


def test_pulls_see_every_change_once_and_in_order(hub_store: HubStore, second_store: HubStore) -> None:
    hub_store.add_tenant("acme", "cloud_first")
    contexts = []
    for name in [f"w{n}" for n in range(WRITERS)] + ["reader"]:
        _, token = hub_store.add_device("acme", name)
        contexts.append(hub_store.authenticate(token))
    reader = contexts.pop()
    errors: list[BaseException] = []
    writers = [
        threading.Thread(target=_writer, args=((hub_store, second_store)[n % 2], ctx, errors))
        for n, ctx in enumerate(contexts)
    ]
    for thread in writers:
        thread.start()

    seen: list[int] = []
    entities: set[str] = set()
    cursor = pages_during_pushes = 0
    while True:
        done = not any(thread.is_alive() for thread in writers)
        page = hub_store.pull(reader, cursor, 7)
        seqs = [item.seq or 0 for item in page.items]
        assert page.records == []
        assert seqs == sorted(seqs) and all(seq > cursor for seq in seqs)
        seen += seqs
        entities.update(item.entity_id for item in page.items)
        cursor = page.cursor
        pages_during_pushes += not done
        # The invariant that fails if a pull ever skipped a number still being committed.
        assert seen == list(range(1, cursor + 1)), f"cursor {cursor}, last seen {seen[-10:]}"
        if done and not page.has_more:
            break

    assert errors == []
    total = WRITERS * BATCHES * BATCH
    assert cursor == hub_store.head(reader.tenant_id) == total
    assert len(entities) == total
    assert pages_during_pushes > 10  # the reader really pulled while the writers pushed
