"""The built-in provider writes through the kernel as ai-local:builtin (level 3): against your
note a summary or tags are a suggestion, never a change of it; accepted, they are yours; tasks
found in a note are the AI's own entities; every write is audited as the AI's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from truthvault.ai import BUILTIN_SOURCE, ai_related, ai_summarize, ai_tag, ai_tasks
from truthvault.errors import InvalidInput
from truthvault.kernel import decode_entry
from truthvault.truth import TruthLevel
from truthvault.vault import Vault

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)  # a Monday
MEETING = (
    "Meeting with the design team about the launch. We agreed the launch moves to January. "
    "Call Bob tomorrow about the invoice. Email Alice by Friday with the new mockups."
)


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    opened = Vault.open(tmp_path / "v", source="user:cli")
    yield opened
    opened.close()


def _note(vault: Vault, text: str, title: str | None = None) -> str:
    data = {"text": text, **({"title": title} if title else {})}
    return vault.put("note", data).item.entity_id


def test_a_summary_of_your_note_is_a_suggestion_and_accepting_it_makes_it_yours(vault: Vault) -> None:
    note = _note(vault, MEETING, "Design sync")
    done = ai_summarize(vault, note, sentences=2)
    assert done.outcome == "suggestion" and done.record_id is not None
    assert done.written["summary"].startswith("Meeting with the design team")
    assert "Design sync" not in done.written["summary"]  # the title is not a sentence of it
    assert "summary" not in vault.get(note).data()  # your note is unchanged
    [record] = vault.records(kind="suggestion", entity_id=note)
    assert record.item.origin_source == BUILTIN_SOURCE and record.item.truth_level == TruthLevel.AI_LOCAL
    accepted = vault.accept(record.id)
    assert accepted.truth_level == TruthLevel.USER and accepted.data()["summary"] == done.written["summary"]


def test_tags_are_a_suggestion_of_only_the_new_keywords(vault: Vault) -> None:
    note = vault.put("note", {"text": MEETING, "tags": ["launch"]}).item.entity_id
    done = ai_tag(vault, note)
    assert done is not None and done.outcome == "suggestion"
    assert "launch" not in done.written["tags"] and "design" in done.written["tags"]
    assert vault.get(note).data()["tags"] == ["launch"]


def test_on_the_ais_own_note_a_write_applies_and_no_new_keyword_writes_nothing(vault: Vault) -> None:
    note = vault.put("note", {"text": MEETING}, source="ai-local:builtin").item.entity_id
    done = ai_tag(vault, note)
    assert done is not None and done.outcome == "applied"
    assert ai_tag(vault, note) is None  # its keywords are tags now


def test_tasks_found_in_a_note_are_the_ais_own_with_their_due_dates(vault: Vault) -> None:
    note = _note(vault, MEETING)
    done = ai_tasks(vault, note, now=NOW)
    assert [(d.written["title"], d.written.get("due")) for d in done] == [
        ("Call Bob about the invoice", "2026-12-08"),
        ("Email Alice with the new mockups", "2026-12-11"),
    ]
    for d in done:
        task = vault.get(d.entity_id)
        assert task.entity_type == "task" and task.truth_level == TruthLevel.AI_LOCAL
        assert task.origin_source == BUILTIN_SOURCE and task.data()["from"] == note


def test_related_reads_only_and_every_write_is_audited_as_the_ais(vault: Vault) -> None:
    note = _note(vault, MEETING)
    invoice = _note(vault, "The invoice from Bob for the launch design work")
    _note(vault, "A risotto with mushrooms and parmesan")
    before = vault.replica.pending_count()
    found = ai_related(vault, note)
    assert found and found[0][0] == invoice and note not in [e for e, _ in found]
    assert vault.replica.pending_count() == before  # nothing written
    ai_tag(vault, note)
    entries = [decode_entry(e) for _, batch in vault.audit.seal("t", "d") for e in batch]
    assert ("entity.edit", BUILTIN_SOURCE, 3) in [(e.action, e.source, e.level) for e in entries]


def test_an_entity_with_no_text_is_refused_in_one_line(vault: Vault) -> None:
    empty = vault.put("note", {"tags": ["x"]}).item.entity_id
    with pytest.raises(InvalidInput, match="no text"):
        ai_summarize(vault, empty)


def test_the_ai_commands_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from .test_providers import tv

    monkeypatch.setenv("TRUTHVAULT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "200")
    assert tv(capsys, "init")[0] == 0
    code, said, _ = tv(capsys, "note", "add", MEETING, "--title", "Design sync", "--json")
    note = json.loads(said)["item"]["entity_id"]
    code, said, _ = tv(capsys, "ai", "summarize", note)
    assert code == 0 and "Meeting with the design team" in said and "truthvault accept" in said
    code, said, _ = tv(capsys, "ai", "tag", note, "--json")
    assert code == 0 and json.loads(said)["outcome"] == "suggestion"
    code, said, _ = tv(capsys, "ai", "tasks", note, "--json")
    assert code == 0 and [t["written"]["title"] for t in json.loads(said)] == [
        "Call Bob about the invoice",
        "Email Alice with the new mockups",
    ]
    code, said, _ = tv(capsys, "ai", "related", note, "--json")
    assert code == 0 and isinstance(json.loads(said), list)
    code, _, err = tv(capsys, "ai", "summarize", "no-such-id")
    assert code == 1 and len(err.strip().splitlines()) <= 2 and "no-such-id" in err


def test_ask_answers_with_sentences_of_the_vault_and_the_ids_they_come_from(vault: Vault) -> None:
    from truthvault.ai import ask

    meeting = _note(vault, MEETING, "Design sync")
    recipe = _note(vault, "Risotto: toast the rice, then add the stock a ladle at a time.")
    answer = ask(vault, "When does the launch move?")
    assert "We agreed the launch moves to January." in answer.text and f"[{meeting}]" in answer.text
    assert answer.cited[0] == meeting and recipe not in answer.cited
    before = vault.replica.pending_count()
    assert ask(vault, "quantum chromodynamics").cited == ()  # nothing matches: it says so
    assert vault.replica.pending_count() == before  # an answer writes nothing
    with pytest.raises(InvalidInput, match="question"):
        ask(vault, "the of and")
