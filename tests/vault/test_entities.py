"""Local writes and reads: CRUD, filters, counts and full-text search."""

from __future__ import annotations

import pytest

from truthvault.errors import ConflictState, InvalidInput, InvalidSource, NotFound, PayloadTooLarge
from truthvault.truth import Outcome
from truthvault.vault import MAX_PAYLOAD_BYTES, Vault, payload_of


def test_put_creates_version_one(vault: Vault) -> None:
    res = vault.put("note", {"title": "hello", "n": 1})
    item = res.item
    assert res.outcome is Outcome.APPLIED and res.record_id is None
    assert (item.version, item.base_version, item.base_clock) == (1, 0, None)
    assert (item.truth_level, item.origin_source, item.accepted_by_user) == (1, "user:cli", False)
    assert item.last_modified_by_level == 1
    assert item.device_id == vault.device_id and item.tenant_id == "local"
    assert vault.get(item.entity_id) == item
    assert payload_of(vault.get(item.entity_id)) == {"title": "hello", "n": 1}


def test_put_with_level_from_source(vault: Vault) -> None:
    item = vault.put("task", {"t": "x"}, source="automation:rule-1").item
    assert (item.truth_level, item.origin_source) == (2, "automation:rule-1")
    with pytest.raises(InvalidSource):
        vault.put("task", {"t": "x"}, source="robot:x")
    with pytest.raises(InvalidSource):
        vault.put("task", {"t": "x"}, source="nocolon")


def test_put_rejects_bad_input(vault: Vault) -> None:
    with pytest.raises(InvalidInput, match="entity_type"):
        vault.put("Not A Type", {})
    with pytest.raises(InvalidInput, match="entity_id"):
        vault.put("note", {}, entity_id="bad id with spaces")
    with pytest.raises(InvalidInput, match="JSON object"):
        vault.put("note", ["a"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="serialisable"):
        vault.put("note", {"x": object()})
    with pytest.raises(PayloadTooLarge, match="over the limit"):
        vault.put("note", {"x": "a" * MAX_PAYLOAD_BYTES})
    assert vault.count() == 0


def test_put_with_explicit_id_replaces(vault: Vault) -> None:
    first = vault.put("note", {"a": 1}, entity_id="n-1").item
    second = vault.put("note", {"b": 2}, entity_id="n-1").item
    assert second.version == 2
    assert payload_of(vault.get("n-1")) == {"b": 2}
    # first was never pushed, so the new version still names the hub's (empty) base
    assert (second.base_version, second.base_clock) == (first.base_version, first.base_clock)
    with pytest.raises(ConflictState, match="is a note"):
        vault.put("task", {}, entity_id="n-1")


def test_edit_merges_or_replaces(vault: Vault) -> None:
    eid = vault.put("note", {"title": "a", "body": "b"}).item.entity_id
    assert payload_of(vault.edit(eid, {"body": "c"}).item) == {"title": "a", "body": "c"}
    assert payload_of(vault.edit(eid, {"only": 1}, replace=True).item) == {"only": 1}
    assert vault.get(eid).version == 3
    with pytest.raises(NotFound, match="no entity"):
        vault.edit("missing", {})


def test_delete_writes_tombstone(vault: Vault) -> None:
    eid = vault.put("note", {"t": "x"}).item.entity_id
    res = vault.delete(eid)
    assert res.outcome is Outcome.APPLIED and res.item.deleted
    with pytest.raises(NotFound, match="was deleted"):
        vault.get(eid)
    tomb = vault.get(eid, include_deleted=True)
    assert tomb.deleted and tomb.version == 2 and payload_of(tomb) == {}
    with pytest.raises(NotFound):
        vault.delete(eid)
    with pytest.raises(NotFound):
        vault.edit(eid, {"t": "y"})


def test_list_and_count_filters(vault: Vault) -> None:
    a = vault.put("note", {"t": "a"}).item
    b = vault.put("task", {"t": "b"}, source="ai-cloud:openai/gpt-4o").item
    c = vault.put("note", {"t": "c"}, source="ai-local:llama3").item
    c = vault.upgrade_truth(c.entity_id)
    d = vault.put("note", {"t": "d"}).item
    vault.delete(d.entity_id)
    assert [i.entity_id for i in vault.list()] == [c.entity_id, b.entity_id, a.entity_id]
    assert [i.entity_id for i in vault.list(entity_type="note")] == [c.entity_id, a.entity_id]
    assert [i.entity_id for i in vault.list(level=5)] == [b.entity_id]
    assert [i.entity_id for i in vault.list(accepted=True)] == [c.entity_id]
    assert len(vault.list(include_deleted=True)) == 4
    assert [i.entity_id for i in vault.list(limit=1, offset=1)] == [b.entity_id]
    assert vault.count() == 3
    assert vault.count(entity_type="note") == 2
    assert vault.count(level=1) == 2
    assert vault.count(accepted=False, include_deleted=True) == 3


def test_search_finds_live_entities_by_payload_text(vault: Vault) -> None:
    a = vault.put("note", {"title": "Grocery list", "items": ["apples", {"deep": "bananas"}], "n": 42}).item
    b = vault.put("task", {"title": "buy apples"}).item
    assert {i.entity_id for i in vault.search("apples")} == {a.entity_id, b.entity_id}
    assert [i.entity_id for i in vault.search("bananas")] == [a.entity_id]  # nested strings
    assert [i.entity_id for i in vault.search("task")] == [b.entity_id]  # entity_type
    assert vault.search("title") == []  # keys are not text
    assert vault.search("42") == []  # numbers are not text
    assert [i.entity_id for i in vault.search("groc*")] == [a.entity_id]


def test_search_follows_edits_and_deletes(vault: Vault) -> None:
    eid = vault.put("note", {"title": "old words"}).item.entity_id
    vault.edit(eid, {"title": "new words"})
    assert vault.search("old") == []
    assert [i.entity_id for i in vault.search("new")] == [eid]
    vault.delete(eid)
    assert vault.search("words") == []


def test_search_ranks_better_matches_first(vault: Vault) -> None:
    weak = vault.put("note", {"t": "kiwi and many other words here that dilute the match"}).item
    strong = vault.put("note", {"t": "kiwi kiwi kiwi"}).item
    assert [i.entity_id for i in vault.search("kiwi")] == [strong.entity_id, weak.entity_id]
    assert len(vault.search("kiwi", limit=1)) == 1


def test_scored_search_gives_each_match_its_bm25_score_best_first(vault: Vault) -> None:
    weak = vault.put("note", {"t": "kiwi and many other words here that dilute the match"}).item
    strong = vault.put("note", {"t": "kiwi kiwi kiwi"}).item
    gone = vault.put("note", {"t": "kiwi kiwi kiwi kiwi"}).item
    vault.delete(gone.entity_id)
    scored = vault.search_scored('"kiwi" OR "dilute"', fts=True)
    assert {item.entity_id for item, _ in scored} == {strong.entity_id, weak.entity_id}  # not gone
    assert all(score > 0 for _, score in scored)
    assert [score for _, score in scored] == sorted((score for _, score in scored), reverse=True)
    assert [item for item, _ in vault.search_scored("kiwi")] == vault.search("kiwi")


@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("e-mail", True),
        ("2026-12-24", True),
        ("ada@example.com", True),
        ("don't", True),
        ("C++", True),
        ('say "hi"', True),
        ("mail e", True),  # words, not a phrase: each must occur, in any order
        ("e-mail bob", False),
        ("nosuchcol:x", False),
        ('"unterminated', False),
        ("AND", False),
        ("(a OR", False),
        ("-", False),
    ],
)
def test_plain_search_takes_words_as_typed(vault: Vault, query: str, found: bool) -> None:
    # FTS5's own syntax (a-b is a column filter, ' and + are errors) must not leak into a search.
    eid = vault.put("note", {"t": 'e-mail ada@example.com on 2026-12-24, don\'t forget C++, say "hi"'}).item
    assert [i.entity_id for i in vault.search(query)] == ([eid.entity_id] if found else [])


def test_plain_search_takes_a_trailing_star_as_a_prefix(vault: Vault) -> None:
    eid = vault.put("note", {"t": "call the plumber"}).item.entity_id
    assert [i.entity_id for i in vault.search("plumb*")] == [eid]
    assert [i.entity_id for i in vault.search("call plumb*")] == [eid]
    assert vault.search("*") == []


def test_fts_search_takes_fts5_syntax(vault: Vault) -> None:
    a = vault.put("note", {"t": "apples and pears"}).item.entity_id
    b = vault.put("note", {"t": "apples only"}).item.entity_id
    assert [i.entity_id for i in vault.search("apples NOT pears", fts=True)] == [b]
    assert {i.entity_id for i in vault.search("pears OR only", fts=True)} == {a, b}
    assert vault.search("apples NOT pears") == []  # plain: four words, all of them needed


@pytest.mark.parametrize("query", ['"unterminated', "AND", "(a OR", "nosuchcol:x"])
def test_malformed_fts_search_is_invalid_input(vault: Vault, query: str) -> None:
    vault.put("note", {"t": "a"})
    with pytest.raises(InvalidInput, match="search query"):
        vault.search(query, fts=True)


def test_empty_search_is_invalid_input(vault: Vault) -> None:
    with pytest.raises(InvalidInput):
        vault.search("  ")


def test_list_without_a_limit_lists_everything_and_types_are_case_insensitive(vault: Vault) -> None:
    ids = [vault.put("note", {"n": n}).item.entity_id for n in range(120)]
    assert [i.entity_id for i in vault.list(limit=None)] == ids[::-1]
    assert len(vault.list()) == 100
    assert len(vault.list(entity_type="Note", limit=None)) == vault.count(entity_type="NOTE") == 120
    with pytest.raises(InvalidInput, match="entity_type"):
        vault.list(entity_type="not a type")


def test_event_types_are_case_insensitive_and_an_unknown_one_is_refused(vault: Vault) -> None:
    eid = vault.put("note", {"t": "x"}, source="ai-local:m").item.entity_id
    vault.upgrade_truth(eid)
    vault.add_event("MY_OWN_EVENT")
    assert [e.entity_id for e in vault.events(type="truth_upgrade")] == [eid]
    assert len(vault.events(type="my_own_event")) == 1  # a type the vault holds is known
    assert vault.events(type="decryption_failed") == []  # one it writes, though none yet
    with pytest.raises(InvalidInput, match="unknown event type 'BOGUS'") as refused:
        vault.events(type="bogus")
    assert "TRUTH_UPGRADE" in refused.value.message and "MY_OWN_EVENT" in refused.value.message
