"""The built-in offline provider (issue 13) on real text: the notes below are the kind a user
writes (a meeting, a recipe, a journal entry, a to-do list, a project plan), and each output is
checked for what a person would expect of it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from truthvault.ai import (
    BUILTIN_SOURCE,
    STOP_WORDS,
    CorpusStats,
    Task,
    extract_tasks,
    keyword_tags,
    related,
    sentences,
    summarize,
)
from truthvault.errors import NotFound
from truthvault.vault import Vault

#: Monday 7 December 2026, 10:00 UTC
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)

MEETING = """# Budget meeting, 3 December

Attendees: Ana, Dr. Patel, Bob and Mr. Osei.

The marketing budget for next quarter was cut by ten percent. Dr. Patel explained that the
budget cut follows the drop in sales, e.g. in the Lisbon store. Ana asked about the trade
fair; it stays as planned. Marketing will spend less on print ads and keep online ads.
We agreed to review the marketing budget and the quarter's sales again in March.

- Bob will draft the new budget spreadsheet.
- Coffee machine is broken again.
"""

RECIPE = """# Lemon risotto

A creamy risotto with lemon zest and parmesan, ready in 35 minutes.

## Ingredients
- 300 g arborio rice
- 1 litre vegetable stock
- 2 lemons
- 60 g parmesan

## Method
1. Warm the stock in a pan.
2. Toast the rice in butter, then add the stock a ladle at a time.
3. Stir the risotto until the rice is creamy, about 18 minutes.
4. Finish the risotto with lemon zest, lemon juice and parmesan.
"""

JOURNAL = """Sunday. Long walk along the river with Maya this morning; the river was high after
the rain. We talked about her new job in Porto and whether she will move. I felt calm for the
first time in weeks. In the evening I read two chapters of the novel Maya lent me. I should
call Mum tomorrow about Christmas.
"""

TODO = """# This week
- [ ] Call Bob tomorrow about the invoice
- [ ] email Alice by Friday
- [x] Water the plants
- [ ] Book the dentist next Monday.
TODO: pay rent on 2026-12-15
* renew passport in 3 days
- Buy a present for Leo by Dec 24
Pick up the dry cleaning tonight
"""

PLAN = """# Garden shed project plan

Goal: build a wooden garden shed before spring. The shed needs a concrete base, a timber
frame and a felt roof. The budget is 1,800 euros for timber, concrete and roofing felt.
Phase one is the concrete base, poured in February. Phase two is the timber frame and the
roof. The council says a shed under 2.5 m high needs no planning permission.
"""


# -- summaries ---------------------------------------------------------------------------


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("text", [MEETING, RECIPE, JOURNAL, PLAN])
def test_a_summary_is_sentences_of_the_note_in_their_order(text: str) -> None:
    summary = summarize(text, max_sentences=2)
    found = sentences(text)
    chosen = [s for s in found if s in summary]
    assert summary == " ".join(chosen)  # only whole sentences of the note, in their order
    assert 1 <= len(chosen) <= 2
    positions = [_flat(text).index(_flat(s)) for s in chosen]
    assert positions == sorted(positions)


def test_a_summary_keeps_the_key_sentence() -> None:
    summary = summarize(MEETING, max_sentences=2)
    assert "The marketing budget for next quarter was cut by ten percent." in summary
    assert "Coffee machine" not in summary
    assert "Budget meeting" not in summary  # a heading is not a sentence
    assert "shed" in summarize(PLAN, max_sentences=1)


def test_a_short_note_is_its_own_summary_and_empty_text_has_none() -> None:
    assert summarize("Buy milk.", max_sentences=3) == "Buy milk."
    assert summarize("", max_sentences=3) == ""
    assert summarize("# Only a heading\n\n", max_sentences=3) == ""
    assert summarize(MEETING, max_sentences=0) == ""


def test_sentences_survive_abbreviations_headings_and_lists() -> None:
    found = sentences(MEETING)
    assert "Attendees: Ana, Dr. Patel, Bob and Mr. Osei." in found
    assert (
        "Dr. Patel explained that the budget cut follows the drop in sales, e.g. in the Lisbon store."
        in found
    )
    assert "Bob will draft the new budget spreadsheet." in found
    assert not any(s.startswith(("#", "-")) for s in found)
    assert sentences(RECIPE)[-1] == "Finish the risotto with lemon zest, lemon juice and parmesan."


# -- tags --------------------------------------------------------------------------------


def _is_tag(tag: str) -> bool:
    return tag == tag.lower() and all(c.isascii() and (c.isalnum() or c == "-") for c in tag)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MEETING, {"budget", "marketing"}),
        (RECIPE, {"risotto", "lemon"}),
        (JOURNAL, {"river", "maya"}),
        (PLAN, {"shed", "concrete"}),
    ],
)
def test_tags_name_what_the_note_is_about(text: str, expected: set[str]) -> None:
    tags = keyword_tags(text, limit=5)
    assert expected <= set(tags), tags
    assert len(tags) == len(set(tags)) <= 5
    assert all(_is_tag(t) and not t.replace("-", "").isdigit() for t in tags)
    assert not set(tags) & STOP_WORDS


def test_tags_take_the_users_hashtags_first_and_count_plurals_as_one() -> None:
    tags = keyword_tags("Shed plans #DIY #garden-shed. Plans, plan, plans: the plans are ready.", limit=3)
    assert tags[:2] == ["diy", "garden-shed"]
    assert tags[2] == "plans"


def test_tags_weighed_against_a_corpus_prefer_the_rare_words() -> None:
    corpus = CorpusStats.from_texts([MEETING, RECIPE, JOURNAL, PLAN, TODO] + ["Project update."] * 20)
    note = "Project update: the project kickoff is moved. Project risks: the vendor contract."
    assert keyword_tags(note, limit=1) == ["project"]  # by frequency alone
    assert "project" not in keyword_tags(note, limit=2, corpus=corpus)  # every note says it
    assert corpus.idf("project") < corpus.idf("vendor")


def test_no_tags_from_numbers_or_stop_words() -> None:
    assert keyword_tags("2026 12 15 and the of to 42 1,800", limit=5) == []
    assert keyword_tags(RECIPE, limit=0) == []


# -- tasks -------------------------------------------------------------------------------


def test_tasks_from_a_todo_list_get_exact_due_dates() -> None:
    tasks = extract_tasks(TODO, NOW)
    assert [(t.title, t.due) for t in tasks] == [
        ("Call Bob about the invoice", date(2026, 12, 8)),
        ("email Alice", date(2026, 12, 11)),
        ("Book the dentist", date(2026, 12, 14)),
        ("pay rent", date(2026, 12, 15)),
        ("renew passport", date(2026, 12, 10)),
        ("Buy a present for Leo", date(2026, 12, 24)),
        ("Pick up the dry cleaning", date(2026, 12, 7)),
    ]  # the checked "Water the plants" is done
    for task in tasks:
        start, end = task.source_span
        assert task.title.split()[0] in TODO[start:end]


@pytest.mark.parametrize(
    ("line", "title", "due"),
    [
        ("call Bob tomorrow", "call Bob", date(2026, 12, 8)),
        ("Email Alice by Friday.", "Email Alice", date(2026, 12, 11)),
        ("pay rent on 2026-12-15", "pay rent", date(2026, 12, 15)),
        ("Send the report next Monday", "Send the report", date(2026, 12, 14)),
        ("Renew insurance in 3 days", "Renew insurance", date(2026, 12, 10)),
        ("Order the cake in two weeks", "Order the cake", date(2026, 12, 21)),
        ("Book a table for Dec 24", "Book a table", date(2026, 12, 24)),
        ("Book flights by 15 January", "Book flights", date(2027, 1, 15)),
        ("Confirm the venue by Nov 3", "Confirm the venue", date(2027, 11, 3)),  # passed this year
        ("Ring the plumber this Monday", "Ring the plumber", date(2026, 12, 7)),
        ("Visit Gran on Monday", "Visit Gran", date(2026, 12, 14)),  # the next one after today
        ("Call the bank on Wednesday", "Call the bank", date(2026, 12, 9)),
        ("Submit the form next week", "Submit the form", date(2026, 12, 14)),
        ("Clean the gutters this weekend", "Clean the gutters", date(2026, 12, 12)),
        ("Remember to water the tomatoes tonight", "water the tomatoes", date(2026, 12, 7)),
        ("Call the vet next Friday", "Call the vet", date(2026, 12, 18)),  # of next week
        ("Pay the builder the day after tomorrow", "Pay the builder", date(2026, 12, 9)),
        ("Post the parcel 24 Dec", "Post the parcel", date(2026, 12, 24)),
        ("Renew the lease by Jan 15, 2027", "Renew the lease", date(2027, 1, 15)),
        ("Call Ana on 12/11", "Call Ana on 12/11", None),  # day or month first: not in the text
        ("I should call Mum", "call Mum", None),
        ("Don't forget to text Sam", "text Sam", None),
        ("We need to fix the leak by 2026-02-30", "fix the leak by 2026-02-30", None),  # no such day
    ],
)
def test_one_task_line_and_its_due_date(line: str, title: str, due: date | None) -> None:
    assert extract_tasks(line, NOW) == [Task(title=title, due=due, source_span=(0, len(line)))]


def test_prose_yields_only_its_imperative_sentences() -> None:
    tasks = extract_tasks(JOURNAL, NOW)
    assert [(t.title, t.due) for t in tasks] == [("call Mum about Christmas", date(2026, 12, 8))]
    assert extract_tasks(RECIPE, NOW) == []  # "Warm the stock" is a step, not a to-do
    assert extract_tasks(PLAN, NOW) == []


def test_task_dates_count_from_now_not_from_the_clock() -> None:
    friday = datetime(2027, 3, 5, 23, 0, tzinfo=UTC)
    assert extract_tasks("call Bob tomorrow", friday)[0].due == date(2027, 3, 6)
    assert extract_tasks("email Alice by Friday", friday)[0].due == date(2027, 3, 12)


# -- related notes -----------------------------------------------------------------------


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[Vault]:
    with Vault.open(tmp_path / "v", source="user:desktop") as v:
        yield v


def test_related_notes_rank_the_obviously_related_first(vault: Vault) -> None:
    ids = {
        name: vault.put("note", {"title": title, "text": text}).item.entity_id
        for name, title, text in [
            ("meeting", "Budget meeting", MEETING),
            ("recipe", "Lemon risotto", RECIPE),
            ("journal", "Sunday", JOURNAL),
            ("plan", "Garden shed", PLAN),
            ("todo", "This week", TODO),
            (
                "followup",
                "Budget follow-up",
                "The marketing budget review moved to March; online ads keep their budget.",
            ),
            ("shed2", "Shed timber", "Quotes for the shed timber frame and the concrete base."),
            ("gone", "Old budget", "Budget budget marketing budget trade fair budget."),
        ]
    }
    vault.delete(ids["gone"])
    found = related(vault, ids["meeting"], limit=3)
    assert found[0][0] == ids["followup"]
    assert all(score > 0 for _, score in found)
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
    assert ids["meeting"] not in {e for e, _ in found}
    assert ids["gone"] not in {e for e, _ in related(vault, ids["meeting"], limit=10)}
    assert related(vault, ids["plan"], limit=1)[0][0] == ids["shed2"]
    assert related(vault, ids["meeting"], limit=0) == []


def test_related_to_a_missing_or_deleted_note_is_not_found(vault: Vault) -> None:
    gone = vault.put("note", {"text": "a note about shells"}).item.entity_id
    vault.delete(gone)
    with pytest.raises(NotFound):
        related(vault, gone)
    with pytest.raises(NotFound):
        related(vault, "no-such-id")


def test_a_note_with_no_content_words_has_no_related_notes(vault: Vault) -> None:
    vault.put("note", {"text": "the budget"})
    empty = vault.put("note", {"text": "and the of 42"}).item.entity_id
    assert related(vault, empty) == []


def test_the_builtin_provider_writes_on_this_device() -> None:
    assert BUILTIN_SOURCE == "ai-local:builtin"


# -- any text ----------------------------------------------------------------------------

_TEXT = st.lists(
    st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from(list("#-*[]x.!?:\n 0123456789")),
        st.sampled_from(["tomorrow", "next Monday", "Dec 31", "in 9 days", "TODO:", "- [ ] ", "call "]),
    ),
    max_size=200,
).map(lambda parts: "".join(parts))


@settings(max_examples=300, deadline=None)
@given(text=_TEXT, limit=st.integers(min_value=-1, max_value=8))
def test_no_text_makes_the_builtin_provider_fail_and_the_same_text_gives_the_same_output(
    text: str, limit: int
) -> None:
    summary = summarize(text, max_sentences=limit)
    assert summary == summarize(text, max_sentences=limit)
    tags = keyword_tags(text, limit=limit)
    assert tags == keyword_tags(text, limit=limit)
    assert len(tags) == len(set(tags)) <= max(limit, 0)
    assert all(_is_tag(t) and t.strip("-") == t and not t.replace("-", "").isdigit() for t in tags)
    tasks = extract_tasks(text, NOW)
    assert tasks == extract_tasks(text, NOW)
    for task in tasks:
        assert task.title
        assert 0 <= task.source_span[0] <= task.source_span[1] <= len(text)


def test_a_very_long_note_is_processed_whole() -> None:
    """A pasted book chapter: every function reads it in one pass (no pairwise sentence work)."""
    long = " ".join(f"Chapter {i} of the saga is about ships." for i in range(5000))
    long += " The lighthouse keeper saw the ships, the saga and the lighthouse."
    assert summarize(long, max_sentences=1) == "Chapter 0 of the saga is about ships."  # the lead
    assert keyword_tags(long, limit=2) == ["saga", "ships"]
    assert extract_tasks(long + "\n- [ ] call Bob tomorrow", NOW)[-1].title == "call Bob"
