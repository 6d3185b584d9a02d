"""The device's kernel: the device actions over a vault, with its policy, broker and audit log."""

from __future__ import annotations

import hashlib
import json
import time
from typing import TYPE_CHECKING, Any

from ..kernel import (
    Kernel,
    OfflineRisk,
    PolicyDecision,
    PolicyRequest,
    StoredPolicy,
    assess,
    critical_at,
    decision_key,
)
from ._actions import DEVICE_ACTIONS
from ._db import VaultDB
from ._input_key import VaultInputHash
from ._offline import read_status
from ._policy import VaultPolicies

if TYPE_CHECKING:
    from ._vault import Vault

__all__ = ["device_kernel"]


#: the meta key of the decisions kept across processes, and how many it keeps
_SAVED, _MAX_SAVED = "policy_decisions", 256


class _TenantPolicy:
    """The tenant's policy as this vault holds it now, with its decisions kept in the vault
    (for the version in force) so that a command deciding what an earlier one decided loads
    no policy engine: Cedar is compiled only on a miss. Re-read when a newer policy may have
    arrived (set here, or adopted from the hub at a sync, by this process or another)."""

    def __init__(self, db: VaultDB) -> None:
        self._db = db
        self._epoch: tuple[int, int] | None = None
        self._engine: StoredPolicy | None = None
        self._stamp = ""
        self._saved: dict[str, list[Any]] = {}
        #: this process's decisions, by request (targets as given: they hold no payload)
        self._memo: dict[tuple[Any, ...], PolicyDecision] = {}
        #: when this device's offline risk turns critical (Unix seconds; None: never, it syncs
        #: with no hub): read with the policy, so a decision costs a float comparison
        self._critical_at: float | None = None

    def _offline_critical_at(self) -> float | None:
        with self._db.read():
            if not self._db.meta("hub_url"):
                return None  # a vault that syncs with no hub is never stale
            return critical_at(read_status(self._db))

    def decide(self, request: PolicyRequest) -> PolicyDecision:
        epoch = self._db.epoch()
        if epoch != self._epoch:
            self._load()
            self._epoch = epoch
        if self._critical_at is not None and time.time() > self._critical_at:
            refused = self._offline_refusal(request)
            if refused is not None:
                return refused
        actor = request.actor
        memo_key = (actor.source, actor.device_id, request.action, request.risk, request.targets)
        decision = self._memo.get(memo_key)
        if decision is not None:
            return decision
        key = decision_key(request)
        found = self._saved.get(key)
        if found is not None:
            decision = PolicyDecision(bool(found[0]), found[1], tuple(found[2]), str(found[3]))
        else:
            if self._engine is None:
                self._engine = StoredPolicy(VaultPolicies(self._db))
            decision = self._engine.decide(request)
            self._keep(key, decision)
        if len(self._memo) >= _MAX_SAVED:
            self._memo.clear()
        self._memo[memo_key] = decision
        return decision

    def _offline_refusal(self, request: PolicyRequest) -> PolicyDecision | None:
        """The refusal of an action a device at critical offline risk may not run, or None."""
        risk = assess(read_status(self._db), time.time())
        if risk.level is not OfflineRisk.CRITICAL or risk.permits(request.action, request.risk):
            return None
        return PolicyDecision(
            False,
            policies=("offline-risk",),
            reason=f"this device is at critical offline risk ({'; '.join(risk.reasons)}): it may only "
            f"{' and '.join(risk.allowed)} until it syncs; {risk.hint}",
        )

    def _load(self) -> None:
        self._critical_at = self._offline_critical_at()
        current = VaultPolicies(self._db).current()
        self._stamp = f"{current.version}:{hashlib.sha256(current.text.encode()).hexdigest()}"
        with self._db.read():
            raw = self._db.meta(_SAVED)
        saved = json.loads(raw) if raw else {}
        self._saved = saved.get("decisions", {}) if saved.get("policy") == self._stamp else {}
        self._memo.clear()
        if self._engine is not None:
            self._engine.refresh()

    def _keep(self, key: str, decision: PolicyDecision) -> None:
        self._saved[key] = [decision.allowed, decision.approval, list(decision.policies), decision.reason]
        while len(self._saved) > _MAX_SAVED:
            del self._saved[next(iter(self._saved))]
        text = json.dumps({"policy": self._stamp, "decisions": self._saved})
        with self._db.tx():
            self._db.set_meta(_SAVED, text)


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
        tenant_id=db.tenant,
        hasher=VaultInputHash(db),
    )
