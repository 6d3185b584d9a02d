"""Entity contracts in the kernel: the breaking-change check, validation naming the field, and
how a next version is proposed against every version in use."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from truthvault.errors import ConflictState, InvalidInput
from truthvault.kernel import (
    BUILTIN_CONTRACTS,
    BreakingChange,
    Contract,
    ContractBook,
    breaking_changes,
    check_schema,
)


def obj(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, **extra}


BASE = obj(
    {
        "title": {"type": "string", "maxLength": 100},
        "size": {"type": "integer", "minimum": 0},
        "kind": {"enum": ["a", "b", "c"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "meta": obj({"owner": {"type": "string"}}),
    },
    required=["title"],
)


def changed(edit: Any) -> dict[str, Any]:
    schema = copy.deepcopy(BASE)
    edit(schema)
    return schema


# -- each kind of break is found and names its field -----------------------------------------
@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (lambda s: s["properties"].pop("size"), "size: field removed"),
        (
            lambda s: s["properties"]["size"].update(type="string"),
            "size: type changed from integer to string",
        ),
        (lambda s: s["required"].append("size"), "size: new required field"),
        (lambda s: s["properties"]["kind"].update(enum=["a", "b"]), 'kind: enum narrowed (removed "c")'),
        (lambda s: s["properties"]["title"].update(enum=["x"]), "title: enum added"),
        (lambda s: s["properties"]["title"].update(maxLength=10), "title: maxLength lowered from 100 to 10"),
        (lambda s: s["properties"]["size"].update(minimum=5), "size: minimum raised from 0 to 5"),
        (lambda s: s["properties"]["title"].update(pattern="^x"), "title: pattern changed"),
        (lambda s: s.update(additionalProperties=False), "other fields are no longer allowed"),
        (lambda s: s["properties"]["tags"]["items"].update(type="integer"), "tags[]: type changed"),
        (lambda s: s["properties"]["meta"]["properties"].pop("owner"), "meta.owner: field removed"),
        (lambda s: s["properties"]["meta"].update(required=["owner"]), "meta.owner: new required field"),
        (lambda s: s["properties"]["tags"].update(uniqueItems=True), "tags: items must now be unique"),
        (
            lambda s: s["properties"]["size"].update(anyOf=[{"minimum": 1}]),
            "size: anyOf changed (not checked",
        ),
        (lambda s: s["properties"]["kind"].update(const="a"), 'kind: const changed to "a"'),
    ],
)
def test_each_kind_of_break_is_named(edit: Any, said: str) -> None:
    breaks = breaking_changes(BASE, changed(edit))
    assert len(breaks) == 1, breaks
    assert said in breaks[0]


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s["properties"].update(colour={"type": "string"}),  # an added optional field
        lambda s: s["properties"]["kind"].update(enum=["a", "b", "c", "d"]),  # a widened enum
        lambda s: s["properties"]["title"].update(maxLength=1000),  # a loosened bound
        lambda s: s["properties"]["size"].update(minimum=-5),
        lambda s: s["properties"]["size"].update(type="number"),  # integer -> number widens
        lambda s: s["properties"]["title"].update(type=["string", "null"]),
        lambda s: s.update(required=[]),  # a field no longer required
        lambda s: s["properties"]["title"].update(description="what it is called"),  # annotations
        lambda s: s["properties"]["meta"]["properties"].update(note={"type": "string"}),
    ],
)
def test_compatible_changes_break_nothing(edit: Any) -> None:
    assert breaking_changes(BASE, changed(edit)) == []


def test_several_breaks_are_all_listed() -> None:
    def edit(s: dict[str, Any]) -> None:
        s["properties"].pop("tags")
        s["properties"]["size"]["type"] = "string"
        s["required"].append("kind")

    breaks = breaking_changes(BASE, changed(edit))
    assert sorted(b.split(":")[0] for b in breaks) == ["kind", "size", "tags"]


#: no deadline: a timing is no test of correctness on a machine shared with other work
_relaxed = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- properties ------------------------------------------------------------------------------
_names = st.text("abcdefgh", min_size=1, max_size=4)
_leaf = st.fixed_dictionaries(
    {"type": st.sampled_from(["string", "integer", "boolean", "number"])},
    optional={"enum": st.lists(st.integers(0, 5), min_size=1, max_size=4, unique=True)},
)
_schemas = st.builds(
    lambda props, required: obj(props, required=sorted(set(required) & set(props))),
    st.dictionaries(_names, _leaf, min_size=1, max_size=6),
    st.lists(_names, max_size=3),
)


@_relaxed
@given(_schemas)
def test_a_schema_is_compatible_with_itself(schema: dict[str, Any]) -> None:
    assert breaking_changes(schema, copy.deepcopy(schema)) == []


@_relaxed
@given(_schemas, _names, _leaf)
def test_adding_an_optional_field_is_compatible(
    schema: dict[str, Any], name: str, leaf: dict[str, Any]
) -> None:
    if name in schema["properties"]:
        return
    new = copy.deepcopy(schema)
    new["properties"][name] = leaf
    assert breaking_changes(schema, new) == []
    # ... and taking it away again is a removal, named
    assert breaking_changes(new, schema) == [f"{name}: field removed"]


@_relaxed
@given(_schemas, st.data())
def test_removing_any_field_is_named(schema: dict[str, Any], data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(schema["properties"])))
    new = copy.deepcopy(schema)
    del new["properties"][name]
    new["required"] = [r for r in new["required"] if r != name]
    assert breaking_changes(schema, new) == [f"{name}: field removed"]


@_relaxed
@given(_schemas, st.data())
def test_a_compatible_change_keeps_every_valid_payload_valid(
    schema: dict[str, Any], data: st.DataObject
) -> None:
    """Soundness on what the strategy makes: a payload of the old version's fields that the old
    version takes, the new one takes too whenever the check calls the change compatible. (A
    field the old version did not name is the one exception, by design: adding an optional
    field is compatible, though an old payload may have used that name for something else.)"""
    new = data.draw(st.one_of(_schemas, st.just(_loosened(schema))))
    if breaking_changes(schema, new):
        return
    old_c, new_c = Contract("x", 1, 1, schema), Contract("x", 2, 1, new)
    keys = st.sampled_from(sorted(schema["properties"]))
    payload = data.draw(
        st.dictionaries(keys, st.one_of(st.integers(0, 5), st.booleans(), st.text(max_size=2)))
    )
    if old_c.refusal(payload) is None:
        assert new_c.refusal(payload) is None


def _loosened(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with no required field, every enum widened and one field more."""
    new = copy.deepcopy(schema)
    new["required"] = []
    for leaf in new["properties"].values():
        if "enum" in leaf:
            leaf["enum"] = [*leaf["enum"], 99]
    new["properties"]["zzzzz"] = {"type": "string"}
    return new


# -- validation names the field --------------------------------------------------------------
def test_validation_errors_name_the_field() -> None:
    note = ContractBook().current("note")
    assert note is not None
    with pytest.raises(
        InvalidInput, match=r'^payload\.title: 5 is not of type "string" \(note contract v1\)$'
    ):
        note.validate({"title": 5})
    with pytest.raises(InvalidInput, match=r"^payload\.tags\[1\]: "):
        note.validate({"tags": ["a", 2]})
    strict = Contract("task", 2, 1, obj({"title": {"type": "string"}}, required=["title"]))
    with pytest.raises(InvalidInput, match=r"^payload: \"title\" is a required property"):
        strict.validate({})


def test_the_built_ins_take_what_the_command_line_and_the_tests_write() -> None:
    book = ContractBook()
    for entity_type, payload in [
        ("note", {"text": "milk", "title": "shopping", "tags": ["home"]}),
        ("note", {"t": "x", "n": 1}),  # other fields are free
        ("task", {"title": "renew passport", "done": False, "due": "2027-01-10"}),
        ("task", {}),
    ]:
        assert book.refusal(entity_type, 1, msgspec_encode(payload)) is None
    assert [c.entity_type for c in BUILTIN_CONTRACTS] == ["note", "task"]


def msgspec_encode(payload: dict[str, Any]) -> bytes:
    import msgspec

    return msgspec.json.encode(payload)


def test_a_free_form_type_takes_anything_and_an_unknown_version_is_refused() -> None:
    book = ContractBook()
    assert book.refusal("recipe", 7, b'{"any": ["thing"]}') is None
    assert book.refusal("note", 2, b"{}") == "contract_version: note has no contract version 2 (known: 1)"


# -- proposing the next version --------------------------------------------------------------
def test_a_breaking_version_is_refused_unless_major() -> None:
    book = ContractBook()
    with pytest.raises(BreakingChange) as refused:
        book.propose("note", obj({"text": {"type": "integer"}}))
    assert "text: type changed from string to integer" in refused.value.message
    assert "tags: field removed" in refused.value.message
    major = book.propose("note", obj({"text": {"type": "integer"}}), major=True)
    assert (major.version, major.major) == (2, 2)
    minor = book.propose(
        "note", obj({**BUILTIN_CONTRACTS[0].schema["properties"], "pinned": {"type": "boolean"}})
    )
    assert (minor.version, minor.major) == (2, 1)


def test_the_check_runs_against_every_version_in_use_not_only_the_newest() -> None:
    v1 = Contract("item", 1, 1, obj({"a": {"type": "string"}}))
    v2 = Contract("item", 2, 2, obj({"b": {"type": "integer"}}))  # a major version dropped a
    book = ContractBook([v1, v2])
    v3 = obj({"b": {"type": "integer"}, "a": {"type": "integer"}})
    assert book.propose("item", v3).version == 3  # compatible with the newest
    with pytest.raises(BreakingChange, match=r"a: type changed from string to integer \(against v1\)"):
        book.propose("item", v3, in_use=[1])  # but a device still writes under v1


def test_the_first_version_of_a_new_type_and_the_same_schema_again() -> None:
    book = ContractBook()
    first = book.propose("recipe", obj({"name": {"type": "string"}}))
    assert (first.entity_type, first.version, first.major) == ("recipe", 1, 1)
    with pytest.raises(ConflictState, match="already has this schema"):
        book.propose("note", BUILTIN_CONTRACTS[0].schema)


@pytest.mark.parametrize(
    ("schema", "said"),
    [
        ([], "must be a JSON object"),
        ({"type": "array"}, 'schema.type: must be "object"'),
        (
            obj({"a": {"$ref": "https://example.com/s.json"}}),
            "schema.properties.a.$ref: 'https://example.com/s.json' refers outside",
        ),
        (obj({"a": {"type": "strng"}}), "schema.properties.a.type: not a valid JSON Schema"),
        (obj({"a": {"minLength": -1}}), "schema.properties.a.minLength: not a valid JSON Schema"),
    ],
)
def test_a_bad_schema_is_refused_naming_where(schema: Any, said: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_schema(schema)
    assert said in refused.value.message
    with pytest.raises(InvalidInput):
        ContractBook().propose("note", schema)


def test_a_bad_entity_type_is_refused() -> None:
    with pytest.raises(InvalidInput, match="entity_type"):
        ContractBook().propose("Not A Type", obj({}))
