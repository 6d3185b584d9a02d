"""Each device's offline risk as the hub sees it (``truthvault hub device list --stale``): the
kernel's one rule (:func:`truthvault.kernel.assess`) over what the hub knows of the device,
its last sync, the contract versions it writes under and the changes it reported unsynced."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from ..kernel import DeviceStatus, RiskAssessment, assess, contract_lag
from .store import Device, HubStore

__all__ = ["DeviceRisk", "device_risks"]


@dataclass(frozen=True, slots=True)
class DeviceRisk:
    """One device, what it reported at its last sync, and its risk now."""

    device: Device
    risk: RiskAssessment
    #: when the hub last heard from it (its last report or request), None: never
    last_sync_at: str | None
    app_version: str | None = None
    pending: int = 0
    parked: int = 0
    #: entity type -> the contract versions it writes under
    held: dict[str, list[int]] = field(default_factory=dict)


def _seconds(stamp: str | None) -> float | None:
    if not stamp:
        return None
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def device_risks(store: HubStore, tenant_name: str, now: float | None = None) -> list[DeviceRisk]:
    """Every active device of a tenant with its risk at ``now`` (default: the time now),
    riskiest first."""
    tenant = store.get_tenant(tenant_name)
    now = time.time() if now is None else now
    book = store.contracts.book(tenant.id, fresh=True)
    reports = store.contracts.reports(tenant.id)
    held = store.contracts.held_by_device(tenant.id)
    found: list[DeviceRisk] = []
    for device in store.list_devices(tenant_name):
        if device.revoked:
            continue
        report, reported_at = reports.get(device.id, (None, None))
        last = max((s for s in (reported_at, device.last_seen_at) if s), default=None)
        versions = held.get(device.id, {})
        pending = 0 if report is None else report.pending + report.parked
        status = DeviceStatus(_seconds(last), pending, contract_lag(versions, book))
        found.append(
            DeviceRisk(
                device,
                assess(status, now),
                last,
                None if report is None else report.app_version,
                0 if report is None else report.pending,
                0 if report is None else report.parked,
                versions,
            )
        )
    order = ["critical", "high", "medium", "low"]
    found.sort(key=lambda d: (order.index(d.risk.level), d.last_sync_at or "", d.device.name))
    return found
