"""Upcasters: how a payload written under an older major version of a contract becomes one of
the newest, declared as data in the first version of each major (never code from the hub).

The first version of a new major version may say, under ``"x-upcast"`` in its schema, how a
payload of the major before it changes::

    "x-upcast": {"from_major": 1, "rename": {"body": "text"}, "drop": ["colour"],
                 "defaults": {"priority": 0}}

Applied in that order: fields renamed, fields dropped, then each default set where the field is
missing. A payload several majors behind goes through each step in turn; a step missing
anywhere means there is no upcaster, and the item is parked instead (see the vault's parking).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput

if TYPE_CHECKING:
    from ._contracts import Contract, ContractBook

__all__ = ["UPCAST_KEY", "Upcast", "check_upcast", "upcast"]

#: the schema keyword an upcaster is declared under
UPCAST_KEY = "x-upcast"
_KEYS = frozenset({"from_major", "rename", "drop", "defaults"})


def check_upcast(spec: Any, where: str) -> None:
    """InvalidInput naming what is wrong with an ``x-upcast`` declaration."""
    if not isinstance(spec, dict):
        raise InvalidInput(f"{where}: must be an object (from_major, rename, drop, defaults)")
    unknown = sorted(set(spec) - _KEYS)
    if unknown:
        raise InvalidInput(f"{where}.{unknown[0]}: unknown (allowed: {', '.join(sorted(_KEYS))})")
    major = spec.get("from_major")
    if isinstance(major, bool) or not isinstance(major, int) or major < 1:
        raise InvalidInput(f"{where}.from_major: must be an integer >= 1 (the major version it upcasts from)")
    rename = spec.get("rename", {})
    if not isinstance(rename, dict) or not all(isinstance(v, str) and v for v in rename.values()):
        raise InvalidInput(f"{where}.rename: must map old field names to new ones")
    drop = spec.get("drop", [])
    if not isinstance(drop, list) or not all(isinstance(v, str) for v in drop):
        raise InvalidInput(f"{where}.drop: must be a list of field names")
    if not isinstance(spec.get("defaults", {}), dict):
        raise InvalidInput(f"{where}.defaults: must map field names to values")


class Upcast:
    """One step: a payload of ``from_major`` made one of the major that declares it."""

    __slots__ = ("defaults", "drop", "from_major", "rename")

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self.from_major = int(spec["from_major"])
        self.rename: dict[str, str] = dict(spec.get("rename", {}))
        self.drop: list[str] = list(spec.get("drop", []))
        self.defaults: dict[str, Any] = dict(spec.get("defaults", {}))

    def apply(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(payload)
        for old, new in self.rename.items():
            if old in out:
                out[new] = out.pop(old)
        for name in self.drop:
            out.pop(name, None)
        for name, value in self.defaults.items():
            out.setdefault(name, value)
        return out


def _step_into(book: ContractBook, entity_type: str, major: int) -> Upcast | None:
    """The upcaster the first version of ``major`` declares from the major before it, or None."""
    first: Contract | None = next((c for c in book.versions(entity_type) if c.major == major), None)
    spec = None if first is None else first.schema.get(UPCAST_KEY)
    if not isinstance(spec, Mapping) or spec.get("from_major") != major - 1:
        return None
    return Upcast(spec)


def upcast(
    book: ContractBook, entity_type: str, version: int, payload: Mapping[str, Any]
) -> tuple[dict[str, Any], Contract] | str:
    """``payload``, written under ``version`` of its type, made a payload of the newest version
    (checked against it), with that version; or why it cannot be (no upcaster from one major to
    the next, or the result does not fit the newest version, naming the field)."""
    written, current = book.get(entity_type, version), book.current(entity_type)
    if written is None or current is None:
        return f"contract_version: {entity_type} has no contract version {version}"
    data = dict(payload)
    for major in range(written.major + 1, current.major + 1):
        step = _step_into(book, entity_type, major)
        if step is None:
            return (
                f"{entity_type} v{version} (major {written.major}) was broken by v{current.version} "
                f"(major {current.major}) and no upcaster from major {major - 1} exists"
            )
        data = step.apply(data)
    reason = current.refusal(data)
    if reason is not None:
        return f"upcast from {entity_type} v{version} does not fit: {reason}"
    return data, current
