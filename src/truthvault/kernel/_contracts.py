"""Entity contracts: a versioned JSON Schema per entity type, the validation of a payload
against the version it was written under, and the breaking-change check a new version passes.

A :class:`Contract` is (entity type, version, major, schema). ``note`` and ``task`` have a
built-in version 1 (:data:`BUILTIN_CONTRACTS`); a type without any contract is free-form.
:class:`ContractBook` is the contracts one tenant knows (the built-ins plus those stored), as
the vault and the hub hold them; :meth:`ContractBook.propose` makes the next version of a type,
refusing a breaking one (:func:`breaking_changes`) unless it is marked as a new major version.

Validation uses ``jsonschema-rs`` (Draft 2020-12) with one compiled validator per schema: on a
note payload it took 0.2 µs against 24 µs for the ``jsonschema`` package (see
``benchmarks/bench_contracts.py``).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..errors import ConflictState, InvalidInput
from ..intake import check_entity_type
from ._upcast import UPCAST_KEY, check_upcast

__all__ = [
    "BUILTIN_CONTRACTS",
    "MAX_SCHEMA_BYTES",
    "BreakingChange",
    "Contract",
    "ContractBook",
    "breaking_changes",
    "canonical_schema",
    "check_schema",
]

#: The largest schema a contract may hold, as canonical JSON.
MAX_SCHEMA_BYTES = 64 << 10
_DRAFT = "https://json-schema.org/draft/2020-12/schema"


class BreakingChange(ConflictState):
    """A new contract version breaks one in use and is not marked as a new major version."""

    code = "breaking_change"

    def __init__(self, entity_type: str, breaks: Sequence[str], hint: str | None = None) -> None:
        super().__init__(
            f"contract {entity_type}: breaking change: {'; '.join(breaks)}",
            hint=hint or "mark it as a new major version (--major) if every device may change with it",
        )
        self.breaks = list(breaks)


def canonical_schema(schema: Mapping[str, Any]) -> str:
    """A schema as canonical JSON text (sorted keys, no spaces): what is stored and compared."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Contract:
    """One version of one entity type's contract."""

    entity_type: str
    version: int
    major: int
    schema: Mapping[str, Any] = field(hash=False, compare=False)
    #: the schema as canonical JSON (what two contracts are compared by)
    canonical: str = field(init=False)
    _compiled: Any = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "canonical", canonical_schema(self.schema))

    @property
    def digest(self) -> str:
        """The SHA-256 of the canonical schema, in hex."""
        return hashlib.sha256(self.canonical.encode()).hexdigest()

    def validate(self, payload: Any, where: str = "payload") -> None:
        """InvalidInput naming the first field of ``payload`` the contract refuses."""
        reason = self.refusal(payload, where)
        if reason is not None:
            raise InvalidInput(reason)

    @property
    def _check(self) -> Any:
        validator = self._compiled
        if validator is None:  # compiled once per schema (the cache), then kept here
            validator = _validator(self.canonical)
            object.__setattr__(self, "_compiled", validator)
        return validator

    def accepts(self, payload: bytes | msgspec.Raw) -> bool:
        """Whether the contract takes a payload given as JSON bytes (the fast path of a push)."""
        try:
            return bool(self._check.is_valid(msgspec.json.decode(payload)))
        except msgspec.DecodeError:
            return False

    def refusal(self, payload: Any, where: str = "payload") -> str | None:
        """Why the contract refuses ``payload`` (the field first), or None when it fits."""
        validator = self._check
        if validator.is_valid(payload):
            return None
        error = next(iter(validator.iter_errors(payload)))
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.instance_path)
        return f"{where}{path}: {error.message} ({self.entity_type} contract v{self.version})"

    def to_dict(self) -> dict[str, Any]:
        """The contract as plain data (what the hub sends and the CLI prints with --json)."""
        return {
            "entity_type": self.entity_type,
            "version": self.version,
            "major": self.major,
            "schema": dict(self.schema),
        }


def _jsonschema() -> Any:
    """jsonschema-rs, loaded when a schema is first compiled or checked (not when the kernel is
    imported: a command that writes nothing needs it not)."""
    import jsonschema_rs

    return jsonschema_rs


@functools.lru_cache(maxsize=512)
def _validator(canonical: str) -> Any:
    return _jsonschema().Draft202012Validator(json.loads(canonical))


def _object(properties: dict[str, Any], title: str) -> dict[str, Any]:
    # Open (other fields allowed): every payload written before contracts existed stays valid.
    return {"$schema": _DRAFT, "title": title, "type": "object", "properties": properties}


_STR: dict[str, Any] = {"type": "string"}
#: Version 1 of the built-in types: the fields the command line writes, none of them required.
BUILTIN_CONTRACTS: tuple[Contract, ...] = (
    Contract(
        "note",
        1,
        1,
        _object({"text": _STR, "title": _STR, "tags": {"type": "array", "items": _STR}}, "note"),
    ),
    Contract("task", 1, 1, _object({"title": _STR, "done": {"type": "boolean"}, "due": _STR}, "task")),
)


def check_schema(schema: Any, where: str = "schema") -> dict[str, Any]:
    """The schema, checked: a JSON Schema (Draft 2020-12) of a JSON object, with no reference
    outside itself, at most MAX_SCHEMA_BYTES; InvalidInput naming what is wrong."""
    if not isinstance(schema, dict):
        raise InvalidInput(f"{where}: a contract's schema must be a JSON object")
    if len(canonical_schema(schema).encode()) > MAX_SCHEMA_BYTES:
        raise InvalidInput(f"{where}: over {MAX_SCHEMA_BYTES} bytes")
    if schema.get("type") != "object":
        raise InvalidInput(f'{where}.type: must be "object" (a payload is a JSON object)')
    if UPCAST_KEY in schema:
        check_upcast(schema[UPCAST_KEY], f"{where}.{UPCAST_KEY}")
    for path, ref in _refs(schema, where):
        if not ref.startswith("#"):
            raise InvalidInput(f"{path}: {ref!r} refers outside the schema (only '#...' references)")
    jsonschema_rs = _jsonschema()
    try:
        jsonschema_rs.meta.validate(schema)
        jsonschema_rs.Draft202012Validator(schema)
    except jsonschema_rs.ValidationError as exc:
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.instance_path)
        raise InvalidInput(f"{where}{path}: not a valid JSON Schema ({exc.message})") from None
    except (ValueError, jsonschema_rs.ReferencingError) as exc:
        raise InvalidInput(f"{where}: not a usable JSON Schema ({exc})") from None
    return schema


def _refs(node: Any, path: str) -> Iterable[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                yield f"{path}.{key}", value
            else:
                yield from _refs(value, f"{path}.{key}")
    elif isinstance(node, list):
        for n, value in enumerate(node):
            yield from _refs(value, f"{path}[{n}]")


# -- the breaking-change check --------------------------------------------------------------
#: keywords that say nothing about what is valid
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "default", "examples", "deprecated"}
    | {"readOnly", "writeOnly", "format", "$anchor", "contentMediaType", "contentEncoding"}
    | {UPCAST_KEY}  # how older payloads become this version's: says nothing of what is valid
)
#: keywords this check understands (the rest, when changed, are taken as breaking)
_LOWER = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_KNOWN = frozenset(
    {"type", "properties", "required", "enum", "const", "additionalProperties", "items"}
    | {"pattern", "uniqueItems", "multipleOf", *_LOWER, *_UPPER}
)


def breaking_changes(old: Any, new: Any, path: str = "") -> list[str]:
    """What in ``new`` refuses data ``old`` accepted, each naming its field: a removed field, a
    changed type, a new required field, a narrowed enum or constant, a tightened bound or
    pattern, additional fields refused. A change of a keyword this check does not understand
    (anyOf, $ref, ...) is reported too, as it cannot be shown to be safe."""
    where = path or "(the payload)"
    if new is True or new == {} or old == new:
        return []
    if old is False:
        return []
    if new is False:
        return [f"{where}: refuses everything now"]
    if not isinstance(new, dict):
        return [f"{where}: not a schema"]
    old = {} if old is True else old
    breaks: list[str] = []
    breaks += _type_change(old, new, where)
    breaks += _fields(old, new, path)
    breaks += _values(old, new, where)
    breaks += _bounds(old, new, where)
    if new.get("additionalProperties") is False and old.get("additionalProperties") is not False:
        breaks.append(f"{where}: other fields are no longer allowed")
    elif isinstance(new.get("additionalProperties"), dict):
        breaks += breaking_changes(
            old.get("additionalProperties", True), new["additionalProperties"], _join(path, "*")
        )
    if "items" in new:
        breaks += breaking_changes(old.get("items", True), new["items"], f"{path}[]")
    for key in sorted(set(old) | set(new)):
        if key not in _ANNOTATIONS and key not in _KNOWN and old.get(key) != new.get(key):
            breaks.append(f"{where}: {key} changed (not checked, so taken as breaking)")
    return breaks


def _types(schema: Mapping[str, Any]) -> set[str] | None:
    kind = schema.get("type")
    if kind is None:
        return None
    found = {kind} if isinstance(kind, str) else set(kind)
    if "number" in found:
        found.add("integer")
    return found


def _type_change(old: Mapping[str, Any], new: Mapping[str, Any], where: str) -> list[str]:
    before, after = _types(old), _types(new)
    if after is None or (before is not None and before <= after):
        return []
    said = (
        "any" if before is None else "/".join(sorted(before - {"integer"} if "number" in before else before))
    )
    return [f"{where}: type changed from {said} to {'/'.join(sorted(_types_said(new)))}"]


def _types_said(schema: Mapping[str, Any]) -> set[str]:
    kind = schema["type"]
    return {kind} if isinstance(kind, str) else set(kind)


def _fields(old: Mapping[str, Any], new: Mapping[str, Any], path: str) -> list[str]:
    breaks: list[str] = []
    before, after = old.get("properties", {}), new.get("properties", {})
    for name in sorted(before):
        if name not in after:
            breaks.append(f"{_join(path, name)}: field removed")
        else:
            breaks += breaking_changes(before[name], after[name], _join(path, name))
    for name in sorted(set(new.get("required", ())) - set(old.get("required", ()))):
        breaks.append(f"{_join(path, name)}: new required field")
    return breaks


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _values(old: Mapping[str, Any], new: Mapping[str, Any], where: str) -> list[str]:
    breaks: list[str] = []
    if "enum" in new:
        if "enum" not in old:
            breaks.append(f"{where}: enum added (narrowed to {_said(new['enum'])})")
        else:
            gone = [v for v in old["enum"] if _key(v) not in {_key(w) for w in new["enum"]}]
            if gone:
                breaks.append(f"{where}: enum narrowed (removed {_said(gone)})")
    if "const" in new and ("const" not in old or _key(old["const"]) != _key(new["const"])):
        breaks.append(f"{where}: const changed to {_said([new['const']])}")
    if "pattern" in new and old.get("pattern") != new["pattern"]:
        breaks.append(f"{where}: pattern changed to {new['pattern']!r}")
    if new.get("uniqueItems") is True and old.get("uniqueItems") is not True:
        breaks.append(f"{where}: items must now be unique")
    step = new.get("multipleOf")
    if step is not None and (old.get("multipleOf") is None or old["multipleOf"] % step != 0):
        breaks.append(f"{where}: multipleOf changed to {step}")
    return breaks


def _said(values: Sequence[Any]) -> str:
    return ", ".join(_key(v) for v in values[:10]) + (", ..." if len(values) > 10 else "")


def _bounds(old: Mapping[str, Any], new: Mapping[str, Any], where: str) -> list[str]:
    breaks: list[str] = []
    for key in _LOWER:
        if key in new and (key not in old or new[key] > old[key]):
            breaks.append(f"{where}: {key} raised {_from(old, key)}to {new[key]}")
    for key in _UPPER:
        if key in new and (key not in old or new[key] < old[key]):
            breaks.append(f"{where}: {key} lowered {_from(old, key)}to {new[key]}")
    return breaks


def _from(old: Mapping[str, Any], key: str) -> str:
    return f"from {old[key]} " if key in old else ""


# -- the contracts of one tenant ------------------------------------------------------------
class ContractBook:
    """The contracts one tenant knows: the built-ins and those stored (immutable once made)."""

    def __init__(self, stored: Iterable[Contract] = ()) -> None:
        self._by_type: dict[str, dict[int, Contract]] = {}
        for contract in (*BUILTIN_CONTRACTS, *stored):
            self._by_type.setdefault(contract.entity_type, {})[contract.version] = contract

    def types(self) -> list[str]:
        """The entity types that have a contract."""
        return sorted(self._by_type)

    def versions(self, entity_type: str) -> list[Contract]:
        """Every version of a type's contract, oldest first (empty: the type is free-form)."""
        return [v for _, v in sorted(self._by_type.get(entity_type, {}).items())]

    def all(self) -> list[Contract]:
        """Every version of every type."""
        return [c for t in self.types() for c in self.versions(t)]

    def get(self, entity_type: str, version: int) -> Contract | None:
        return self._by_type.get(entity_type, {}).get(version)

    def current(self, entity_type: str) -> Contract | None:
        """The newest version of a type (the one writes are made under), None when free-form."""
        found = self._by_type.get(entity_type)
        return found[max(found)] if found else None

    def refusal(self, entity_type: str, version: int, payload: bytes) -> str | None:
        """Why a payload (JSON bytes) declared under ``version`` of its type is refused, or None:
        a free-form type takes any, a contracted one only a payload its version accepts."""
        versions = self._by_type.get(entity_type)
        if not versions:
            return None
        contract = versions.get(version)
        if contract is None:
            return f"contract_version: {entity_type} has no contract version {version} (known: {_list(versions)})"
        try:
            data = msgspec.json.decode(payload)
        except msgspec.DecodeError:
            return "payload: not valid JSON"
        return contract.refusal(data)

    def propose(
        self, entity_type: str, schema: Any, *, major: bool = False, in_use: Iterable[int] = ()
    ) -> Contract:
        """The next version of a type's contract with ``schema``: checked against the newest
        version and every version ``in_use`` by a device; BreakingChange if it breaks one and
        is not marked ``major`` (then it starts a new major version)."""
        entity_type = check_entity_type(entity_type)
        schema = check_schema(schema)
        versions = self._by_type.get(entity_type, {})
        latest = versions[max(versions)] if versions else None
        if latest is None:
            if UPCAST_KEY in schema:
                raise InvalidInput(
                    f"schema.{UPCAST_KEY}: the first version of a type has nothing to upcast from"
                )
            return Contract(entity_type, 1, 1, schema)
        breaks: list[str] = []
        for version in sorted({latest.version, *(v for v in in_use if v in versions)}):
            for said in breaking_changes(versions[version].schema, schema):
                said = f"{said} (against v{version})"
                if said not in breaks:
                    breaks.append(said)
        if latest.canonical == canonical_schema(schema) and not major:
            raise ConflictState(f"contract {entity_type}: v{latest.version} already has this schema")
        if breaks and not major:
            raise BreakingChange(entity_type, breaks)
        new_major = latest.major + (1 if major else 0)
        declared = schema.get(UPCAST_KEY)
        if declared is not None and (not major or declared["from_major"] != new_major - 1):
            raise InvalidInput(
                f"schema.{UPCAST_KEY}.from_major: an upcaster belongs to the first version of a new major "
                f"version and upcasts from the one before ({new_major - 1 if major else 'mark it --major'})"
            )
        return Contract(entity_type, latest.version + 1, new_major, schema)

    def broken(self, entity_type: str, version: int) -> Contract | None:
        """The newest version of a type when a newer major version broke ``version`` (a payload
        written under it may no longer fit), else None (it is current, or unknown here)."""
        found = self._by_type.get(entity_type)
        written = None if found is None else found.get(version)
        if written is None or found is None:
            return None
        current = found[max(found)]
        return current if current.major > written.major else None


def _list(versions: Mapping[int, Contract]) -> str:
    return ", ".join(str(v) for v in sorted(versions))
