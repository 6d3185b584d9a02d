"""The HubStore contract, run against every backend (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from truthvault.clock import format_stamp
from truthvault.errors import (
    ConflictState,
    DeviceRevoked,
    Forbidden,
    InvalidInput,
    InvalidSource,
    NotFound,
    PayloadTooLarge,
    ResyncRequired,
    Unauthorized,
)
from truthvault.hub.store import DeviceContext, HubStore, Limits
from truthvault.model import (
    Decision,
    OriginStep,
    PullResponse,
    PushRequest,
    PushResponse,
    Record,
    SyncItem,
    checksum_hex,
    encode,
    item_digest,
)
from truthvault.truth import record_id

NOW_MS = 1_800_000_000_000
SOURCES = {
    1: "user:cli",
    2: "automation:tidy",
    3: "ai-local:llama3",
    4: "ai-lan:mistral",
    5: "ai-cloud:openai/gpt-4o",
}
Sql = Callable[..., list[Any]]


def at(seconds: float, counter: int = 0) -> str:
    """A clock stamp ``seconds`` after (or before) the tests' fixed now."""
    return format_stamp(NOW_MS + int(seconds * 1000), counter)


@dataclass
class Dev:
    """One registered device of a tenant, pushing with its own mutation numbers."""

    store: HubStore
    ctx: DeviceContext
    token: str
    mutation: int = 0
    limits: Limits = field(default_factory=Limits)

    def item(self, eid: str, clock: str, level: int = 1, text: str = "", **over: Any) -> SyncItem:
        fields: dict[str, Any] = {
            "entity_type": "note",
            "entity_id": eid,
            "tenant_id": self.ctx.tenant_id,
            "truth_level": level,
            "origin_source": SOURCES[level],
            "last_modified_at": clock,
            "device_id": self.ctx.device_id,
            "payload": msgspec.Raw(encode({"text": text or f"{eid} at {clock}"})),
        }
        return SyncItem(**{**fields, **over})

    def push(self, *items: SyncItem, decisions: tuple[Decision, ...] = (), cursor: int = 0) -> PushResponse:
        numbered = []
        for item in items:
            self.mutation += 1
            numbered.append(msgspec.structs.replace(item, mutation=self.mutation))
        request = PushRequest(items=numbered, decisions=list(decisions), cursor=cursor)
        return self.store.push(self.ctx, request, self.limits, NOW_MS)

    def outcomes(self, *items: SyncItem, **kw: Any) -> list[str]:
        return [r.outcome for r in self.push(*items, **kw).results]

    def pull_all(
        self, since: int = 0, limit: int = 1000
    ) -> tuple[list[SyncItem], list[Record], PullResponse]:
        items: list[SyncItem] = []
        records: list[Record] = []
        while True:
            page = self.store.pull(self.ctx, since, limit)
            items += page.items
            records += page.records
            since = page.cursor
            if not page.has_more:
                return items, records, page

    def current(self, eid: str) -> SyncItem:
        """The hub's current version of an entity: the last one a full pull delivers."""
        versions = [item for item in self.pull_all()[0] if item.entity_id == eid]
        assert len(versions) == 1, versions
        return versions[0]

    def records(self, **kw: Any) -> list[Record]:
        return self.store.list_records(self.ctx, **kw)


def _device(store: HubStore, tenant: str, name: str) -> Dev:
    _, token = store.add_device(tenant, name)
    return Dev(store, store.authenticate(token), token)


@pytest.fixture
def laptop(hub_store: HubStore) -> Dev:
    hub_store.add_tenant("acme", "cloud_first")
    return _device(hub_store, "acme", "laptop")


@pytest.fixture
def phone(hub_store: HubStore, laptop: Dev) -> Dev:
    return _device(hub_store, "acme", "phone")


@pytest.fixture
def other(hub_store: HubStore) -> Dev:
    """A device of a second tenant."""
    hub_store.add_tenant("globex", "local_first")
    return _device(hub_store, "globex", "desktop")


def event_types(dev: Dev, type: str | None = None) -> list[str]:
    return [e.type for e in dev.store.events(dev.ctx.tenant_id, type=type, limit=10_000)]


# -- admin -------------------------------------------------------------------------------
def test_tenants_and_devices_are_registered_and_listed(hub_store: HubStore) -> None:
    zeta = hub_store.add_tenant("zeta", "local_first")
    acme = hub_store.add_tenant("acme", "cloud_first")
    assert [t.name for t in hub_store.list_tenants()] == ["acme", "zeta"]
    assert hub_store.get_tenant("zeta") == zeta
    assert acme.vault_mode == "cloud_first" and acme.id != zeta.id
    phone, token = hub_store.add_device("acme", "phone")
    laptop, _ = hub_store.add_device("acme", "laptop")
    hub_store.add_device("zeta", "phone")  # the same name in another tenant is fine
    assert phone.tenant_id == acme.id and len(token) >= 40
    assert [d.name for d in hub_store.list_devices("acme")] == ["laptop", "phone"]
    assert {d.id for d in hub_store.list_devices("acme")} == {phone.id, laptop.id}
    assert hub_store.list_devices("acme")[1].last_mutation == 0


def test_admin_errors(hub_store: HubStore) -> None:
    hub_store.add_tenant("acme", "cloud_first")
    hub_store.add_device("acme", "phone")
    with pytest.raises(ConflictState, match="acme"):
        hub_store.add_tenant("acme", "local_first")
    with pytest.raises(InvalidInput, match="vault_mode"):
        hub_store.add_tenant("initech", "offline")
    with pytest.raises(InvalidInput):
        hub_store.add_tenant(" padded ", "local_first")
    with pytest.raises(NotFound):
        hub_store.get_tenant("nobody")
    with pytest.raises(NotFound):
        hub_store.add_device("nobody", "phone")
    with pytest.raises(ConflictState, match="phone"):
        hub_store.add_device("acme", "phone")
    with pytest.raises(NotFound):
        hub_store.head("00000000-0000-4000-8000-000000000000")
    assert [t.name for t in hub_store.list_tenants()] == ["acme"]


def test_authenticate(hub_store: HubStore, hub_sql: Sql) -> None:
    tenant = hub_store.add_tenant("acme", "local_first")
    device, token = hub_store.add_device("acme", "phone")
    ctx = hub_store.authenticate(token)
    assert ctx == DeviceContext(tenant.id, "acme", "local_first", device.id, "phone")
    with pytest.raises(Unauthorized) as refused:
        hub_store.authenticate(token + "x")
    assert token not in str(refused.value) and token[:8] not in str(refused.value)
    # Only the token's SHA-256 is stored.
    rows = hub_sql("SELECT token_hash FROM devices")
    assert rows == [(hashlib.sha256(token.encode()).hexdigest(),)]
    hub_sql("UPDATE devices SET revoked = ? WHERE id = ?", (True, device.id))
    # A revoked device is known but refused: 403 device_revoked, not 401.
    with pytest.raises(DeviceRevoked):
        hub_store.authenticate(token)
    dev = Dev(hub_store, ctx, token)
    with pytest.raises(DeviceRevoked):
        dev.push(dev.item("n1", at(0)))
    assert hub_store.head(tenant.id) == 0


# -- push: applied, duplicate, idempotent -------------------------------------------------------
def test_rows_hold_each_version_exactly(laptop: Dev, hub_sql: Sql) -> None:
    # Payload bytes as a device sent them: spacing, escapes, non-ASCII, and one large.
    payloads = [
        b'{"b":1,  "a":[2]}',
        b'{"t":"caf\\u00e9 \xc3\xa9 \\"q\\" \\\\ ,"}',
        b'{"t":"' + b"x" * 70_000 + b'"}',
        b"{ }",
    ]
    first = [laptop.item(f"n{i}", at(i), payload=msgspec.Raw(p)) for i, p in enumerate(payloads)]
    laptop.push(*first)
    # One batch of new entities, changed ones and a delete, with a repeat of one entity.
    second = [
        laptop.item("n1", at(10), payload=msgspec.Raw(b'{"t": "changed"}')),
        laptop.item("n9", at(11), payload=msgspec.Raw(payloads[1])),
        laptop.item("n2", at(12), deleted=True, payload=msgspec.Raw(b"{}")),
        laptop.item("n1", at(13), payload=msgspec.Raw(b'{"t":"again"}')),
    ]
    assert [r.outcome for r in laptop.push(*second).results] == ["applied"] * 4
    rows = hub_sql("SELECT entity_id, seq, last_modified_at, deleted, wire FROM entities ORDER BY entity_id")
    expected = {"n0": first[0], "n1": second[3], "n2": second[2], "n3": first[3], "n9": second[1]}
    assert [row[0] for row in rows] == sorted(expected)
    seqs = {"n0": 1, "n3": 4, "n1": 5, "n9": 6, "n2": 7}  # renumbered in first-change order
    for eid, seq, clock, deleted, wire in rows:
        sent = expected[eid]
        stored = msgspec.json.decode(bytes(wire), type=SyncItem)
        assert (seq, clock, bool(deleted)) == (seqs[eid], sent.last_modified_at, sent.deleted)
        assert bytes(stored.payload) == bytes(sent.payload)
        assert stored == msgspec.structs.replace(sent, seq=seq, mutation=None, last_modified_by_level=1)


def test_push_applies_and_a_replay_changes_nothing(laptop: Dev, hub_sql: Sql) -> None:
    items = [laptop.item(f"n{i}", at(i)) for i in range(3)]
    first = laptop.push(*items)
    assert [r.outcome for r in first.results] == ["applied"] * 3
    assert [r.mutation for r in first.results] == [1, 2, 3]
    assert (first.head, first.last_mutation) == (3, 3)
    pulled, _, page = laptop.pull_all()
    assert [(i.entity_id, i.seq, i.mutation) for i in pulled] == [
        ("n0", 1, None),
        ("n1", 2, None),
        ("n2", 3, None),
    ]
    events = event_types(laptop)
    rows = hub_sql("SELECT entity_id, seq, wire FROM entities ORDER BY seq")

    request = PushRequest(items=[msgspec.structs.replace(it, mutation=n + 1) for n, it in enumerate(items)])
    replay = laptop.store.push(laptop.ctx, request, Limits(), NOW_MS)
    assert [r.outcome for r in replay.results] == ["duplicate"] * 3
    assert (replay.head, replay.last_mutation) == (3, 3)
    assert hub_sql("SELECT entity_id, seq, wire FROM entities ORDER BY seq") == rows
    assert event_types(laptop) == events
    assert laptop.store.pull(laptop.ctx, 0, 100).checksum == page.checksum

    # Overlapping batch: the applied prefix is duplicate, the rest applies.
    laptop.mutation = 1
    more = laptop.push(items[1], items[2], laptop.item("n3", at(3)), laptop.item("n4", at(4)))
    assert [r.outcome for r in more.results] == ["duplicate", "duplicate", "applied", "applied"]
    assert (more.head, more.last_mutation) == (5, 5)
    assert laptop.store.list_devices("acme")[0].last_seen_at is not None


def test_a_device_that_lost_its_numbers_writes_nothing_twice(laptop: Dev, phone: Dev, hub_sql: Sql) -> None:
    laptop.push(laptop.item("n1", at(0)))
    lower = phone.item("n1", at(5), level=3)
    assert phone.outcomes(lower) == ["suggestion"]
    head, suggestions = (
        laptop.store.head(laptop.ctx.tenant_id),
        event_types(laptop, "AI_SUGGESTION_GENERATED"),
    )
    phone.mutation = 100  # same versions, new mutation numbers
    assert phone.outcomes(lower, phone.item("n1", at(5), level=3)) == ["suggestion", "suggestion"]
    assert laptop.store.head(laptop.ctx.tenant_id) == head
    assert hub_sql("SELECT count(*) FROM records") == [(1,)]
    assert event_types(laptop, "AI_SUGGESTION_GENERATED") == suggestions


# -- the truth hierarchy -----------------------------------------------------------------------
def test_case_a_user_truth_beats_every_lower_level(laptop: Dev, phone: Dev) -> None:
    laptop.push(laptop.item("n1", at(0), text="mine"))
    for level in (2, 3, 4, 5):
        result = phone.push(phone.item("n1", at(level), level=level)).results[0]
        assert result.outcome == "suggestion"
        assert result.record_id == record_id("n1", at(level), phone.ctx.device_id)
    assert laptop.current("n1").last_modified_at == at(0)
    kept = laptop.records(kind="suggestion")
    assert sorted(r.item.truth_level for r in kept) == [2, 3, 4, 5]
    assert all(r.status == "open" and r.entity_id == "n1" and r.item.mutation is None for r in kept)
    assert len(event_types(laptop, "AI_SUGGESTION_GENERATED")) == 4

    # U1 over a lower version it did not build on: the lower one stays as a suggestion.
    phone.push(phone.item("n2", at(10), level=2))
    assert laptop.outcomes(laptop.item("n2", at(5))) == ["applied"]
    assert laptop.current("n2").truth_level == 1
    (old,) = [r for r in laptop.records() if r.entity_id == "n2"]
    assert (old.kind, old.item.truth_level, old.item.last_modified_at) == ("suggestion", 2, at(10))
    # An edit that names the lower version as its base keeps nothing.
    phone.push(phone.item("n3", at(10), level=2))
    edit = laptop.item("n3", at(11), version=2, base_version=1, base_clock=at(10))
    assert laptop.outcomes(edit) == ["applied"]
    assert not [r for r in laptop.records() if r.entity_id == "n3"]


def test_case_b_user_against_user_is_last_write_wins_and_logged(laptop: Dev, phone: Dev) -> None:
    laptop.push(laptop.item("n1", at(1), text="laptop"))
    assert phone.outcomes(phone.item("n1", at(2), text="phone")) == ["applied"]
    assert laptop.current("n1").device_id == phone.ctx.device_id
    (conflict,) = laptop.records(kind="conflict")
    assert (conflict.item.device_id, conflict.item.last_modified_at) == (laptop.ctx.device_id, at(1))
    (event,) = laptop.store.events(laptop.ctx.tenant_id, type="CONFLICT_DETECTED")
    assert event.entity_id == "n1"
    assert event.detail["loser"] == {"clock": at(1), "device_id": laptop.ctx.device_id}
    assert event.detail["winner"] == {"clock": at(2), "device_id": phone.ctx.device_id}

    # An older U1 write arriving late loses and is kept as a conflict record.
    late = laptop.push(laptop.item("n1", at(1, 5), text="late")).results[0]
    assert late.outcome == "conflict"
    assert late.record_id == record_id("n1", at(1, 5), laptop.ctx.device_id)
    assert laptop.current("n1").device_id == phone.ctx.device_id
    assert len(laptop.records(kind="conflict")) == 2
    assert len(event_types(laptop, "CONFLICT_DETECTED")) == 2


def test_case_c_among_lower_levels_authority_then_last_write_wins(laptop: Dev, phone: Dev) -> None:
    laptop.push(laptop.item("n1", at(5), level=5))
    assert phone.outcomes(phone.item("n1", at(1), level=2)) == ["applied"]  # A2 beats a later C5
    assert laptop.outcomes(laptop.item("n1", at(9), level=3)) == ["suggestion"]  # L3 loses to A2
    assert laptop.outcomes(laptop.item("n1", at(8), level=2)) == ["applied"]  # same level: later wins
    assert phone.outcomes(phone.item("n1", at(7), level=2)) == ["suggestion"]  # same level: earlier loses
    current = laptop.current("n1")
    assert (current.truth_level, current.last_modified_at) == (2, at(8))
    assert {(r.item.truth_level, r.item.last_modified_at) for r in laptop.records()} == {
        (5, at(5)),
        (3, at(9)),
        (2, at(1)),
        (2, at(7)),
    }


def test_delete_rule(laptop: Dev, phone: Dev) -> None:
    laptop.push(laptop.item("u1", at(0)), laptop.item("x", at(0)))
    # An automation cannot delete user truth: its delete is a suggestion.
    assert phone.outcomes(phone.item("u1", at(1), level=2, deleted=True)) == ["suggestion"]
    assert not laptop.current("u1").deleted
    (kept,) = laptop.records(kind="suggestion")
    assert kept.item.deleted
    # A user delete beats a lower version.
    phone.push(phone.item("a2", at(0), level=2))
    assert laptop.outcomes(laptop.item("a2", at(1), deleted=True)) == ["applied"]
    assert laptop.current("a2").deleted
    # U1 against U1: the later of delete and update wins, the other is a conflict.
    assert phone.outcomes(phone.item("x", at(2), deleted=True)) == ["applied"]
    assert laptop.current("x").deleted
    assert laptop.outcomes(laptop.item("x", at(3), text="back")) == ["applied"]
    assert not laptop.current("x").deleted
    assert phone.outcomes(phone.item("x", at(2, 9), deleted=True)) == ["conflict"]
    assert {r.item.deleted for r in laptop.records(kind="conflict") if r.entity_id == "x"} == {True, False}


def test_upgrade_rule_at_sync(laptop: Dev, phone: Dev) -> None:
    phone.push(phone.item("n1", at(0), level=5))
    # an AI claiming the user's acceptance, with no user behind the claim, is refused whole
    claim = laptop.item("n1", at(1), level=5, accepted_by_user=True)
    with pytest.raises(InvalidSource, match=r"items\[0\]\.accepted_by_user"):
        laptop.push(claim)
    assert laptop.current("n1").truth_level == 5
    # accepted by the user on some other app: the user's step is the chain's last
    user = OriginStep(1, "user:mobile", at(1))
    accepted = laptop.item("n1", at(1), level=5, accepted_by_user=True, origin_chain=(user,))
    assert laptop.outcomes(accepted) == ["applied"]
    stored = laptop.current("n1")
    assert (stored.truth_level, stored.origin_source, stored.accepted_by_user) == (1, "user:accepted", True)
    assert stored.last_modified_by_level == 1
    assert (stored.origin_chain[-1].level, stored.origin_chain[-1].source) == (5, SOURCES[5])
    assert stored.origin_chain[-2] == user
    (upgrade,) = laptop.store.events(laptop.ctx.tenant_id, type="TRUTH_UPGRADE")
    assert upgrade.entity_id == "n1"
    # Now user truth, a cloud AI can only suggest.
    assert phone.outcomes(phone.item("n1", at(2), level=5)) == ["suggestion"]


# -- a bad batch is refused whole ------------------------------------------------------------------
BAD_ITEMS: dict[str, tuple[dict[str, Any], type[Exception], str]] = {
    "payload-not-object": ({"payload": msgspec.Raw(b"[1, 2]")}, InvalidInput, "items[1].payload"),
    "other-tenant": ({"tenant_id": "someone-else"}, Forbidden, "items[1].tenant_id"),
    "level-mismatch": ({"origin_source": "ai-cloud:x/y"}, InvalidSource, "items[1].origin_source"),
    "bad-source": ({"origin_source": "wizard"}, InvalidSource, "items[1].origin_source"),
    "bad-chain": (
        {"origin_chain": [OriginStep(2, "user:cli", "x")]},
        InvalidSource,
        "items[1].origin_chain[0]",
    ),
    "oversized": ({"payload": msgspec.Raw(encode({"t": "x" * 200}))}, PayloadTooLarge, "items[1].payload"),
    "future-clock": ({"last_modified_at": at(3600)}, InvalidInput, "items[1].last_modified_at"),
    "loose-clock": ({"last_modified_at": "2027-01-15T08:00:00Z"}, InvalidInput, "items[1].last_modified_at"),
    "no-mutation": ({"mutation": None}, InvalidInput, "items[1].mutation"),
    "mutation-not-increasing": ({"mutation": 1}, InvalidInput, "items[1].mutation"),
    # what a device could not store or print, refused with nothing stored (issue 9)
    "unreal-clock": (
        {"last_modified_at": "2026-11-32T00:00:00.000Z-0000"},
        InvalidInput,
        "items[1].last_modified_at",
    ),
    "unreal-base": ({"base_clock": "2026-02-29T00:00:00.000Z-0000"}, InvalidInput, "items[1].base_clock"),
    "infinite": ({"payload": msgspec.Raw(b'{"n":1e99999}')}, InvalidInput, "items[1].payload"),
    "not-utf8": ({"payload": msgspec.Raw(b'{"t":"\xff"}')}, InvalidInput, "items[1].payload"),
    "surrogate": ({"payload": msgspec.Raw(b'{"t":"\\udfff"}')}, InvalidInput, "items[1].payload"),
    "huge-int": ({"payload": msgspec.Raw(b'{"n":-99999999999999999999}')}, InvalidInput, "items[1].payload"),
    "claimed-acceptance": (
        {"truth_level": 4, "origin_source": "ai-lan:m", "accepted_by_user": True},
        InvalidSource,
        "items[1].accepted_by_user",
    ),
}


@pytest.mark.parametrize("case", list(BAD_ITEMS))
def test_a_bad_item_refuses_the_whole_batch(laptop: Dev, hub_sql: Sql, case: str) -> None:
    over, error, where = BAD_ITEMS[case]
    good = laptop.item("good", at(0), mutation=1)
    bad = msgspec.structs.replace(laptop.item("bad", at(1), mutation=2), **over)
    request = PushRequest(items=[good, bad])
    with pytest.raises(error) as refused:
        laptop.store.push(laptop.ctx, request, Limits(max_payload_bytes=100), NOW_MS)
    assert where in str(refused.value) and "(note 'bad')" in str(refused.value)
    assert refused.value.item == 1  # so that a device can set it aside and push the rest
    assert laptop.store.head(laptop.ctx.tenant_id) == 0
    assert laptop.store.pull(laptop.ctx, 0, 100).items == []
    assert hub_sql("SELECT count(*) FROM entities") == [(0,)]
    assert laptop.store.list_devices("acme")[0].last_mutation == 0
    assert event_types(laptop) == []


def test_a_device_may_relay_versions_written_elsewhere(laptop: Dev) -> None:
    # an import or a restore pushes versions whose writer is another device
    relayed = msgspec.structs.replace(laptop.item("r1", at(0)), device_id="importer")
    assert laptop.outcomes(relayed) == ["applied"]
    assert laptop.current("r1").device_id == "importer"


def test_too_many_items_refuse_the_batch(laptop: Dev) -> None:
    laptop.limits = Limits(max_batch_items=2)
    with pytest.raises(InvalidInput, match="items"):
        laptop.push(*(laptop.item(f"n{i}", at(i)) for i in range(3)))
    assert laptop.store.head(laptop.ctx.tenant_id) == 0


# -- pull ----------------------------------------------------------------------------------------
def live_checksum(items: list[SyncItem]) -> str:
    """The checksum computed independently from pulled items: the sum of live items' digests."""
    total = sum(
        item_digest(i.entity_id, i.last_modified_at, i.device_id, i.truth_level, i.deleted) for i in items
    )
    return checksum_hex(total)


def test_pull_pages_in_sequence_order(laptop: Dev, phone: Dev) -> None:
    laptop.push(*(laptop.item(f"n{i}", at(i)) for i in range(6)))
    phone.push(phone.item("n2", at(10), level=4))  # a suggestion record: seq 7
    laptop.push(laptop.item("n0", at(20), version=2, base_version=1, base_clock=at(0)))  # n0 moves to seq 8
    pages = []
    since = 0
    while True:
        page = laptop.store.pull(laptop.ctx, since, 3)
        pages.append(page)
        assert page.head == 8
        if page.has_more:
            assert page.checksum is None
            assert page.cursor == max(x.seq or 0 for x in [*page.items, *page.records])
        since = page.cursor
        if not page.has_more:
            break
    assert [len(p.items) + len(p.records) for p in pages] == [3, 3, 1]
    seqs = [x.seq for p in pages for x in sorted([*p.items, *p.records], key=lambda x: x.seq or 0)]
    assert seqs == [2, 3, 4, 5, 6, 7, 8]  # seq 1 was n0's first version, now superseded
    last = pages[-1]
    assert (last.cursor, last.has_more) == (8, False)
    assert [r.seq for r in pages[1].records] == [7] and pages[1].records[0].item.truth_level == 4
    items = [i for p in pages for i in p.items]
    assert last.checksum == live_checksum(items)
    # Nothing new: an empty page at the head, with the checksum and no SYNC_PULL event.
    pulls = len(event_types(laptop, "SYNC_PULL"))
    empty = laptop.store.pull(laptop.ctx, 8, 3)
    assert (empty.items, empty.records, empty.cursor, empty.has_more) == ([], [], 8, False)
    assert empty.checksum == last.checksum
    assert len(event_types(laptop, "SYNC_PULL")) == pulls == 3


def test_pull_raw_is_the_encoded_pull(laptop: Dev, phone: Dev) -> None:
    laptop.push(laptop.item("n1", at(0)), laptop.item("n2", at(1)))
    phone.push(phone.item("n1", at(2), level=3))
    for since, limit in ((0, 1), (0, 2), (0, 10), (3, 10)):
        raw = laptop.store.pull_raw(laptop.ctx, since, limit)
        assert raw == encode(msgspec.json.decode(raw, type=PullResponse))
        assert msgspec.json.decode(raw, type=PullResponse) == laptop.store.pull(laptop.ctx, since, limit)
    with pytest.raises(InvalidInput):
        laptop.store.pull(laptop.ctx, 0, 0)


def test_a_push_leaves_the_items_it_was_given_as_they_were(laptop: Dev) -> None:
    items = [laptop.item("n1", at(0)), laptop.item("n2", at(1))]
    request = PushRequest(
        items=[msgspec.structs.replace(item, mutation=i + 1) for i, item in enumerate(items)]
    )
    laptop.store.push(laptop.ctx, request, laptop.limits, NOW_MS)
    # numbered copies are stored: the request's items keep their mutations and have no seq
    assert [(item.mutation, item.seq) for item in request.items] == [(1, None), (2, None)]
    stored = laptop.pull_all()[0]
    assert [(item.seq, item.mutation) for item in stored] == [(1, None), (2, None)]


def test_checksum_is_the_sum_of_live_item_digests(laptop: Dev, phone: Dev) -> None:
    laptop.push(*(laptop.item(f"n{i}", at(i)) for i in range(5)))
    phone.push(
        phone.item("n1", at(10), deleted=True),  # U1 vs U1, later: n1 is a tombstone
        phone.item("n2", at(11), level=3),  # suggestion: n2 unchanged
        phone.item("n3", at(12), version=2, base_version=1, base_clock=at(3)),
        phone.item("n9", at(13), level=2),
    )
    laptop.push(laptop.item("n0", at(0, 1), deleted=True))
    items, _, last = laptop.pull_all()
    assert any(i.deleted for i in items)
    assert last.checksum == live_checksum(items)
    assert laptop.store.pull(laptop.ctx, 0, 2).checksum is None


def test_tenants_never_see_each_other(laptop: Dev, other: Dev) -> None:
    laptop.push(laptop.item("n1", at(0)), laptop.item("n2", at(1)))
    laptop.push(laptop.item("n1", at(5), level=5, device_id=laptop.ctx.device_id))
    page = other.store.pull(other.ctx, 0, 100)
    assert (page.items, page.records, page.head) == ([], [], 0)
    assert other.records(status=None) == []
    assert other.store.events(other.ctx.tenant_id) == []
    with pytest.raises(Forbidden):
        other.push(laptop.item("n1", at(9)))
    # The same entity id in another tenant is another entity.
    assert other.outcomes(other.item("n1", at(-5), level=5)) == ["applied"]
    assert laptop.current("n1").truth_level == 1
    assert [i.entity_id for i in other.pull_all()[0]] == ["n1"]


# -- records and decisions ----------------------------------------------------------------------
def test_decisions_close_records(laptop: Dev, phone: Dev) -> None:
    laptop.push(laptop.item("n1", at(0)))
    rid = phone.push(phone.item("n1", at(1), level=3)).results[0].record_id
    assert rid is not None
    head = laptop.store.head(laptop.ctx.tenant_id)
    decided = laptop.push(
        decisions=(Decision(rid, "accepted", at(2)), Decision("no-such-record", "rejected", at(2)))
    )
    assert decided.head == head + 1
    assert laptop.records() == []
    (record,) = laptop.records(status=None)
    assert (record.status, record.decided_at, record.seq) == ("accepted", at(2), head + 1)
    assert laptop.store.pull(laptop.ctx, head, 10).records == [record]
    # A decision on a closed record changes nothing.
    assert laptop.push(decisions=(Decision(rid, "rejected", at(3)),)).head == head + 1
    assert laptop.records(status="accepted") == [record]
    # A loser and the user's decision on it can arrive in one batch.
    clock = at(4)
    late = phone.item("n1", clock, level=3)
    result = phone.push(
        late, decisions=(Decision(record_id("n1", clock, phone.ctx.device_id), "rejected", at(5)),)
    )
    assert result.results[0].outcome == "suggestion"
    assert [r.status for r in laptop.records(status=None, kind="suggestion")] == ["rejected", "accepted"]
    # four pushes changed something; the decision on a closed record wrote no event either
    assert event_types(laptop).count("SYNC_PUSH") == 4


def test_resolve_conflict_keep(laptop: Dev, phone: Dev) -> None:
    laptop.push(laptop.item("n1", at(1)))
    phone.push(phone.item("n1", at(2)))
    (conflict,) = laptop.records(kind="conflict")
    head = laptop.store.head(laptop.ctx.tenant_id)
    record, item = laptop.store.resolve_conflict(laptop.ctx, conflict.id, "keep", at(3))
    assert item is None
    assert (record.status, record.resolution, record.seq) == ("resolved", "keep", head + 1)
    assert laptop.current("n1").device_id == phone.ctx.device_id
    assert laptop.records(kind="conflict") == []
    with pytest.raises(ConflictState):
        laptop.store.resolve_conflict(laptop.ctx, conflict.id, "restore", at(4))
    assert "CONFLICT_RESOLVED" in event_types(laptop)


def test_resolve_conflict_restore(laptop: Dev, phone: Dev) -> None:
    laptop.push(laptop.item("n1", at(1), text="the laptop's words"))
    phone.push(phone.item("n1", at(2), text="the phone's words"))
    (conflict,) = laptop.records(kind="conflict")
    current = laptop.current("n1")
    record, item = laptop.store.resolve_conflict(laptop.ctx, conflict.id, "restore", at(3))
    assert item is not None and item.seq is not None
    assert (record.status, record.resolution) == ("resolved", "restore")
    assert item.payload == conflict.item.payload
    # written by the hub for the laptop, not as the laptop (whose own queued edits it never held)
    assert (item.truth_level, item.origin_source, item.device_id) == (
        1,
        "user:conflict-resolve",
        f"hub:{laptop.ctx.device_id}",
    )
    assert (item.last_modified_at, item.version) == (at(3), current.version + 1)
    assert (item.base_version, item.base_clock) == (current.version, current.last_modified_at)
    assert item.origin_chain[-1] == OriginStep(1, SOURCES[1], at(1), conflict.id)
    assert laptop.current("n1") == item
    assert laptop.records(kind="conflict") == []  # restoring builds on the current version: nothing new kept
    items, _, last = laptop.pull_all()
    assert last.checksum == live_checksum(items)


def test_resolve_conflict_errors(laptop: Dev, phone: Dev) -> None:
    laptop.push(laptop.item("n1", at(1)))
    phone.push(phone.item("n1", at(2)))
    suggestion = phone.push(phone.item("n1", at(3), level=4)).results[0].record_id
    (conflict,) = laptop.records(kind="conflict")
    head = laptop.store.head(laptop.ctx.tenant_id)
    with pytest.raises(InvalidInput):
        laptop.store.resolve_conflict(laptop.ctx, conflict.id, "merge", at(3))
    with pytest.raises(InvalidInput):
        laptop.store.resolve_conflict(laptop.ctx, conflict.id, "restore", "yesterday")
    with pytest.raises(InvalidInput):  # not later than the current version: nothing changes
        laptop.store.resolve_conflict(laptop.ctx, conflict.id, "restore", at(0))
    with pytest.raises(NotFound):
        laptop.store.resolve_conflict(laptop.ctx, "no-such-record", "keep", at(3))
    with pytest.raises(NotFound):
        laptop.store.resolve_conflict(laptop.ctx, str(suggestion), "keep", at(3))
    assert laptop.store.head(laptop.ctx.tenant_id) == head
    assert laptop.records(kind="conflict") == [conflict]


# -- tombstones ----------------------------------------------------------------------------------
def test_purge_tombstones_moves_the_horizon(laptop: Dev, other: Dev) -> None:
    day = 86400 * 1000
    laptop.push(laptop.item("live", at(0)), laptop.item("old", at(-10 * 86400), deleted=True))
    other.push(other.item("old", at(-20 * 86400), deleted=True))
    # Ten days ago (by the hub's clock) the hub marked how far it had got; nothing was older.
    assert laptop.store.purge_tombstones(NOW_MS - 20 * day, now_ms=NOW_MS - 10 * day) == 0
    laptop.push(
        laptop.item("young", at(-60), deleted=True),
        # received after that mark: its writer's clock, forty days back, does not count
        laptop.item("stale", at(-40 * 86400), deleted=True),
    )
    before = laptop.pull_all()[2].checksum
    assert laptop.store.purge_tombstones(NOW_MS - day) == 2  # both "old" ones, each tenant's
    items, _, last = laptop.pull_all()
    assert [i.entity_id for i in items] == ["live", "young", "stale"]
    assert last.checksum == before
    with pytest.raises(ResyncRequired):
        laptop.store.pull(laptop.ctx, 1, 10)
    assert laptop.store.pull(laptop.ctx, 2, 10).items[0].entity_id == "young"
    with pytest.raises(ResyncRequired):
        laptop.push(laptop.item("new", at(1)), cursor=1)
    assert laptop.store.head(laptop.ctx.tenant_id) == 4
    assert laptop.outcomes(laptop.item("new", at(1)), cursor=2) == ["applied"]
    assert laptop.store.purge_tombstones(NOW_MS - day) == 0
    assert other.store.pull(other.ctx, 0, 10).items == []


# -- events --------------------------------------------------------------------------------------
def test_events_are_listed_oldest_first(laptop: Dev, phone: Dev) -> None:
    laptop.push(laptop.item("n1", at(0)))
    phone.push(phone.item("n1", at(1)))  # CONFLICT_DETECTED
    phone.push(phone.item("n1", at(2), level=2))  # AI_SUGGESTION_GENERATED
    laptop.pull_all()  # SYNC_PULL
    events = laptop.store.events(laptop.ctx.tenant_id)
    assert [e.type for e in events] == [
        "SYNC_PUSH",
        "SYNC_PUSH",
        "CONFLICT_DETECTED",
        "SYNC_PUSH",
        "AI_SUGGESTION_GENERATED",
        "SYNC_PULL",
    ]
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert events[0].detail == {"items": 1, "decisions": 0, "applied": 1, "duplicate": 0}
    assert events[0].device_id == laptop.ctx.device_id and events[0].at
    assert events[5].detail["items"] == 1
    assert laptop.store.events(laptop.ctx.tenant_id, since=events[2].id) == events[3:]
    assert laptop.store.events(laptop.ctx.tenant_id, limit=2) == events[:2]
    assert [e.id for e in laptop.store.events(laptop.ctx.tenant_id, type="SYNC_PUSH")] == [
        e.id for e in events if e.type == "SYNC_PUSH"
    ]
