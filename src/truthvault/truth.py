"""The truth hierarchy: levels, origin sources, the resolution key and the upgrade rule.

Pure code, no I/O. The hub and every device call :func:`resolve` with the same inputs
and so reach the same answer; that is what makes all replicas converge.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .errors import InvalidSource

__all__ = [
    "ACCEPTED_SOURCE",
    "Outcome",
    "Resolution",
    "TruthLevel",
    "VersionLike",
    "authority",
    "check_acceptance",
    "check_source",
    "implied_level",
    "is_higher_truth",
    "level_of_source",
    "origin_step",
    "parse_source",
    "record_id",
    "resolution_key",
    "resolve",
    "upgraded_level",
]


class TruthLevel(enum.IntEnum):
    """Who wrote a thing; a lower number carries more authority."""

    USER = 1
    AUTOMATION = 2
    AI_LOCAL = 3
    AI_LAN = 4
    AI_CLOUD = 5

    @property
    def short(self) -> str:
        return _SHORT[self]

    @property
    def prefix(self) -> str:
        return _PREFIX[self]


_SHORT = {
    TruthLevel.USER: "U1",
    TruthLevel.AUTOMATION: "A2",
    TruthLevel.AI_LOCAL: "L3",
    TruthLevel.AI_LAN: "LN4",
    TruthLevel.AI_CLOUD: "C5",
}
_PREFIX = {
    TruthLevel.USER: "user",
    TruthLevel.AUTOMATION: "automation",
    TruthLevel.AI_LOCAL: "ai-local",
    TruthLevel.AI_LAN: "ai-lan",
    TruthLevel.AI_CLOUD: "ai-cloud",
}
_LEVEL_OF_PREFIX = {prefix: level for level, prefix in _PREFIX.items()}
# \Z, not $: "$" would also match before a trailing newline.
_SOURCE_RE = re.compile(r"\A([a-z][a-z-]*):([A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127})\Z")

#: The origin_source given to an item that arrives with ``accepted_by_user`` set but a
#: lower level: the user accepted it somewhere we cannot name, so it is user truth now.
ACCEPTED_SOURCE = "user:accepted"


def parse_source(source: str) -> tuple[TruthLevel, str]:
    """Split ``prefix:detail`` into its level and detail, or raise InvalidSource."""
    match = _SOURCE_RE.match(source) if isinstance(source, str) else None
    if match is None:
        raise InvalidSource(
            f"origin_source {source!r} is not of the form <kind>:<name>",
            hint="kinds: user, automation, ai-local, ai-lan, ai-cloud (e.g. user:cli, ai-cloud:openai/gpt-4o)",
        )
    prefix, detail = match.groups()
    level = _LEVEL_OF_PREFIX.get(prefix)
    if level is None:
        raise InvalidSource(
            f"origin_source {source!r} has unknown kind {prefix!r}",
            hint="kinds: user, automation, ai-local, ai-lan, ai-cloud",
        )
    return level, detail


_known_sources: dict[str, TruthLevel] = {}


def level_of_source(source: str) -> TruthLevel:
    """The truth level an origin source implies (InvalidSource if it names none); remembered:
    sources repeat constantly, so each is parsed once."""
    implied = _known_sources.get(source) if isinstance(source, str) else None
    if implied is None:
        implied = parse_source(source)[0]
        if len(_known_sources) < 4096:
            _known_sources[source] = implied
    return implied


#: the same (an earlier name, kept for its callers)
implied_level = level_of_source


def check_source(source: str, level: int) -> TruthLevel:
    """Validate that ``source`` implies ``level``; return the level."""
    implied = implied_level(source)
    if int(level) != implied:
        raise InvalidSource(
            f"origin_source {source!r} is level {int(implied)} ({implied.short}) but truth_level says {level}"
        )
    return implied


def check_acceptance(level: int, accepted_by_user: bool, chain_levels: Sequence[int]) -> None:
    """InvalidSource unless a claim of the user's acceptance is backed by the user.

    Acceptance is a user act: content below level 1 may say ``accepted_by_user`` only when the
    last step of its origin chain is a level-1 source (the user who accepted it). Content a user
    source wrote (level 1) is the user's already. Without this, any writer could pass its text
    off as the user's by setting one flag.
    """
    if (
        accepted_by_user
        and int(level) != TruthLevel.USER
        and (not chain_levels or int(chain_levels[-1]) != TruthLevel.USER)
    ):
        raise InvalidSource(
            f"accepted_by_user: a level-{int(level)} version may claim the user's acceptance only when "
            "the last step of its origin_chain is a level-1 (user) source",
            hint="acceptance is the user's act: accept the suggestion, or edit it as a user source",
        )


def authority(level: int) -> int:
    """6 - level: U1 has authority 5, C5 has authority 1."""
    return 6 - int(level)


def is_higher_truth(a: int, b: int) -> bool:
    """True when level ``a`` carries more authority than level ``b``."""
    return int(a) < int(b)


def upgraded_level(level: int, accepted_by_user: bool) -> int:
    """The upgrade rule at sync time: anything the user accepted is level 1."""
    return int(TruthLevel.USER) if accepted_by_user else int(level)


def origin_step(level: int, source: str, at: str, ref: str | None = None) -> dict[str, object]:
    """One entry of an origin chain."""
    return {"level": int(level), "source": source, "at": at, "ref": ref}


def resolution_key(level: int, clock: str, device_id: str) -> tuple[int, str, str]:
    """The total order of DESIGN.md: (authority, clock, device_id); the greater wins."""
    return (authority(level), clock, device_id)


def record_id(entity_id: str, clock: str, device_id: str) -> str:
    """The id of the suggestion or conflict record that keeps one losing version.

    Deterministic, so the hub and every device that derive the same record agree on it.
    """
    return str(uuid.uuid5(_RECORD_NS, f"{entity_id}\x1f{clock}\x1f{device_id}"))


_RECORD_NS = uuid.UUID("6f0c1d52-7a53-4d0e-9a53-1f6b1f7f0a11")


class VersionLike(Protocol):
    """What :func:`resolve` needs to know of a version of an entity."""

    @property
    def truth_level(self) -> int: ...
    @property
    def last_modified_at(self) -> str: ...
    @property
    def device_id(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def base_version(self) -> int: ...
    @property
    def base_clock(self) -> str | None: ...
    @property
    def deleted(self) -> bool: ...


class Outcome(enum.StrEnum):
    """What became of an incoming version."""

    APPLIED = "applied"  # it is now the current version
    SUGGESTION = "suggestion"  # it lost and is kept as a suggestion (lower level)
    CONFLICT = "conflict"  # it lost a U1-vs-U1 race and is kept as a conflict record
    SUPERSEDED = "superseded"  # it lost, and its successor is already current: nothing to keep
    DUPLICATE = "duplicate"  # this very version is already current


@dataclass(frozen=True, slots=True)
class Resolution:
    """The outcome for the incoming version and, when it won, what to keep of the old one.

    ``loser`` is ``None`` (nothing to keep), ``"suggestion"`` or ``"conflict"``.
    """

    outcome: Outcome
    loser: str | None = None

    @property
    def conflict(self) -> bool:
        """True when a U1-vs-U1 conflict was detected (either side lost)."""
        return self.outcome is Outcome.CONFLICT or self.loser == "conflict"


_APPLIED = Resolution(Outcome.APPLIED)
_APPLIED_SUGGESTION = Resolution(Outcome.APPLIED, "suggestion")
_APPLIED_CONFLICT = Resolution(Outcome.APPLIED, "conflict")
_SUGGESTION = Resolution(Outcome.SUGGESTION)
_CONFLICT = Resolution(Outcome.CONFLICT)
_SUPERSEDED = Resolution(Outcome.SUPERSEDED)
_DUPLICATE = Resolution(Outcome.DUPLICATE)


def _builds_on(newer: VersionLike, older: VersionLike) -> bool:
    """True when ``newer`` was written by someone who had ``older`` in hand.

    Either it names ``older`` as its base, or both come from one device: a device's
    hybrid clock is monotonic and it always holds its own writes.
    """
    if newer.device_id == older.device_id:
        return newer.last_modified_at > older.last_modified_at
    return newer.base_clock == older.last_modified_at and newer.base_version == older.version


def resolve(current: VersionLike | None, incoming: VersionLike) -> Resolution:
    """Decide between the current version of an entity and an incoming one.

    Both must already have the upgrade rule applied (``accepted_by_user`` means level 1).
    The winner is the greater by :func:`resolution_key`; deletes follow the same key.
    The loser is never dropped unless its successor is the winner:

    - incoming wins: the old version is kept as a suggestion if it was below level 1,
      as a conflict record if it was level 1 (a U1-vs-U1 race), or not at all when the
      incoming version builds on it (an ordinary edit);
    - incoming loses: it is kept as a suggestion if below level 1, as a conflict if
      level 1, or dropped as superseded when the current version builds on it.

    A tombstone that loses to or beats another tombstone keeps nothing: both say "gone".
    """
    if current is None:
        return _APPLIED
    inc_key = resolution_key(incoming.truth_level, incoming.last_modified_at, incoming.device_id)
    cur_key = resolution_key(current.truth_level, current.last_modified_at, current.device_id)
    if inc_key == cur_key:
        return _DUPLICATE
    if inc_key > cur_key:
        if _builds_on(incoming, current) or (incoming.deleted and current.deleted):
            return _APPLIED
        if current.truth_level == TruthLevel.USER:
            return _APPLIED_CONFLICT
        return _APPLIED_SUGGESTION
    if _builds_on(current, incoming) or (incoming.deleted and current.deleted):
        return _SUPERSEDED
    if incoming.truth_level == TruthLevel.USER:
        return _CONFLICT
    return _SUGGESTION
