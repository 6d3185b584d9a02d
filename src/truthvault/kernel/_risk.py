"""Offline risk: the one rule (plan 002, section 7.5) that says how risky a device is from how
long it has been away from its hub, how far behind a breaking contract it writes, and how many
changes it holds unsynced; and what a device at that risk may still do.

| input | medium | high | critical |
|---|---|---|---|
| days since the last sync | > 7 | > 14 | > 30 |
| changes not yet at the hub | > 50 | > 100 | |
| writes under a contract version a newer major version broke | | | any |

What the device may do: at ``critical`` read and capture (create notes and tasks) only; at
``high`` read, capture and draft (writes that decide nothing); else everything. Pure: the hub's
``hub device list --stale`` and the device's kernel both call :func:`assess`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ._contracts import ContractBook
from ._types import Risk

__all__ = [
    "CAPTURE_ACTIONS",
    "DECIDING_ACTIONS",
    "DeviceStatus",
    "OfflineRisk",
    "RiskAssessment",
    "assess",
    "contract_lag",
    "critical_at",
    "permits",
]

DAY_S = 86_400.0
#: days since the last sync above which the risk is medium, high, critical
DAYS_MEDIUM, DAYS_HIGH, DAYS_CRITICAL = 7, 14, 30
#: unsynced changes above which the risk is medium, high
PENDING_MEDIUM, PENDING_HIGH = 50, 100

#: the actions that capture: they create a note or a task, and change nothing already there
CAPTURE_ACTIONS = frozenset({"notes.create", "tasks.create"})
#: writes that decide rather than draft (a high-risk device may not run them)
DECIDING_ACTIONS = frozenset(
    {"suggestion.accept", "suggestion.reject", "conflict.resolve", "entity.upgrade_truth"}
)


class OfflineRisk(enum.StrEnum):
    """How risky a device's writes are, from how long and how far it has been away."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """What the rule looks at of one device."""

    #: when it last synced with its hub (Unix seconds), None: never (then time adds no risk)
    last_sync_at: float | None
    #: changes it holds that the hub does not (queued, parked)
    pending: int = 0
    #: each contract version it writes under that a newer major version broke, said
    #: ("note v1 (major 1) is behind v3 (major 2)"), from :func:`contract_lag`
    behind: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    """A device's risk, why, and what it may still do (``"*"``: everything)."""

    level: OfflineRisk
    reasons: tuple[str, ...]
    allowed: tuple[str, ...]
    days_offline: int | None = None

    @property
    def hint(self) -> str:
        """How to clear the risk."""
        if self.level is OfflineRisk.LOW:
            return ""
        return "sync first ('truthvault sync now'): it pushes what waits, fetches the new contracts and clears the risk"

    def permits(self, action: str, risk: Risk) -> bool:
        """Whether a device at this risk may run ``action`` (of ``risk``)."""
        return permits(self.allowed, action, risk)


def assess(status: DeviceStatus, now: float) -> RiskAssessment:
    """The risk of a device in ``status`` at ``now`` (Unix seconds)."""
    reasons: list[str] = []
    days: int | None = None
    level = OfflineRisk.LOW
    if status.last_sync_at is not None:
        elapsed = max(0.0, now - status.last_sync_at) / DAY_S
        days = int(elapsed)
        for threshold, at in (
            (DAYS_CRITICAL, OfflineRisk.CRITICAL),
            (DAYS_HIGH, OfflineRisk.HIGH),
            (DAYS_MEDIUM, OfflineRisk.MEDIUM),
        ):
            if elapsed > threshold:
                reasons.append(f"offline for {days} days ({at} threshold: {threshold})")
                level = _worse(level, at)
                break
    for said in status.behind:
        reasons.append(f"contract {said}")
        level = OfflineRisk.CRITICAL
    for threshold, at in ((PENDING_HIGH, OfflineRisk.HIGH), (PENDING_MEDIUM, OfflineRisk.MEDIUM)):
        if status.pending > threshold:
            reasons.append(f"{status.pending} unsynced changes ({at} threshold: {threshold})")
            level = _worse(level, at)
            break
    return RiskAssessment(level, tuple(reasons), _ALLOWED[level], days)


_ORDER = list(OfflineRisk)
_ALLOWED: dict[OfflineRisk, tuple[str, ...]] = {
    OfflineRisk.CRITICAL: ("read", "capture"),
    OfflineRisk.HIGH: ("read", "capture", "draft"),
    OfflineRisk.MEDIUM: ("*",),
    OfflineRisk.LOW: ("*",),
}


def _worse(a: OfflineRisk, b: OfflineRisk) -> OfflineRisk:
    return a if _ORDER.index(a) >= _ORDER.index(b) else b


def critical_at(status: DeviceStatus) -> float | None:
    """When a device in ``status`` turns critical if nothing else changes (Unix seconds; 0: it
    is already, being behind a breaking contract; None: never, having never synced). So a
    cached decision costs one comparison with the time."""
    if status.behind:
        return 0.0
    if status.last_sync_at is None:
        return None
    return status.last_sync_at + DAYS_CRITICAL * DAY_S


def permits(allowed: Iterable[str], action: str, risk: Risk) -> bool:
    """Whether ``action`` (of ``risk``) falls in ``allowed`` (read, capture, draft, or ``*``)."""
    kinds = set(allowed)
    if "*" in kinds:
        return True
    if risk is Risk.READ:
        return "read" in kinds
    if action in CAPTURE_ACTIONS:
        return "capture" in kinds
    return "draft" in kinds and risk is Risk.WRITE and action not in DECIDING_ACTIONS


def contract_lag(held: Mapping[str, Iterable[int]], book: ContractBook) -> tuple[str, ...]:
    """Each version of ``held`` (type -> versions written under) that a newer major version of
    its type broke, said; a version the book does not know is left out (it cannot be judged)."""
    said: list[str] = []
    for entity_type in sorted(held):
        current = book.current(entity_type)
        for version in sorted(set(held[entity_type])):
            contract = book.get(entity_type, version)
            if current is not None and contract is not None and contract.major < current.major:
                said.append(
                    f"{entity_type} v{version} (major {contract.major}) is behind "
                    f"v{current.version} (major {current.major})"
                )
    return tuple(said)
