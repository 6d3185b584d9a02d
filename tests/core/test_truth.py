"""The truth hierarchy: levels, sources, the key and the resolution rules."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from truthvault.errors import InvalidSource
from truthvault.truth import (
    Outcome,
    TruthLevel,
    authority,
    check_source,
    is_higher_truth,
    level_of_source,
    parse_source,
    record_id,
    resolution_key,
    resolve,
    upgraded_level,
)

from .versions import V, versions


def test_levels_have_names_and_order() -> None:
    assert [lv.short for lv in TruthLevel] == ["U1", "A2", "L3", "LN4", "C5"]
    assert [authority(lv) for lv in TruthLevel] == [5, 4, 3, 2, 1]
    assert is_higher_truth(TruthLevel.USER, TruthLevel.AUTOMATION)
    assert not is_higher_truth(TruthLevel.AI_CLOUD, TruthLevel.AI_LAN)
    assert not is_higher_truth(3, 3)


@pytest.mark.parametrize(
    ("source", "level"),
    [
        ("user:cli", 1),
        ("user:voice", 1),
        ("automation:rule-123", 2),
        ("ai-local:llama3.1-8b", 3),
        ("ai-lan:homelab/qwen", 4),
        ("ai-cloud:openai/gpt-4o", 5),
    ],
)
def test_source_implies_level(source: str, level: int) -> None:
    assert level_of_source(source) == level
    assert check_source(source, level) == level


@pytest.mark.parametrize(
    "source", ["", "user", "user:", "robot:x", "USER:cli", "user: cli", "ai-cloud:" + "x" * 200]
)
def test_malformed_sources_are_refused(source: str) -> None:
    with pytest.raises(InvalidSource):
        parse_source(source)


def test_level_mismatch_is_an_error() -> None:
    with pytest.raises(InvalidSource, match="level 5"):
        check_source("ai-cloud:x", 1)


def test_upgrade_rule() -> None:
    assert upgraded_level(5, True) == 1
    assert upgraded_level(5, False) == 5


def test_record_ids_are_deterministic() -> None:
    a = record_id("e1", "2026-01-01T00:00:00.000Z-0000", "d1")
    assert a == record_id("e1", "2026-01-01T00:00:00.000Z-0000", "d1")
    assert a != record_id("e1", "2026-01-01T00:00:00.000Z-0000", "d2")


def test_case_a_user_beats_every_lower_level() -> None:
    user = V(1, 10, "a")
    for level in range(2, 6):
        later = V(level, 99, "b")
        assert resolve(user, later).outcome is Outcome.SUGGESTION
        assert resolve(later, user).outcome is Outcome.APPLIED
        assert resolve(later, user).loser == "suggestion"


def test_case_b_user_vs_user_is_last_write_wins_and_a_conflict() -> None:
    old, new = V(1, 10, "a"), V(1, 20, "b")
    applied = resolve(old, new)
    assert applied.outcome is Outcome.APPLIED and applied.loser == "conflict" and applied.conflict
    lost = resolve(new, old)
    assert lost.outcome is Outcome.CONFLICT and lost.conflict


def test_case_c_higher_authority_then_last_write() -> None:
    assert resolve(V(5, 99, "a"), V(2, 1, "b")).outcome is Outcome.APPLIED
    assert resolve(V(2, 1, "a"), V(5, 99, "b")).outcome is Outcome.SUGGESTION
    assert resolve(V(3, 10, "a"), V(3, 20, "b")).outcome is Outcome.APPLIED
    assert resolve(V(3, 20, "a"), V(3, 10, "b")).outcome is Outcome.SUGGESTION


def test_an_edit_that_builds_on_the_current_version_keeps_nothing() -> None:
    base = V(1, 10, "a")
    edit = V(1, 20, "b", base=base)
    assert resolve(base, edit).loser is None
    assert resolve(edit, base).outcome is Outcome.SUPERSEDED


def test_same_device_writes_are_sequential() -> None:
    assert resolve(V(1, 10, "a"), V(1, 20, "a")).loser is None


def test_delete_rule() -> None:
    user_note = V(1, 10, "a")
    automation_delete = V(2, 20, "b", deleted=True)
    assert resolve(user_note, automation_delete).outcome is Outcome.SUGGESTION
    user_delete = V(1, 30, "b", deleted=True)
    assert resolve(V(3, 40, "c"), user_delete).outcome is Outcome.APPLIED
    assert resolve(user_delete, V(1, 40, "c")).outcome is Outcome.APPLIED  # later U1 edit wins
    assert resolve(V(1, 40, "c"), user_delete).outcome is Outcome.CONFLICT  # earlier U1 delete loses


def test_identical_version_is_a_duplicate() -> None:
    v = V(2, 10, "a")
    assert resolve(v, V(2, 10, "a")).outcome is Outcome.DUPLICATE


@given(st.lists(versions(), min_size=2, max_size=6, unique_by=lambda v: (v.last_modified_at, v.device_id)))
def test_the_winner_is_the_same_in_every_order(vs: list[V]) -> None:
    expected = max(vs, key=lambda v: resolution_key(v.truth_level, v.last_modified_at, v.device_id))
    for order in itertools.islice(itertools.permutations(vs), 24):
        current = None
        for v in order:
            if current is None or resolve(current, v).outcome is Outcome.APPLIED:
                current = v
        assert current is expected


@given(versions(), versions())
def test_no_lower_level_ever_replaces_user_content(a: V, b: V) -> None:
    if a.truth_level == 1 and b.truth_level > 1:
        assert resolve(a, b).outcome is not Outcome.APPLIED
