"""A device's own dead letters (vault migration 0012), in a real vault file: kept with secrets
masked, one row per failure, decided through the device's governed actions and audited; only
the user discards one; a retry needs the engine of its kind in this process."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from truthvault import Vault
from truthvault.errors import ConflictState, InvalidInput, NotFound
from truthvault.kernel import DeadLetter, decode_entry


def _audited(vault: Vault) -> list[str]:
    with closing(sqlite3.connect(vault.path)) as conn:
        return [decode_entry(r[0]).action for r in conn.execute("SELECT entry FROM audit_outbox ORDER BY id")]


def test_a_devices_dead_letter_is_kept_masked_and_decided_through_actions(vault: Vault) -> None:
    letters = vault.dead_letters
    kept = letters.add(
        "automation", "run-1", "rule tag-dates", "boom", {"webhook": {"secret": "s"}, "n": 1}, 3
    )
    assert kept.input == {"webhook": {"secret": "***"}, "n": 1} and kept.status == "open"
    assert letters.add("automation", "run-1", "rule tag-dates", "boom", {}, 3).id == kept.id  # a replay
    assert letters.counts()["open"] == 1

    out = vault.kernel.run("dlq.quarantine", {"id": kept.id[:6], "note": "later"}, actor=vault.actor())
    done = DeadLetter(**out.model_dump(mode="json")["dead_letter"])
    assert done.status == "quarantined" and done.changed_by == "user:cli" and done.note == "later"
    with pytest.raises(ConflictState, match="nothing in this process retries"):
        vault.kernel.run("dlq.retry", {"id": kept.id}, actor=vault.actor())
    letters.on_retry("automation", lambda letter: f"again-{letter.ref}")
    out = vault.kernel.run("dlq.retry", {"id": kept.id}, actor=vault.actor())
    assert out.model_dump(mode="json")["dead_letter"]["retried_as"] == "again-run-1"
    with pytest.raises(ConflictState, match="retried"):
        vault.kernel.run("dlq.discard", {"id": kept.id}, actor=vault.actor())
    assert _audited(vault) == ["dlq.quarantine", "dlq.retry", "dlq.retry", "dlq.discard"]


def test_only_the_user_discards_and_bad_ids_are_refused(vault: Vault) -> None:
    kept = vault.dead_letters.add("event", "ev-1", "PULL_REFUSED", "boom", {}, 1)
    with pytest.raises(Exception, match="only the user"):
        vault.kernel.run("dlq.discard", {"id": kept.id}, actor=vault.actor("automation:r1"))
    assert vault.dead_letters.get(kept.id).status == "open"
    with pytest.raises(InvalidInput, match="at least 4"):
        vault.dead_letters.get("ab")
    with pytest.raises(NotFound):
        vault.dead_letters.get("ffffffff")
    with pytest.raises(Exception, match="id"):
        vault.kernel.run("dlq.discard", {"id": "ab"}, actor=vault.actor())  # the schema: 4 or more
    assert (
        vault.kernel.run("dlq.discard", {"id": kept.id}, actor=vault.actor()).model_dump()["dead_letter"][
            "status"
        ]
        == "discarded"
    )
    assert [x.id for x in vault.dead_letters.list(status="discarded")] == [kept.id]  # kept, not dropped
