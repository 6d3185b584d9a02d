"""The device's audit outbox: entries kept in the action's transaction, sealed into numbered
batches under the device's current ids, gone once the hub has them."""

from __future__ import annotations

from pathlib import Path

import pytest

from truthvault.kernel import Actor, AuditRecord, decode_entry
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
