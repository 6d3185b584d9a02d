"""The offline risk rule (plan 002, 7.5) and upcasters declared as data: pure, no I/O."""

from __future__ import annotations

from typing import Any

import pytest

from truthvault.errors import InvalidInput
from truthvault.kernel import (
    Contract,
    ContractBook,
    DeviceStatus,
    OfflineRisk,
    Risk,
    assess,
    breaking_changes,
    check_schema,
    contract_lag,
    critical_at,
    upcast,
)

DAY = 86_400.0
NOW = 1_800_000_000.0
STR = {"type": "string"}


def _risk(days: float | None = None, pending: int = 0, behind: tuple[str, ...] = ()) -> Any:
    return assess(DeviceStatus(None if days is None else NOW - days * DAY, pending, behind), NOW)


@pytest.mark.parametrize(
    ("days", "level"),
    [
        (None, OfflineRisk.LOW),  # never synced: no time lost to count
        (0, OfflineRisk.LOW),
        (7, OfflineRisk.LOW),  # "more than 7": 7 exactly is still low
        (7.5, OfflineRisk.MEDIUM),
        (14, OfflineRisk.MEDIUM),
        (15, OfflineRisk.HIGH),
        (30, OfflineRisk.HIGH),
        (30.01, OfflineRisk.CRITICAL),
        (400, OfflineRisk.CRITICAL),
    ],
)
def test_days_offline(days: float | None, level: OfflineRisk) -> None:
    assert _risk(days).level is level


@pytest.mark.parametrize(
    ("pending", "level"),
    [
        (0, OfflineRisk.LOW),
        (50, OfflineRisk.LOW),
        (51, OfflineRisk.MEDIUM),
        (100, OfflineRisk.MEDIUM),
        (101, OfflineRisk.HIGH),
        (10_000, OfflineRisk.HIGH),  # pending alone never makes it critical
    ],
)
def test_unsynced_changes(pending: int, level: OfflineRisk) -> None:
    assert _risk(1, pending).level is level


def test_contract_lag_is_critical_whatever_else() -> None:
    risk = _risk(0, 0, ("note v1 (major 1) is behind v3 (major 2)",))
    assert risk.level is OfflineRisk.CRITICAL
    assert risk.reasons == ("contract note v1 (major 1) is behind v3 (major 2)",)


def test_the_worst_input_decides_and_every_reason_is_said() -> None:
    risk = _risk(20, 60)  # high by days, medium by pending
    assert risk.level is OfflineRisk.HIGH and risk.days_offline == 20
    assert risk.reasons == (
        "offline for 20 days (high threshold: 14)",
        "60 unsynced changes (medium threshold: 50)",
    )
    assert _risk(8, 101).level is OfflineRisk.HIGH  # medium by days, high by pending
    assert _risk(0).reasons == () and _risk(0).hint == ""
    assert "sync first" in _risk(31).hint


@pytest.mark.parametrize(
    ("level_days", "allowed"),
    [(31, ("read", "capture")), (15, ("read", "capture", "draft")), (8, ("*",)), (0, ("*",))],
)
def test_what_each_level_allows(level_days: float, allowed: tuple[str, ...]) -> None:
    assert _risk(level_days).allowed == allowed


def test_permits_by_action_and_risk() -> None:
    critical, high, low = _risk(31), _risk(15), _risk(0)
    # capture: creating a note or a task
    for risk in (critical, high, low):
        assert risk.permits("notes.create", Risk.WRITE) and risk.permits("tasks.create", Risk.WRITE)
        assert risk.permits("entity.get", Risk.READ)
    assert not critical.permits("entity.edit", Risk.WRITE)
    assert not critical.permits("entity.delete", Risk.DESTRUCTIVE)
    assert not critical.permits("approval.decide", Risk.SECURITY)
    # high: drafts (edits) yes; decisions, deletes and security no
    assert high.permits("entity.edit", Risk.WRITE)
    assert not high.permits("suggestion.accept", Risk.WRITE)
    assert not high.permits("entity.delete", Risk.DESTRUCTIVE)
    assert not high.permits("pin.set", Risk.SECURITY)
    assert low.permits("entity.delete", Risk.DESTRUCTIVE) and low.permits("pin.set", Risk.SECURITY)


def test_critical_at() -> None:
    assert critical_at(DeviceStatus(None)) is None
    assert critical_at(DeviceStatus(NOW)) == NOW + 30 * DAY
    assert critical_at(DeviceStatus(NOW, behind=("x",))) == 0.0


def _obj(props: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, **more}


V1 = Contract("memo", 1, 1, _obj({"body": STR, "colour": STR}))
V2 = Contract("memo", 2, 1, _obj({"body": STR, "colour": STR, "pinned": {"type": "boolean"}}))
UP = {"from_major": 1, "rename": {"body": "text"}, "drop": ["colour"], "defaults": {"priority": 0}}
V3 = Contract(
    "memo",
    3,
    2,
    _obj({"text": STR, "priority": {"type": "integer"}}, required=["text", "priority"], **{"x-upcast": UP}),
)


def test_contract_lag_names_each_version_a_newer_major_broke() -> None:
    book = ContractBook([V1, V2, V3])
    assert contract_lag({"memo": [1, 3], "note": [1], "other": [9]}, book) == (
        "memo v1 (major 1) is behind v3 (major 2)",
    )
    assert contract_lag({"memo": [3]}, book) == ()
    assert book.broken("memo", 2) == V3 and book.broken("memo", 3) is None and book.broken("memo", 7) is None


def test_upcast_renames_drops_and_defaults_then_checks_the_newest_version() -> None:
    book = ContractBook([V1, V2, V3])
    done = upcast(book, "memo", 2, {"body": "hi", "colour": "red", "pinned": True})
    assert not isinstance(done, str)
    assert done == ({"text": "hi", "pinned": True, "priority": 0}, V3)
    # the result must fit: no body, so no text, which v3 requires
    refused = upcast(book, "memo", 1, {"colour": "red"})
    assert refused == (
        'upcast from memo v1 does not fit: payload: "text" is a required property (memo contract v3)'
    )


def test_no_upcaster_means_no_upcast() -> None:
    bare = Contract("memo", 3, 2, _obj({"text": STR}))
    said = upcast(ContractBook([V1, bare]), "memo", 1, {"body": "x"})
    assert said == "memo v1 (major 1) was broken by v3 (major 2) and no upcaster from major 1 exists"
    # two majors behind, one step declared: still none
    v4 = Contract("memo", 4, 3, _obj({"text": STR}, **{"x-upcast": {"from_major": 2}}))
    assert "no upcaster from major 1" in str(upcast(ContractBook([V1, bare, v4]), "memo", 1, {"body": "x"}))
    chained = upcast(ContractBook([V1, V3, v4]), "memo", 1, {"body": "x"})
    assert not isinstance(chained, str) and chained[0] == {"text": "x", "priority": 0}


def test_an_upcaster_is_data_checked_naming_the_field() -> None:
    schema = _obj({"text": STR})
    for bad, field in [
        ("yes", "schema.x-upcast: must be an object"),
        ({"from_major": 0}, "schema.x-upcast.from_major"),
        ({"from_major": 1, "rename": {"a": 5}}, "schema.x-upcast.rename"),
        ({"from_major": 1, "drop": "a"}, "schema.x-upcast.drop"),
        ({"from_major": 1, "defaults": []}, "schema.x-upcast.defaults"),
        ({"from_major": 1, "code": "import os"}, "schema.x-upcast.code: unknown"),
    ]:
        with pytest.raises(InvalidInput, match=f"^{field}"):
            check_schema({**schema, "x-upcast": bad})
    assert check_schema({**schema, "x-upcast": UP})["x-upcast"] == UP


def test_an_upcaster_belongs_to_the_first_version_of_the_next_major() -> None:
    book = ContractBook([V1, V2])
    new = _obj({"text": STR}, **{"x-upcast": {"from_major": 1, "rename": {"body": "text"}}})
    assert book.propose("memo", new, major=True).major == 2
    with pytest.raises(InvalidInput, match=r"^schema\.x-upcast\.from_major: "):
        book.propose("memo", {**new, "x-upcast": {"from_major": 2}}, major=True)
    with pytest.raises(InvalidInput, match=r"^schema\.x-upcast\.from_major: .*mark it --major"):
        book.propose("memo", {**V2.schema, "x-upcast": {"from_major": 1}})
    # declaring one breaks nothing by itself
    assert breaking_changes(V2.schema, {**V2.schema, "x-upcast": UP}) == []
