"""The vault by composition (issue 10): the user's API on Vault, the sync plumbing on
vault.replica, the writer's source set once, rows read by name, re-sync state an enum."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from truthvault.errors import InvalidSource
from truthvault.vault import Replica, ResyncState, Vault
from truthvault.vault._codec import SELECT_COLUMNS, item_from_row

#: the user's API: everything public on a Vault
USER_API = {
    "open",
    "close",
    "put",
    "edit",
    "delete",
    "upgrade_truth",
    "get",
    "list",
    "count",
    "search",
    "search_scored",
    "records",
    "suggestions",
    "conflicts",
    "get_record",
    "accept",
    "reject",
    "resolve_conflict",
    "events",
    "event_types",
    "add_event",
    "import_jsonl",
    "export_jsonl",
    # the governed path over this vault
    "kernel",
    # automation rules and their runner (docs/automations.md)
    "automations",
    "actor",
    "transaction",
    # the input broker: approvals and requests for input (docs/kernel-approvals.md)
    "broker",
}
IDENTITY = {"home", "path", "source", "device_id", "tenant_id", "tenant_name", "vault_mode"}
PLUMBING = {
    "ack",
    "pending_batch",
    "pending_count",
    "renumber_pending",
    "begin_resync",
    "finish_resync",
    "apply_pull",
    "refuse_pushed",
    "refusals",
    "retry_refused",
    "forget_refused",
    "checksum",
    "records_checksum",
    "history_mark",
    "acked_mutation",
    "set_cursor",
    "cursor",
    "join",
    "set_key_path",
    "set_hub_cert",
    "hub_url",
    "hub_token",
    "hub_auth",
    "key_path",
    "hub_cert",
    "keyring",
    "set_keyring",
    "resyncing",
    "resync_state",
    "clock",
}


def test_vault_holds_the_user_api_and_the_replica_the_plumbing(tmp_path: Path) -> None:
    public = {name for name in dir(Vault) if not name.startswith("_")}
    assert public == USER_API | IDENTITY
    assert Vault.__mro__ == (Vault, object)  # no mixins
    assert {name for name in dir(Replica) if not name.startswith("_")} >= PLUMBING
    with Vault.open(tmp_path / "v") as vault:
        assert isinstance(vault.replica, Replica)
        assert vault.replica.cursor == 0 and vault.replica.pending_count() == 0


def test_a_write_is_made_as_the_source_the_vault_was_opened_with(tmp_path: Path) -> None:
    with Vault.open(tmp_path / "v", source="ai-local:llama3") as vault:
        assert vault.source == "ai-local:llama3"
        mine = vault.put("note", {"t": "draft"}).item
        assert (mine.origin_source, mine.truth_level) == ("ai-local:llama3", 3)
        # a call may still name another source
        edited = vault.edit(mine.entity_id, {"t": "mine now"}, source="user:desktop").item
        assert (edited.origin_source, edited.truth_level, edited.accepted_by_user) == (
            "user:desktop",
            1,
            True,
        )


def test_a_write_with_no_source_is_refused(tmp_path: Path) -> None:
    with Vault.open(tmp_path / "v") as vault:
        assert vault.source is None
        with pytest.raises(InvalidSource, match="no source for this write"):
            vault.put("note", {"t": "x"})
        assert vault.count() == 0
        eid = vault.put("note", {"t": "x"}, source="user:desktop").item.entity_id
        for write in (
            lambda: vault.edit(eid, {"t": "y"}),
            lambda: vault.delete(eid),
            lambda: vault.upgrade_truth(eid),
        ):
            with pytest.raises(InvalidSource, match="open the vault with source="):
                write()
        assert vault.get(eid).origin_source == "user:desktop"
    with pytest.raises(InvalidSource):
        Vault.open(tmp_path / "v", source="nobody")


def test_nothing_in_the_library_defaults_to_the_command_line_source() -> None:
    for cls in (Vault, Replica):
        for name, member in inspect.getmembers(cls, inspect.isfunction):
            for param in inspect.signature(member).parameters.values():
                assert param.default != "user:cli", f"{cls.__name__}.{name}({param.name}=)"


def test_entity_rows_are_unpacked_by_the_names_selected() -> None:
    names = item_from_row.__code__.co_varnames[1 : 1 + len(SELECT_COLUMNS)]
    assert [name.lstrip("_") for name in names] == list(SELECT_COLUMNS)


def test_resync_state_is_an_enum_stored_as_before(tmp_path: Path) -> None:
    with Vault.open(tmp_path / "v") as vault:
        replica = vault.replica
        assert replica.resync_state is ResyncState.NONE and not replica.resyncing
        replica.begin_resync()
        assert replica.resync_state is ResyncState.FULL and replica.resyncing
        assert replica.finish_resync() == 0
        replica.begin_resync(hub_reset=True)
        assert replica.resync_state is ResyncState.HUB_RESET
        # the stored values are those vaults made before the enum hold
        row = vault._db.conn.execute("SELECT value FROM meta WHERE key = 'resyncing'").fetchone()
        assert row[0] == "2"
        replica.finish_resync()
        assert replica.resync_state is ResyncState.NONE
