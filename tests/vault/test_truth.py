"""The truth rule on local writes: suggestions, the upgrade rule, decisions, events."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from truthvault.errors import ConflictState, InvalidInput, InvalidSource, NotFound
from truthvault.truth import Outcome
from truthvault.vault import Vault, payload_of

from .conftest import deliver

AI = "ai-cloud:openai/gpt-4o"


def _u1(vault: Vault, **payload: object) -> str:
    return vault.put("note", dict(payload) or {"title": "mine"}).item.entity_id


@pytest.mark.parametrize("source", ["automation:rule-1", "ai-local:llama3", "ai-lan:mixtral", AI])
def test_lower_level_write_against_u1_becomes_suggestion(vault: Vault, source: str) -> None:
    eid = _u1(vault, title="mine")
    res = vault.edit(eid, {"title": "theirs"}, source=source)
    assert res.outcome is Outcome.SUGGESTION and res.record_id
    current = vault.get(eid)
    assert payload_of(current) == {"title": "mine"} and current.truth_level == 1
    [sug] = vault.suggestions()
    assert (sug.id, sug.entity_id, sug.status, sug.kind) == (res.record_id, eid, "open", "suggestion")
    assert sug.item.origin_source == source and payload_of(sug.item) == {"title": "theirs"}
    assert vault.get_record(sug.id) == sug
    [event] = vault.events(type="AI_SUGGESTION_GENERATED")
    assert event.entity_id == eid and event.detail["record_id"] == sug.id


def test_lower_level_against_higher_non_user_is_suggestion(vault: Vault) -> None:
    eid = vault.put("task", {"s": "auto"}, source="automation:rule-1").item.entity_id
    assert vault.edit(eid, {"s": "cloud"}, source=AI).outcome is Outcome.SUGGESTION
    # same or higher authority replaces
    assert vault.edit(eid, {"s": "auto2"}, source="automation:rule-2").outcome is Outcome.APPLIED
    assert payload_of(vault.get(eid)) == {"s": "auto2"}


def test_automation_delete_of_u1_is_a_suggestion_not_a_delete(vault: Vault) -> None:
    eid = _u1(vault)
    res = vault.delete(eid, source="automation:cleanup")
    assert res.outcome is Outcome.SUGGESTION
    assert not vault.get(eid).deleted
    [sug] = vault.suggestions()
    assert sug.item.deleted
    # accepting a tombstone suggestion is the user's delete
    accepted = vault.accept(sug.id)
    assert accepted.deleted and accepted.truth_level == 1
    with pytest.raises(NotFound):
        vault.get(eid)


def test_user_edit_of_ai_content_becomes_accepted_u1(vault: Vault) -> None:
    ai = vault.put("note", {"title": "draft", "body": "by ai"}, source=AI).item
    res = vault.edit(ai.entity_id, {"title": "my title"})
    item = res.item
    assert res.outcome is Outcome.APPLIED
    assert (item.truth_level, item.accepted_by_user, item.origin_source) == (1, True, "user:cli")
    assert [(s.level, s.source, s.at, s.ref) for s in item.origin_chain] == [
        (5, AI, ai.last_modified_at, None)
    ]
    assert payload_of(item) == {"title": "my title", "body": "by ai"}
    [event] = vault.events(type="TRUTH_UPGRADE")
    assert event.entity_id == ai.entity_id and event.detail["from_level"] == 5
    # a later user edit keeps the provenance and the acceptance
    again = vault.edit(ai.entity_id, {"title": "t2"}).item
    assert again.accepted_by_user and len(again.origin_chain) == 1
    assert len(vault.events(type="TRUTH_UPGRADE")) == 1
    assert vault.suggestions(status=None) == []


def test_no_writer_but_the_user_can_claim_acceptance(vault: Vault) -> None:
    """Only accept, an edit by a user source or upgrade-truth make content the user's: a write
    by an AI that says it was accepted is refused, and nothing is stored (issue 9, item 7)."""
    mine = vault.put("note", {"t": "my words"}).item
    with pytest.raises(TypeError):
        vault.put("note", {"t": "x"}, entity_id=mine.entity_id, source="ai-cloud:evil/m", accepted=True)  # type: ignore[call-arg]
    with pytest.raises(InvalidSource, match="only the user"):
        vault._writer.write(
            vault._db.current(mine.entity_id),
            entity_type="note",
            entity_id=mine.entity_id,
            payload=b'{"t":"evil"}',
            source="ai-cloud:evil/m",
            accepted=True,
        )
    assert vault.get(mine.entity_id) == mine
    # the user's own acts still raise AI content to user truth
    ai = vault.put("note", {"t": "draft"}, source="ai-local:llama3").item
    item = vault.upgrade_truth(ai.entity_id)
    assert (item.truth_level, item.accepted_by_user) == (1, True)
    assert [(s.level, s.source) for s in item.origin_chain] == [(3, "ai-local:llama3")]
    assert item.last_modified_by_level == 1
    assert len(vault.events(type="TRUTH_UPGRADE")) == 1


def test_accept_merges_suggestion_into_entity(vault: Vault) -> None:
    eid = _u1(vault, title="mine", body="keep", old="x")
    rid = vault.edit(eid, {"title": "better"}, source=AI, replace=False).record_id
    assert rid is not None
    # The entity moved on since the suggestion: the user added a field, changed another and
    # removed a third. Accepting applies only what the suggestion changed.
    vault.edit(eid, {"title": "mine", "body": "changed since", "extra": 1}, replace=True)
    item = vault.accept(rid)
    assert payload_of(item) == {"title": "better", "body": "changed since", "extra": 1}
    assert (item.truth_level, item.accepted_by_user) == (1, True)
    assert [(s.level, s.source, s.ref) for s in item.origin_chain] == [(5, AI, rid)]
    assert vault.get(eid) == item
    assert vault.get_record(rid).status == "accepted" and vault.get_record(rid).decided_at
    assert vault.suggestions() == []
    [event] = vault.events(type="TRUTH_UPGRADE")
    assert event.detail["record_id"] == rid
    with pytest.raises(ConflictState, match="already accepted"):
        vault.accept(rid)
    with pytest.raises(ConflictState):
        vault.reject(rid)


def test_accept_of_an_unchanged_entity_takes_the_suggestion_whole(vault: Vault) -> None:
    eid = _u1(vault, title="mine", body="drop me")
    rid = vault.edit(eid, {"title": "ai title"}, source=AI, replace=True).record_id
    assert rid is not None
    assert payload_of(vault.accept(rid)) == {"title": "ai title"}  # the removal is applied too


def test_accept_needs_a_user_source(vault: Vault) -> None:
    eid = _u1(vault)
    rid = vault.edit(eid, {"t": 1}, source=AI).record_id
    assert rid is not None
    with pytest.raises(InvalidSource, match="only the user"):
        vault.accept(rid, source="automation:r")
    assert vault.get_record(rid).status == "open"


def test_reject_keeps_the_suggestion_retrievable(vault: Vault) -> None:
    eid = _u1(vault, title="mine")
    rid = vault.edit(eid, {"title": "theirs"}, source=AI).record_id
    assert rid is not None
    rec = vault.reject(rid)
    assert rec.status == "rejected"
    assert vault.suggestions() == []
    assert [r.id for r in vault.suggestions(status="rejected")] == [rid]
    assert payload_of(vault.get(eid)) == {"title": "mine"}
    with pytest.raises(NotFound):
        vault.reject("no-such-record")


def test_upgrade_truth(vault: Vault) -> None:
    ai = vault.put("note", {"t": "x"}, source="ai-lan:mixtral").item
    up = vault.upgrade_truth(ai.entity_id)
    assert (up.truth_level, up.accepted_by_user, up.version) == (1, True, 2)
    assert payload_of(up) == {"t": "x"}
    assert [(s.level, s.source) for s in up.origin_chain] == [(4, "ai-lan:mixtral")]
    assert len(vault.events(type="TRUTH_UPGRADE")) == 1
    with pytest.raises(ConflictState, match="already user truth"):
        vault.upgrade_truth(ai.entity_id)
    with pytest.raises(InvalidSource):
        vault.upgrade_truth(ai.entity_id, source="ai-lan:mixtral")


def _conflict(make_vault: Callable[[str], Vault]) -> tuple[Vault, Vault, str, str]:
    """Two devices edit one U1 note offline; return (a, b, entity id, a's conflict record id)."""
    a, b = make_vault("a"), make_vault("b")
    eid = a.put("note", {"t": "base"}).item.entity_id
    deliver(a, b)
    a.edit(eid, {"t": "from a"})
    time.sleep(0.003)  # a later wall clock, so b's edit wins the race
    b.edit(eid, {"t": "from b"})
    stats = deliver(b, a)
    assert stats is not None and stats.conflicts == 1
    [rec] = a.conflicts()
    return a, b, eid, rec.id


def test_u1_race_keeps_the_loser_as_conflict(make_vault: Callable[[str], Vault]) -> None:
    a, _, eid, rid = _conflict(make_vault)
    assert payload_of(a.get(eid)) == {"t": "from b"}
    rec = a.get_record(rid)
    assert rec.kind == "conflict" and payload_of(rec.item) == {"t": "from a"}
    assert [e.detail["record_id"] for e in a.events(type="CONFLICT_DETECTED")] == [rid]


def test_resolve_conflict_restore(make_vault: Callable[[str], Vault]) -> None:
    a, _, eid, rid = _conflict(make_vault)
    rec = a.resolve_conflict(rid, "restore")
    assert (rec.status, rec.resolution) == ("resolved", "restore")
    item = a.get(eid)
    assert payload_of(item) == {"t": "from a"} and item.truth_level == 1
    assert [(s.source, s.ref) for s in item.origin_chain] == [("user:cli", rid)]
    with pytest.raises(ConflictState):
        a.resolve_conflict(rid, "keep")


def test_resolve_conflict_keep(make_vault: Callable[[str], Vault]) -> None:
    a, _, eid, rid = _conflict(make_vault)
    before = a.get(eid)
    assert a.resolve_conflict(rid, "keep").status == "resolved"
    assert a.get(eid) == before
    with pytest.raises(InvalidInput):
        a.resolve_conflict(rid, "merge")


def test_conflict_records_are_not_suggestions(make_vault: Callable[[str], Vault]) -> None:
    a, _, _, rid = _conflict(make_vault)
    with pytest.raises(ConflictState, match="is a conflict"):
        a.accept(rid)


def test_add_event_and_events(vault: Vault) -> None:
    e1 = vault.add_event("SYNC_PUSH", None, items=3)
    e2 = vault.add_event("SYNC_PULL", "x", items=1)
    assert [e.id for e in vault.events()] == [e2.id, e1.id]
    assert vault.events(type="SYNC_PUSH")[0].detail == {"items": 3}
    assert len(vault.events(limit=1)) == 1
    with pytest.raises(InvalidInput):
        vault.add_event("")
