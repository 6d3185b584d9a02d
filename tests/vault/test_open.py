"""Opening a vault: files, permissions, identity, and Alembic migrations."""

from __future__ import annotations

import contextlib
import sqlite3
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from subprocess import PIPE

import pytest
from alembic.script import ScriptDirectory

import truthvault.vault as vault_pkg
from truthvault.errors import ConflictState, InvalidInput, StorageError
from truthvault.vault import DB_NAME, HEAD_REVISION, Vault, new_id
from truthvault.vault._schema import alembic_config, current_revision, upgrade

from ..certs import make_cert, pem


def test_open_creates_private_folder_and_file(tmp_path: Path) -> None:
    home = tmp_path / "a" / "home"
    with Vault.open(home, source="user:cli") as v:
        assert v.path == home / DB_NAME
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert stat.S_IMODE((home / DB_NAME).stat().st_mode) == 0o600
    conn = sqlite3.connect(home / DB_NAME)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


def test_identity_defaults_and_persistence(tmp_path: Path) -> None:
    with Vault.open(tmp_path / "h", source="user:cli") as v:
        device = v.device_id
        assert uuid.UUID(device).version == 4
        assert (v.tenant_id, v.replica.hub_url, v.replica.hub_token, v.replica.cursor) == (
            "local",
            None,
            None,
            0,
        )
        v.replica.set_cursor(7)
    with Vault.open(tmp_path / "h", source="user:cli") as v:
        assert v.device_id == device
        assert v.replica.cursor == 7


def test_clock_persists_across_opens(tmp_path: Path) -> None:
    with Vault.open(tmp_path / "h", source="user:cli") as v:
        stamp = v.put("note", {"t": "x"}).item.last_modified_at
    with Vault.open(tmp_path / "h", source="user:cli") as v:
        assert v.replica.clock.last >= stamp
        assert v.put("note", {"t": "y"}).item.last_modified_at > stamp


def test_set_cursor_rejects_negative(vault: Vault) -> None:
    with pytest.raises(InvalidInput):
        vault.replica.set_cursor(-1)


def test_join_records_hub_and_restamps_unsynced(vault: Vault) -> None:
    old_device = vault.device_id
    mine = vault.put("note", {"t": "mine"}).item
    sug = vault.put("note", {"t": "ai"}, entity_id=mine.entity_id, source="ai-local:llama3")
    vault.replica.join("http://hub", "secret-token", "tenant-1", "family", "device-1", "local_first")
    assert (vault.replica.hub_url, vault.replica.hub_token, vault.tenant_id, vault.device_id) == (
        "http://hub",
        "secret-token",
        "tenant-1",
        "device-1",
    )
    item = vault.get(mine.entity_id)
    assert (item.tenant_id, item.device_id) == ("tenant-1", "device-1")
    assert old_device != "device-1"
    [record] = vault.suggestions()
    assert record.id != sug.record_id  # the id follows its item's new device
    assert (record.item.tenant_id, record.item.device_id) == ("tenant-1", "device-1")
    batch = vault.replica.pending_batch()
    assert batch is not None
    assert {i.tenant_id for i in batch.items} == {"tenant-1"}


def test_join_keeps_provenance_pointing_at_renamed_records(vault: Vault) -> None:
    # Accepting a suggestion names its record in the origin chain; joining renames the record
    # (its id follows the item's new device id), so the chain must follow too.
    mine = vault.put("note", {"t": "mine"}).item
    sug = vault.put("note", {"t": "ai"}, entity_id=mine.entity_id, source="ai-local:llama3")
    assert sug.record_id is not None
    accepted = vault.accept(sug.record_id)
    assert [s.ref for s in accepted.origin_chain if s.ref] == [sug.record_id]
    vault.replica.join("http://hub", "secret-token", "tenant-1", "family", "device-1", "local_first")
    [record] = vault.suggestions(status=None)
    assert record.id != sug.record_id
    assert [s.ref for s in vault.get(mine.entity_id).origin_chain if s.ref] == [record.id]
    assert vault.get_record(record.id).status == "accepted"


def test_join_refuses_another_hub_after_sync(vault: Vault) -> None:
    vault.replica.join("http://hub", "t", "tenant-1", "fam", "dev-1", "local_first")
    vault.replica.set_cursor(3)
    vault.replica.join("http://hub", "t2", "tenant-1", "fam", "dev-1", "local_first")  # same hub: fine
    assert vault.replica.hub_token == "t2"
    with pytest.raises(ConflictState):
        vault.replica.join("http://other", "t", "tenant-1", "fam", "dev-1", "local_first")
    with pytest.raises(ConflictState):
        vault.replica.join("http://hub", "t", "tenant-2", "fam", "dev-1", "local_first")
    with pytest.raises(InvalidInput):
        vault.replica.join("http://hub", "t", "tenant-1", "fam", "dev-1", "sideways")


def test_joining_another_tenant_before_any_sync_leaves_the_first_ones_keys_behind(vault: Vault) -> None:
    """Tenant keys never reach another tenant: a keyring kept here would be merged into the new
    tenant's and shared with its devices (and a copy of the new tenant's, sharing no key with
    it, would look made up)."""
    from truthvault.crypto import Keyring

    vault.replica.join("http://hub", "t", "tenant-1", "fam", "dev-1", "local_first")
    ring = Keyring.new()
    vault.replica.set_keyring(ring)
    vault.replica.join("http://hub", "t", "tenant-1", "fam", "dev-2", "local_first")  # enrolled anew
    assert vault.replica.keyring().current == ring.current  # type: ignore[union-attr]
    vault.replica.join("http://hub", "t", "tenant-2", "other", "dev-3", "local_first")
    assert vault.replica.keyring() is None


def test_new_id_is_time_ordered_uuid7() -> None:
    ids = [new_id() for _ in range(2000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 7 for i in ids)


def test_public_api_is_curated() -> None:
    assert sorted(vault_pkg.__all__) == sorted(
        [
            "DB_NAME",
            "WORKFLOWS_FILE",
            "EVENT_TYPES",
            "Applied",
            "Applier",
            "DeviceAudit",
            "Replica",
            "ResyncState",
            "HEAD_REVISION",
            "LOCAL_ONLY_REASON",
            "KEY_FILE",
            "MAX_PAYLOAD_BYTES",
            "RESYNC_REASON",
            "ApplyStats",
            "Event",
            "Overruled",
            "Refusal",
            "Vault",
            "VaultBrokerStore",
            "VaultRecord",
            "WriteResult",
            "new_id",
            "payload_of",
            "VaultPolicies",
            "check_setter",
            "vault_policies",
            # automations, durable workflows and backups
            "Automations",
            "RuleEntry",
            "vault_engine",
            "BACKUP_KEY_FILE",
            "backup_key",
            "open_backup",
            "open_backup_to",
            "read_key",
            "schedule_of",
            "set_schedule",
            # offline governance (vault.offline)
            "OfflineState",
            "Parked",
            "ParkStats",
            # the device actions and their results
            "DEVICE_ACTIONS",
            "EntitiesResult",
            "EntityResult",
            "RecordResult",
            "Written",
        ]
    )
    for name in vault_pkg.__all__:
        assert getattr(vault_pkg, name) is not None


# -- migrations ------------------------------------------------------------------------


def test_head_revision_matches_alembic(tmp_path: Path) -> None:
    script = ScriptDirectory.from_config(alembic_config(tmp_path / "x.db"))
    assert script.get_current_head() == HEAD_REVISION


def test_vault_made_at_first_revision_upgrades_on_open(tmp_path: Path) -> None:
    home = tmp_path / "old"
    home.mkdir()
    path = home / DB_NAME
    upgrade(path, "0001")
    conn = sqlite3.connect(path)
    assert current_revision(conn) == "0001"
    conn.execute("INSERT INTO meta (key, value) VALUES ('device_id', 'old-device')")
    conn.execute(
        "INSERT INTO entities (entity_id, entity_type, tenant_id, payload, truth_level, origin_source, "
        "origin_chain, accepted_by_user, last_modified_by_level, version, base_version, base_clock, "
        "last_modified_at, device_id, contract_version, deleted, mutation, hub_known) "
        "VALUES ('e1', 'note', 'local', CAST('{\"title\": \"ancient scroll\"}' AS BLOB), 1, 'user:cli', '[]', "
        "0, 1, 1, 0, NULL, '2026-01-01T00:00:00.000Z-0000', 'old-device', 1, 0, 1, 0)"
    )
    conn.commit()
    conn.close()
    with Vault.open(home, source="user:cli") as v:
        assert v.device_id == "old-device"
        assert [i.entity_id for i in v.search("scroll")] == ["e1"]  # indexed by revision 0002
        assert v.get("e1").last_modified_at == "2026-01-01T00:00:00.000Z-0000"
    conn = sqlite3.connect(path)
    assert current_revision(conn) == HEAD_REVISION
    conn.close()


def test_open_skips_alembic_when_current(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Vault.open(tmp_path / "h", source="user:cli").close()

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("alembic must not run on an up-to-date vault")

    monkeypatch.setattr("truthvault.vault._schema.upgrade", fail)
    with Vault.open(tmp_path / "h", source="user:cli") as v:
        assert v.count() == 0


def test_open_of_a_foreign_file_is_a_storage_error(tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    (home / DB_NAME).write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="cannot open the vault"):
        Vault.open(home, source="user:cli")


def test_processes_opening_a_new_vault_together_migrate_once(tmp_path: Path) -> None:
    # Real processes, released at once onto a vault that does not exist yet.
    code = (
        "import sys; from truthvault.vault import Vault; "
        "print('ready', flush=True); sys.stdin.readline(); "
        "v = Vault.open(sys.argv[1], source='user:cli'); v.put('note', {'text': sys.argv[2]}); v.close()"
    )
    home = tmp_path / "new"
    with contextlib.ExitStack() as stack:
        procs = [
            stack.enter_context(
                subprocess.Popen(
                    [sys.executable, "-c", code, str(home), f"from {n}"],
                    stdin=PIPE,
                    stdout=PIPE,
                    stderr=PIPE,
                    text=True,
                )
            )
            for n in range(4)
        ]
        assert [p.stdout.readline() for p in procs if p.stdout] == ["ready\n"] * 4
        for p in procs:
            assert p.stdin
            p.stdin.write("go\n")
            p.stdin.flush()
        errors = [p.stderr.read() for p in procs if p.stderr]
        assert [p.wait(timeout=120) for p in procs] == [0] * 4, errors
    with Vault.open(home, source="user:cli") as v:
        assert v.count() == 4
    conn = sqlite3.connect(home / DB_NAME)
    assert current_revision(conn) == HEAD_REVISION
    conn.close()


def _raw_meta(home: Path, key: str) -> str:
    with contextlib.closing(sqlite3.connect(home / DB_NAME)) as conn:
        return str(conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])


def test_key_path_is_kept_relative_to_the_home_so_a_moved_folder_keeps_its_key(tmp_path: Path) -> None:
    home = tmp_path / "first"
    with Vault.open(home, source="user:cli") as v:
        (home / "device.key").write_bytes(b"k")
        v.replica.join(
            "http://hub", None, "tenant-1", "fam", "dev-1", "local_first", key_path=str(home / "device.key")
        )
    assert _raw_meta(home, "key_path") == "device.key"
    moved = tmp_path / "renamed"
    home.rename(moved)
    with Vault.open(moved, source="user:cli") as v:
        assert v.replica.key_path == str(moved / "device.key")


def test_an_absolute_key_path_of_an_older_vault_falls_back_to_the_key_in_its_home(tmp_path: Path) -> None:
    home = tmp_path / "first"
    with Vault.open(home, source="user:cli") as v:
        v.replica.join("http://hub", None, "tenant-1", "fam", "dev-1", "local_first", key_path="device.key")
    with contextlib.closing(sqlite3.connect(home / DB_NAME)) as conn, conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'key_path'", (str(home / "device.key"),))
    (home / "device.key").write_bytes(b"k")
    with Vault.open(home, source="user:cli") as v:
        assert v.replica.key_path == str(home / "device.key")  # an absolute path that exists is used as is
    moved = tmp_path / "renamed"
    home.rename(moved)
    with Vault.open(moved, source="user:cli") as v:
        assert v.replica.key_path == str(moved / "device.key")
    # a key kept outside the home stays where it was named
    outside = tmp_path / "keys" / "laptop.key"
    outside.parent.mkdir()
    outside.write_bytes(b"k")
    with Vault.open(moved, source="user:cli") as v:
        v.replica.join("http://hub", None, "tenant-1", "fam", "dev-1", "local_first", key_path=str(outside))
        assert v.replica.key_path == str(outside)


def test_set_hub_cert_pins_a_certificate_of_an_https_hub_only(vault: Vault) -> None:
    cert = pem(make_cert()[0])
    with pytest.raises(ConflictState):
        vault.replica.set_hub_cert(cert)  # not joined
    vault.replica.join("http://hub", "t", "tenant-1", "fam", "dev-1", "local_first")
    with pytest.raises(ConflictState):
        vault.replica.set_hub_cert(cert)  # plain HTTP has no certificate
    vault.replica.join("https://hub", "t", "tenant-1", "fam", "dev-1", "local_first")
    with pytest.raises(InvalidInput):
        vault.replica.set_hub_cert("not a certificate")
    vault.replica.set_hub_cert(cert)
    assert vault.replica.hub_cert == cert


def test_joining_the_same_tenant_again_keeps_who_wrote_the_unsynced_changes(vault: Vault) -> None:
    # A rejoin (a revoked device enrolled again): the old device id is a real device of the
    # tenant, the writer of what is queued; renaming would make a version the hub may already
    # hold (a push whose answer was lost) look like another device's, and keep it as a conflict.
    vault.replica.join("http://hub", "t", "tenant-1", "fam", "dev-1", "local_first")
    mine = vault.put("note", {"t": "mine"}).item
    sug = vault.put("note", {"t": "ai"}, entity_id=mine.entity_id, source="ai-local:llama3")
    before = vault.replica.pending_batch()
    vault.replica.join("http://hub", "t2", "tenant-1", "fam", "dev-2", "local_first")
    assert vault.device_id == "dev-2"
    assert vault.get(mine.entity_id).device_id == "dev-1"
    assert [r.id for r in vault.suggestions()] == [sug.record_id]
    assert vault.replica.pending_batch() == before  # the same queue, the same numbers
    assert vault.put("note", {"t": "new"}).item.device_id == "dev-2"


def test_a_home_given_with_a_tilde_is_the_users(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    with Vault.open("~/notes", source="user:test") as vault:
        assert vault.home == tmp_path / "notes"
    assert (tmp_path / "notes").is_dir()
