"""A device at critical offline risk (its last sync over 30 days old, or behind a breaking
contract) refuses every action but reads and capture through its kernel, FORBIDDEN with a
reason naming the risk and how to clear it, audited as any refusal; a sync clears it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from truthvault import Vault
from truthvault.kernel import ActionForbidden, decode_entry

DAY = 86_400.0


@pytest.fixture
def joined(tmp_path: Path) -> Iterator[Vault]:
    vault = Vault.open(tmp_path / "v", source="user:cli")
    vault.replica.join("http://127.0.0.1:9", "token", "tenant-1", "t", "device-1", "cloud_first")
    try:
        yield vault
    finally:
        vault.close()


def _denials(vault: Vault) -> list[tuple[str, str | None]]:
    rows = vault._db.conn.execute("SELECT entry FROM audit_outbox ORDER BY id").fetchall()
    entries = [decode_entry(bytes(r[0])) for r in rows]
    return [(e.action, e.reason) for e in entries if e.decision == "denied"]


def test_at_critical_risk_only_reads_and_capture_run(joined: Vault) -> None:
    kernel, actor = joined.kernel, joined.actor()
    note = kernel.run("notes.create", {"text": "before"}, actor=actor).model_dump()["item"]["entity_id"]
    joined.offline.note_synced(time.time() - 31 * DAY)
    # capture and reads go on
    kernel.run("notes.create", {"text": "captured in the field"}, actor=actor)
    kernel.run("tasks.create", {"title": "follow up"}, actor=actor)
    assert kernel.run("entity.get", {"id": note}, actor=actor).model_dump()["item"]["entity_id"] == note
    # anything else is refused, saying why and what to do
    for name, params in [
        ("entity.edit", {"id": note, "changes": {"text": "changed"}}),
        ("entity.delete", {"id": note}),
        ("entity.put", {"type": "note", "data": {"text": "x"}}),
    ]:
        with pytest.raises(ActionForbidden) as refused:
            kernel.run(name, params, actor=actor)
        assert refused.value.code == "FORBIDDEN"
        message = refused.value.message
        assert "critical offline risk (offline for 31 days (critical threshold: 30))" in message
        assert "may only read and capture until it syncs" in message and "sync first" in message
    assert joined.get(note).data() == {"text": "before"}
    denied = _denials(joined)
    assert [a for a, _ in denied] == ["entity.edit", "entity.delete", "entity.put"]
    assert all(r is not None and "critical offline risk" in r for _, r in denied)
    # a sync clears it, in this process too (the kernel's cached risk is read again)
    joined.offline.note_synced()
    assert kernel.run("entity.edit", {"id": note, "changes": {"text": "after sync"}}, actor=actor)
    assert joined.get(note).data() == {"text": "after sync"}


def test_thirty_days_is_not_yet_critical(joined: Vault) -> None:
    note = joined.put("note", {"text": "n"}).item.entity_id
    joined.offline.note_synced(time.time() - 29 * DAY)
    joined.kernel.run("entity.edit", {"id": note, "changes": {"text": "ok"}}, actor=joined.actor())
    assert _denials(joined) == []


def test_a_device_behind_a_breaking_contract_is_critical_at_once(joined: Vault) -> None:
    note = joined.put("note", {"text": "n"}).item.entity_id
    joined.offline.note_synced()
    joined.offline.note_behind([("note", 3, 2)])
    with pytest.raises(
        ActionForbidden, match=r"contract note v3 \(major 2\) cannot be used by this truthvault"
    ):
        joined.kernel.run("entity.edit", {"id": note, "changes": {"text": "x"}}, actor=joined.actor())
    joined.kernel.run("notes.create", {"text": "capture still works"}, actor=joined.actor())
    joined.offline.note_behind(())
    joined.kernel.run("entity.edit", {"id": note, "changes": {"text": "x"}}, actor=joined.actor())
    assert joined.get(note).data() == {"text": "x"}


def test_a_vault_with_no_hub_is_never_stale(tmp_path: Path) -> None:
    with Vault.open(tmp_path / "solo", source="user:cli") as vault:
        note = vault.put("note", {"text": "n"}).item.entity_id
        vault.offline.note_synced(time.time() - 400 * DAY)
        vault.kernel.run("entity.delete", {"id": note}, actor=vault.actor())
        assert _denials(vault) == []


def test_another_process_sees_the_sync_that_cleared_it(joined: Vault) -> None:
    note = joined.put("note", {"text": "n"}).item.entity_id
    joined.offline.note_synced(time.time() - 45 * DAY)
    with pytest.raises(ActionForbidden):
        joined.kernel.run("entity.edit", {"id": note, "changes": {"text": "x"}}, actor=joined.actor())
    with Vault.open(joined.home, source="user:cli") as other:
        other.offline.note_synced()
    joined.kernel.run("entity.edit", {"id": note, "changes": {"text": "x"}}, actor=joined.actor())
