"""Automations on a vault, run durably by its workflow engine (DBOS on SQLite): level 2 against
level 1 gives a suggestion, a hard delete of level 1 is refused and audited, a schedule fires,
a match runs once however often it is found, and rules do not feed each other."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from truthvault.errors import InvalidInput
from truthvault.kernel import WorkflowEngine, decode_entry
from truthvault.vault import Vault, vault_engine

pytestmark = pytest.mark.timeout(120)

DATED = {
    "name": "tag notes that mention a date",
    "trigger": {"on": "write", "type": "note", "field": "text", "matches": r"\b\d{4}-\d{2}-\d{2}\b|tomorrow"},
    "action": {"do": "tag", "tags": ["dated"]},
}


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    with Vault.open(tmp_path / "v", source="user:cli") as v:
        yield v


@pytest.fixture
def engine(vault: Vault) -> Iterator[WorkflowEngine]:
    with vault_engine(vault) as running:
        yield running


def _run(vault: Vault, engine: WorkflowEngine, now: datetime | None = None) -> list[dict[str, object]]:
    return [engine.result(wid) for wid in vault.automations.run_pending(engine, now)]


def test_a_rule_is_checked_and_its_bad_field_named(vault: Vault) -> None:
    with pytest.raises(InvalidInput, match=r"trigger.write.matches"):
        vault.automations.add({**DATED, "trigger": {"on": "write", "matches": "(unclosed"}})
    with pytest.raises(InvalidInput, match="cron"):
        vault.automations.add({**DATED, "trigger": {"on": "schedule", "cron": "every tuesday"}})
    with pytest.raises(InvalidInput, match="action"):
        vault.automations.add({**DATED, "action": {"do": "explode"}})
    assert vault.automations.rules() == []


def test_level_two_against_the_users_note_is_a_suggestion(vault: Vault, engine: WorkflowEngine) -> None:
    rule = vault.automations.add(DATED)
    dated = vault.put("note", {"text": "dentist on 2026-12-24"}).item
    vault.put("note", {"text": "no day in here"})
    outcomes = _run(vault, engine)
    assert [o["status"] for o in outcomes] == ["completed"]
    assert outcomes[0]["results"]["act"]["outcome"] == "suggestion"
    assert vault.get(dated.entity_id).data() == {"text": "dentist on 2026-12-24"}  # the user's stays
    [suggestion] = vault.records(kind="suggestion", entity_id=dated.entity_id)
    assert suggestion.item.origin_source == f"automation:{rule.id}" and suggestion.item.truth_level == 2
    assert suggestion.item.data()["tags"] == ["dated"]
    assert _run(vault, engine) == []  # the inbox is empty: nothing runs again
    assert [i.status for i in vault.automations.log(engine, rule.id)] == ["completed"]


def test_a_match_found_twice_runs_once(vault: Vault, engine: WorkflowEngine) -> None:
    rule = vault.automations.add(DATED)
    vault.put("note", {"text": "call Bob tomorrow"})
    with vault._db.read() as conn:
        kept = conn.execute("SELECT entity_id, version FROM automation_inbox").fetchall()
    first = vault.automations.run_pending(engine)
    with vault._db.tx() as conn:  # a runner killed before it cleared its inbox: the rows again
        conn.executemany("INSERT INTO automation_inbox (entity_id, version) VALUES (?, ?)", kept)
    again = vault.automations.run_pending(engine)
    assert again == first
    for wid in first:
        engine.result(wid)
    assert len(vault.records(kind="suggestion")) == 1
    assert len(vault.automations.log(engine, rule.id)) == 1


def test_what_automations_write_triggers_no_rule(vault: Vault, engine: WorkflowEngine) -> None:
    vault.automations.add(
        {
            "name": "echo every note",
            "trigger": {"on": "write", "type": "note"},
            "action": {"do": "create", "type": "note", "payload": {"text": "about {id}: {payload.text}"}},
        }
    )
    vault.put("note", {"text": "seed"})
    [outcome] = _run(vault, engine)
    made = outcome["results"]["act"]["entity"]
    assert vault.get(made).data() == {"text": f"about {vault.list('note')[-1].entity_id}: seed"}
    assert vault.get(made).truth_level == 2  # a new entity of its own, at its level
    assert _run(vault, engine) == []  # its note made no further run


def test_a_delete_of_the_users_note_is_only_proposed(vault: Vault, engine: WorkflowEngine) -> None:
    vault.automations.add(
        {
            "name": "delete what I write",
            "trigger": {"on": "write", "type": "note"},
            "action": {"do": "action", "name": "entity.delete", "input": {"id": "{id}"}},
        }
    )
    note = vault.put("note", {"text": "keep me"}).item
    [outcome] = _run(vault, engine)
    assert outcome["results"]["act"]["outcome"] == "suggestion"
    assert vault.get(note.entity_id).data() == {"text": "keep me"}  # never deleted by level 2
    [proposal] = vault.records(kind="suggestion", entity_id=note.entity_id)
    assert proposal.item.deleted and proposal.item.truth_level == 2


def test_a_security_action_is_refused_and_the_refusal_audited(vault: Vault, engine: WorkflowEngine) -> None:
    rule = vault.automations.add(
        {
            "name": "set my pin",
            "trigger": {"on": "write", "type": "note"},
            "action": {"do": "action", "name": "pin.set", "input": {"pin": "123456"}},
        }
    )
    vault.put("note", {"text": "anything"})
    [outcome] = _run(vault, engine)
    assert outcome["results"]["act"]["refused"] == "FORBIDDEN"
    assert "automation" in outcome["results"]["act"]["reason"]
    entries = [decode_entry(e) for _, batch in vault.audit.seal("t", "d") for e in batch]
    refusals = [(e.action, e.source) for e in entries if e.decision == "denied"]
    assert refusals == [("pin.set", f"automation:{rule.id}")]


def test_a_schedule_fires_once_for_the_times_it_missed_on_what_its_query_finds(
    vault: Vault, engine: WorkflowEngine
) -> None:
    vault.put("task", {"title": "hear back from the plumber", "done": False, "tags": ["waiting"]})
    vault.put("task", {"title": "not waiting", "done": False})
    vault.automations.add(
        {
            "name": "follow up what waits",
            "trigger": {
                "on": "schedule",
                "every": "1d",
                "query": {"type": "task", "tag": "waiting", "older_than_days": 7},
            },
            "action": {
                "do": "create",
                "type": "task",
                "payload": {"title": "Follow up: {payload.title}", "done": False},
            },
        }
    )
    # noon today: a daily schedule's times are UTC midnights, and no step below crosses one by
    # the clock's accident (at 23:30 an hour later would)
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    assert _run(vault, engine, now) == []  # a new rule counts from now
    assert _run(vault, engine, now + timedelta(hours=11)) == []  # not yet midnight
    [outcome] = _run(vault, engine, now + timedelta(days=9))  # nine days missed: one run
    made = vault.get(outcome["results"]["act"]["entity"])
    assert made.data()["title"] == "Follow up: hear back from the plumber" and made.truth_level == 2
    assert _run(vault, engine, now + timedelta(days=9, hours=1)) == []


def test_a_paused_rule_does_not_run_until_resumed(vault: Vault, engine: WorkflowEngine) -> None:
    rule = vault.automations.add(DATED)
    vault.automations.set_paused(rule.id, True)
    vault.put("note", {"text": "on 2026-01-02"})
    assert _run(vault, engine) == []
    vault.automations.set_paused(rule.id, False)
    vault.put("note", {"text": "on 2026-01-03"})
    assert [o["status"] for o in _run(vault, engine)] == ["completed"]


@pytest.mark.parametrize(
    "template", ["{id:>2000000}", "{payload.text!r}", "{payload[text]}", "{payload.text:{id}}"]
)
def test_a_template_names_a_field_and_nothing_more(vault: Vault, template: str) -> None:
    rule = {**DATED, "action": {"do": "create", "type": "note", "payload": {"text": template}}}
    with pytest.raises(InvalidInput, match="template"):
        vault.automations.add(rule)


def test_a_synced_rule_cannot_blow_up_a_run_by_its_templates(vault: Vault, engine: WorkflowEngine) -> None:
    # rules written as plain entities (as sync brings them) are not checked on the way in
    widths = vault.put(
        "automation",
        {**DATED, "trigger": {"on": "write", "type": "note"},
         "action": {"do": "create", "type": "task", "payload": {"title": "{id:>2000000}"}}},
    ).item  # fmt: skip
    copies = vault.put(
        "automation",
        {**DATED, "trigger": {"on": "write", "type": "note"},
         "action": {"do": "create", "type": "task", "payload": {"title": "{payload.text}" * 40}}},
    ).item  # fmt: skip
    shown = vault.automations.get(widths.entity_id)  # not a rule: never runs, its error shown
    assert shown.rule is None and "template" in str(shown.error)
    vault.put("note", {"text": "x" * 30_000})  # 40 copies of it: more than a run may fill in
    [outcome] = _run(vault, engine)
    assert outcome["status"] == "compensated"
    assert "more than" in outcome["failed"]["error"]
    assert vault.list("task", limit=None) == []
    assert vault.automations.get(copies.entity_id).active


@pytest.mark.timeout(60)
def test_a_rules_regex_runs_in_linear_time(vault: Vault, engine: WorkflowEngine) -> None:
    vault.put(  # catastrophic backtracking for a backtracking engine: 2**40 paths
        "automation",
        {**DATED, "trigger": {"on": "write", "type": "note", "field": "text", "matches": "^(a+)+$"}},
    )
    vault.put("note", {"text": "a" * 40 + "!"})
    assert _run(vault, engine) == []
    with pytest.raises(InvalidInput, match="RE2"):
        vault.automations.add({**DATED, "trigger": {"on": "write", "matches": r"(a)\1"}})


def _inbox(vault: Vault) -> list[tuple[int, str, int]]:
    with vault._db.read() as conn:
        return [tuple(r) for r in conn.execute("SELECT n, entity_id, version FROM automation_inbox")]


def test_a_runner_clears_only_the_rows_it_looked_at(vault: Vault, engine: WorkflowEngine) -> None:
    vault.automations.add(DATED)
    vault.put("note", {"text": "first on 2026-01-01"})
    looked_at = vault.automations._inbox()  # runner A looks at the inbox ...
    vault.automations.run_pending(engine)  # ... runner B runs it all and empties it
    late = vault.put("note", {"text": "second on 2026-01-02"}).item  # its row takes the same n
    assert [r[0] for r in _inbox(vault)] == [r[0] for r in looked_at]
    vault.automations._clear(looked_at)  # runner A clears what it looked at
    [outcome] = _run(vault, engine)
    assert outcome["results"]["act"]["entity"] == late.entity_id


def test_the_inbox_keeps_one_row_an_entity_and_none_for_a_proposed_rule(
    vault: Vault, engine: WorkflowEngine
) -> None:
    vault.automations.add(DATED, source="ai-local:llama")  # proposed: it turns nothing on
    note = vault.put("note", {"text": "draft"}).item
    assert _inbox(vault) == []
    vault.automations.add(DATED)
    for n in range(30):  # no runner runs: the inbox does not grow with each write
        vault.edit(note.entity_id, {"text": f"draft {n} on 2026-01-{n % 28 + 1:02d}"})
    assert [(e, v) for _, e, v in _inbox(vault)] == [(note.entity_id, vault.get(note.entity_id).version)]
    assert [o["status"] for o in _run(vault, engine)] == ["completed"]


def test_only_the_users_own_version_of_a_rule_runs(vault: Vault, engine: WorkflowEngine) -> None:
    vault.automations.add(DATED, source="ai-local:llama")  # proposed by AI: never runs as it is
    rule = vault.automations.add({**DATED, "paused": True})
    resumed = vault.automations.set_paused(rule.id, False, source="ai-cloud:acme/gpt")  # a suggestion
    changed = vault.kernel.run(
        "entity.edit",
        {
            "id": rule.id,
            "changes": {"action": {"do": "action", "name": "entity.delete", "input": {"id": "{id}"}}},
        },
        actor=vault.actor("ai-local:llama"),
    )
    assert resumed.item.truth_level == 5 and changed.outcome == "suggestion"  # type: ignore[attr-defined]
    assert vault.automations.get(rule.id).rule.paused  # type: ignore[union-attr]
    vault.put("note", {"text": "on 2026-03-04"})
    assert _run(vault, engine) == []
    [suggestion, _] = vault.records(kind="suggestion", entity_id=rule.id)
    vault.accept(suggestion.id)  # the user takes the AI's change: now it is theirs, and runs
    vault.automations.set_paused(rule.id, False)
    note = vault.put("note", {"text": "on 2026-03-05"}).item
    [outcome] = _run(vault, engine)
    assert outcome["results"]["act"]["outcome"] == "suggestion"  # a delete proposed, not done
    assert not vault.get(note.entity_id).deleted


def test_a_run_that_fails_for_good_is_a_dead_letter_and_a_retry_runs_it_again(
    vault: Vault, engine: WorkflowEngine
) -> None:
    rule = vault.automations.add(
        {
            "name": "a broken action",
            "trigger": {"on": "write", "type": "note"},
            "action": {
                "do": "action",
                "name": "entity.edit",
                "input": {"id": "{id}", "changes": "not an object"},
            },
        }
    )
    vault.put("note", {"text": "anything", "token": "s3cret"})
    [outcome] = _run(vault, engine)
    assert outcome["status"] == "compensated" and "changes" in outcome["failed"]["error"]
    [letter] = vault.dead_letters.list()
    assert (letter.kind, letter.status, letter.source) == ("automation", "open", "automation.run/act (run)")
    assert letter.ref.startswith(f"auto:{rule.id}:") and letter.input["saga"] == "automation.run"
    retried = vault.dead_letters.retry(letter.id, by="user:cli")
    assert retried.status == "retried" and retried.retried_as
    assert engine.result(str(retried.retried_as))["status"] == "compensated"  # the same input fails alike
