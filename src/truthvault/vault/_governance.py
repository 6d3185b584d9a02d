"""The device's kernel: the device actions over a vault, with its policy, broker and audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..kernel import (
    Kernel,
    PolicyDecision,
    PolicyRequest,
    StoredPolicy,
)
from ._actions import DEVICE_ACTIONS
from ._db import VaultDB
from ._policy import VaultPolicies

if TYPE_CHECKING:
    from ._vault import Vault

__all__ = ["device_kernel"]


class _TenantPolicy:
    """The tenant's policy as this vault holds it now: re-read when a newer version may have
    arrived (set here, or adopted from the hub at a sync, by this process or another)."""

    def __init__(self, db: VaultDB) -> None:
        self._db = db
        self._epoch = db.epoch()
        self._engine = StoredPolicy(VaultPolicies(db))

    def decide(self, request: PolicyRequest) -> PolicyDecision:
        epoch = self._db.epoch()
        if epoch != self._epoch:
            self._engine.refresh()
            self._epoch = epoch
        return self._engine.decide(request)


def device_kernel(vault: Vault, db: VaultDB) -> Kernel[Vault]:
    """The kernel that runs the device actions against ``vault``."""

    def on_event(type: str, entity_id: str | None, detail: dict[str, Any]) -> None:
        db.add_event(type, entity_id, **detail)

    return Kernel(
        DEVICE_ACTIONS,
        vault,
        policy=_TenantPolicy(db),
        broker=vault.broker,
        audit=vault.audit,
        transaction=db.tx,
        clock=db.stamp,
        on_event=on_event,
        tenant_id=lambda: db.meta_str("tenant_id"),
    )
