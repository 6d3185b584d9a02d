"""A vault's entity contracts: writes are made and checked under their type's newest version."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from truthvault.errors import InvalidInput, NotFound
from truthvault.kernel import BreakingChange, Contract
from truthvault.vault import Vault

NOTE_V2 = {
    "type": "object",
    "properties": {
        "text": {"type": "string"},
        "title": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "pinned": {"type": "boolean"},
    },
}


def test_writes_carry_their_contract_version_and_a_free_form_type_is_unchecked(vault: Vault) -> None:
    assert vault.put("note", {"text": "milk"}).item.contract_version == 1
    assert vault.put("recipe", {"anything": [1, {"goes": True}]}).item.contract_version == 1
    v2 = vault.contracts.propose("note", NOTE_V2)
    vault.contracts.store([(None, v2)])
    item = vault.put("note", {"text": "bread", "pinned": True}).item
    assert item.contract_version == 2
    assert vault.get(item.entity_id).contract_version == 2


def test_a_payload_the_contract_refuses_is_not_written_and_the_error_names_the_field(vault: Vault) -> None:
    with pytest.raises(
        InvalidInput, match=r'^payload\.title: 5 is not of type "string" \(note contract v1\)$'
    ):
        vault.put("note", {"text": "x", "title": 5})
    with pytest.raises(InvalidInput, match=r"^payload\.done: "):
        vault.put("task", {"title": "t", "done": "yes"})
    assert vault.count() == 0
    note = vault.put("note", {"text": "ok"}).item
    with pytest.raises(InvalidInput, match=r"^payload\.tags\[0\]: "):
        vault.edit(note.entity_id, {"tags": [1]})
    assert vault.get(note.entity_id).data() == {"text": "ok"}
    vault.delete(note.entity_id)  # a tombstone is not checked
    assert vault.get(note.entity_id, include_deleted=True).deleted


def test_a_suggestion_is_checked_too(vault: Vault) -> None:
    note = vault.put("note", {"text": "mine"}).item
    with pytest.raises(InvalidInput, match=r"^payload\.text: "):
        vault.edit(note.entity_id, {"text": 3}, source="ai-local:m")


def test_contracts_are_kept_in_the_vault_file(make_vault: Callable[[str], Vault], tmp_path: Path) -> None:
    vault = make_vault("a")
    v2 = vault.contracts.propose("note", NOTE_V2)
    assert vault.contracts.store([(None, v2), (None, v2)]) == 1
    vault.close()
    again = Vault.open(tmp_path / "a", source="user:cli")
    try:
        assert [c.version for c in again.contracts.list("note")] == [1, 2]
        assert again.contracts.get("note").schema["properties"]["pinned"] == {"type": "boolean"}
        assert again.contracts.held() == {"note": [2], "task": [1]}
        with pytest.raises(InvalidInput, match="pinned"):
            again.put("note", {"pinned": "yes"})
    finally:
        again.close()


def test_another_handle_on_the_same_file_sees_a_new_version(make_vault: Callable[[str], Vault]) -> None:
    one, other = make_vault("a"), make_vault("a")
    assert other.put("note", {"pinned": "yes"}).item.contract_version == 1  # free under v1
    one.contracts.store([(None, Contract("note", 2, 1, NOTE_V2))])
    with pytest.raises(InvalidInput, match="pinned"):
        other.put("note", {"pinned": "yes"})


def test_a_breaking_version_is_refused_locally_unless_major(vault: Vault) -> None:
    with pytest.raises(BreakingChange, match="tags: field removed"):
        vault.contracts.propose("note", {"type": "object", "properties": {"text": {"type": "string"}}})
    major = vault.contracts.propose("note", {"type": "object", "properties": {}}, major=True)
    assert (major.version, major.major) == (2, 2)


def test_an_unknown_contract_is_not_found_with_what_there_is(vault: Vault) -> None:
    with pytest.raises(NotFound, match=r"no contract for 'note' version 3 \(versions: 1\)"):
        vault.contracts.get("note", 3)
    with pytest.raises(NotFound, match="free-form"):
        vault.contracts.get("recipe")
