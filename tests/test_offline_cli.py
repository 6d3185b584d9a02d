"""``truthvault parked`` and ``truthvault hub device list --stale`` (alias ``hub devices``) on
real files, in process: a table, --json, one-line errors naming the field."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from truthvault import Vault
from truthvault.cli import main
from truthvault.hub import DeviceReport
from truthvault.hub.store import open_store

DAY = 86_400.0
BREAKING = {
    "type": "object",
    "properties": {"body": {"type": "string"}},
    "required": ["body"],
}


def tv(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    monkeypatch.setenv("TRUTHVAULT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    assert tv(capsys, "init")[0] == 0
    return tmp_path / "home"


def test_parked_lists_and_applies_after_an_edit(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Vault.open(home, source="user:cli") as vault:
        eid = vault.put("note", {"text": "from the field"}).item.entity_id
        vault.contracts.store([(None, vault.contracts.propose("note", BREAKING, major=True))])
        assert [e for e, _ in vault.offline.screen_queue().parked] == [eid]
        [parked] = vault.offline.parked()
    assert tv(capsys, "sync", "rejected")[1].strip() == "nothing was refused"  # listed apart
    code, out, _ = tv(capsys, "parked")
    assert code == 0 and eid in out and "no upcaster from major 1" in out
    code, out, _ = tv(capsys, "parked", "--json")
    [said] = json.loads(out)
    assert (said["id"], said["entity_id"], said["entity_type"], said["contract_version"]) == (
        parked.id,
        eid,
        "note",
        1,
    )
    # as it is, it does not fit: one line naming the field, and a hint
    code, _, err = tv(capsys, "parked", "apply", str(parked.id))
    lines = err.strip().splitlines()
    assert (
        code == 1 and lines[0].startswith("error: ") and 'payload: "body" is a required property' in lines[0]
    )
    assert lines[1].startswith(f"hint: edit it to fit ('truthvault edit {eid} ...')")
    assert tv(capsys, "parked", "apply", "999")[2].startswith("error: no parked item 999")
    assert "Invalid value for 'N'" in tv(capsys, "parked", "apply", "0")[2]
    # the user edits it to fit the new version, then applies it: nothing lost, the note dropped
    assert tv(capsys, "edit", eid, '{"body": "from the field"}', "--replace")[0] == 0
    code, out, _ = tv(capsys, "parked", "apply", str(parked.id))
    assert code == 0 and "was edited since" in out
    assert tv(capsys, "parked")[1].strip() == "nothing is parked"
    with Vault.open(home, source="user:cli") as vault:
        assert vault.get(eid).data() == {"body": "from the field"} and vault.get(eid).contract_version == 2


def test_parked_apply_of_an_item_that_fits_as_it_is(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Vault.open(home, source="user:cli") as vault:
        eid = vault.put("note", {"title": "t"}).item.entity_id
        loose = {"type": "object", "properties": {"title": {"type": "string"}}}
        vault.contracts.store([(None, vault.contracts.propose("note", loose, major=True))])
        vault.offline.screen_queue()
        [parked] = vault.offline.parked()
    code, out, _ = tv(capsys, "parked", "apply", str(parked.id))
    assert code == 0 and out.startswith(f"applied {eid}")
    with Vault.open(home, source="user:cli") as vault:
        assert vault.get(eid).contract_version == 2 and vault.replica.pending_count() == 1


def test_hub_devices_stale(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(home.parent / "hub.db")
    store = open_store(db, create=True)
    try:
        store.add_tenant("t", "cloud_first")
        _, token = store.add_device("t", "field-laptop")
        store.add_device("t", "never-synced")
        ctx = store.authenticate(token)
        store.contracts.report(ctx, {"note": [1]}, DeviceReport("0.1.0", None, 7, 0))
    finally:
        store.close()
    # the field laptop last synced 40 days ago (the report's time is the hub's: set it back)
    old = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(time.time() - 40 * DAY))
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE devices SET last_seen_at = ? WHERE name = 'field-laptop'", (old,))
        conn.execute("UPDATE device_reports SET reported_at = ?", (old,))
    code, out, _ = tv(capsys, "hub", "device", "list", "--tenant", "t", "--stale", "--db", db, "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["never-synced"]["risk"] == "low" and rows["never-synced"]["last_sync_at"] is None
    laptop = rows["field-laptop"]
    assert (laptop["risk"], laptop["days_offline"], laptop["app_version"], laptop["pending"]) == (
        "critical",
        40,
        "0.1.0",
        7,
    )
    assert laptop["contracts"] == {"note": [1]} and laptop["allowed"] == ["read", "capture"]
    assert laptop["reasons"] == ["offline for 40 days (critical threshold: 30)"]
    assert list(rows) == ["field-laptop", "never-synced"]  # riskiest first
    code, out, _ = tv(capsys, "hub", "devices", "--tenant", "t", "--stale", "--db", db)
    assert code == 0 and "field-laptop" in out and "never-synced" in out
    assert "critical" in out and "read, capture" in out and "offline for 40 days" in out
    assert tv(capsys, "hub", "devices", "--tenant", "nope", "--stale", "--db", db)[2].startswith("error: ")


def test_retrying_a_pulled_change_launches_no_workflow_engine(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A launch resumes what a killed process left running (a key rotation, which would be
    undone there without its passphrase): retrying a pulled change's dead letter runs no workflow."""
    with Vault.open(home) as vault:
        letter = vault.dead_letters.add(
            "event", "pull: note n1 v1", "sync.pull (unknown_key)", "unknown_key: no key",
            {"entity_type": "note", "entity_id": "n1", "version": 1, "record_id": None, "sealed": "{}"}, 1,
        )  # fmt: skip
    code, _, err = tv(capsys, "dlq", "retry", letter.id)
    assert code == 1 and "no tenant key" in err
    assert not (home / "workflows.sqlite").exists()
