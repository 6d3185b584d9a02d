"""The device's audit outbox: entries kept in the action's transaction, sealed into numbered
batches under the device's current ids, gone once the hub has them."""

from __future__ import annotations

from pathlib import Path

import pytest

from truthvault.kernel import Actor, AuditRecord, decode_entry, encode_record
from truthvault.vault import Vault


def _record(i: int) -> AuditRecord:
    return AuditRecord("", "notes.create", "1.0.0", Actor("user:cli"), "allowed", f"t{i}", f"{i:064x}")


def test_sealing_numbers_batches_once_and_reseals_under_new_ids(tmp_path: Path) -> None:
    with Vault.open(tmp_path / "v", source="user:cli") as vault:
        for i in range(3):
            vault.audit.append(_record(i))
        first = vault.audit.seal("t", "d1")
        assert [seq for seq, _ in first] == [1]
        assert {(decode_entry(e).tenant, decode_entry(e).device) for e in first[0][1]} == {("t", "d1")}
        assert vault.audit.seal("t", "d1") == first  # not sent yet: the same batch, sent again
        vault.audit.append(_record(3))
        second = vault.audit.seal("t", "d1")
        assert [(seq, len(entries)) for seq, entries in second] == [(1, 3), (2, 1)]
        vault.audit.sent(1)
        # enrolled again as another device: what waits is sealed anew, under the new id
        resealed = vault.audit.seal("t", "d2")
        assert [(seq, len(entries)) for seq, entries in resealed] == [(3, 1)]
        assert decode_entry(resealed[0][1][0]).device == "d2"
        vault.audit.sent(3)
        assert vault.audit.pending() == 0


def test_an_entry_exists_only_if_its_transaction_committed(tmp_path: Path) -> None:
    with Vault.open(tmp_path / "v", source="user:cli") as vault:
        with pytest.raises(RuntimeError), vault._db.tx():
            vault.audit.append(_record(0))
            raise RuntimeError("the action failed")
        with vault._db.tx():
            vault.audit.append(_record(1))
        assert vault.audit.pending() == 1


def test_an_outbox_made_with_autoincrement_keeps_its_entries_and_order_when_migrated(tmp_path: Path) -> None:
    import sqlite3

    from truthvault.vault import DB_NAME
    from truthvault.vault._schema import upgrade

    home = tmp_path / "old"
    home.mkdir()
    upgrade(home / DB_NAME, "0009")
    conn = sqlite3.connect(home / DB_NAME)
    # ids with a gap, as sent entries leave; the last one sealed into a batch already
    for row_id, i, seq in ((3, 0, None), (7, 1, None), (9, 2, 4)):
        conn.execute(
            "INSERT INTO audit_outbox (id, entry, batch_seq) VALUES (?, ?, ?)",
            (row_id, encode_record(_record(i)), seq),
        )
    conn.commit()
    conn.close()
    with Vault.open(home, source="user:cli") as vault:
        rows = vault._db.conn.execute("SELECT id, batch_seq FROM audit_outbox ORDER BY id").fetchall()
        assert rows == [(3, None), (7, None), (9, 4)]
        assert vault._db.conn.execute(
            "SELECT count(*) FROM sqlite_sequence WHERE name = 'audit_outbox'"
        ).fetchone() == (0,)
        vault.audit.append(_record(3))  # a new entry comes after every entry held
        assert vault._db.conn.execute("SELECT max(id) FROM audit_outbox").fetchone() == (10,)
        # sealed under other ids, the batch is sealed anew: every entry, in the order held
        batches = vault.audit.seal("t", "d")
        assert [(seq, [decode_entry(e).input_hash[-1] for e in entries]) for seq, entries in batches] == [
            (1, ["0", "1", "2", "3"])
        ]


def test_the_tenant_an_entry_takes_follows_a_join_here_or_in_another_process(tmp_path: Path) -> None:
    import sqlite3

    from truthvault.vault import DB_NAME

    with Vault.open(tmp_path / "v", source="user:cli") as vault:
        db = vault._db
        assert db.tenant() == "local"  # a vault of its own
        other = sqlite3.connect(tmp_path / "v" / DB_NAME)
        other.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('tenant_id', 'elsewhere')")
        other.commit()
        other.close()
        assert db.tenant() == "elsewhere"  # another process's commit: data_version moved
        with db.tx():
            db.set_meta("tenant_id", "joined")
            db.keys_epoch += 1  # as a join here marks it
            assert db.tenant() == "joined"
        vault.kernel.run("notes.create", {"text": "x"}, actor=Actor("user:cli", device_id=vault.device_id))
        [[_, entries]] = vault.audit.seal("joined", vault.device_id)
        assert decode_entry(entries[-1]).tenant == "joined"
