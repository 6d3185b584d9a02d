"""The hub's kernel: the hub actions over its store for one tenant, with the tenant's policy,
the input broker and the tenant's audit log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..clock import HybridClock
from ..errors import InvalidSource
from ..kernel import Actor, Kernel, ValidationFailed
from ._actions import HUB_ACTIONS, HubScope
from ._audit import HubAuditSink
from .store import DeviceContext, HubStore

__all__ = ["HUB_ADMIN", "device_actor", "hub_kernel", "run_as_admin", "run_for_device"]

#: who acts when the hub's admin runs a command on the hub's own machine
HUB_ADMIN = "user:hub-admin"
#: who a device acts as when its request names no source (a device acts for its user)
DEVICE_SOURCE = "user:device"


def device_actor(ctx: DeviceContext, source: str | None = None) -> Actor:
    """The actor of a device's request: the source it names (its user's, by default); a source
    that names no truth level is VALIDATION_ERROR naming ``source``."""
    try:
        return Actor(source or DEVICE_SOURCE, ctx.device_id, ctx.tenant_id)
    except InvalidSource as exc:
        shown = source if len(source or "") <= 80 else f"{(source or '')[:80]}..."
        raise ValidationFailed(
            f"source: {shown!r} names no truth level", hint=exc.hint, field="source"
        ) from None


def run_for_device(
    store: HubStore,
    clock: HybridClock,
    ctx: DeviceContext,
    name: str,
    params: Mapping[str, object],
    source: str | None = None,
) -> dict[str, Any]:
    """Run hub action ``name`` for the device of ``ctx``, acting for its user (or ``source``);
    its output as plain data."""
    kernel = hub_kernel(store, HubScope(store, ctx.tenant_name, ctx.tenant_id, ctx), clock)
    out: dict[str, Any] = kernel.run(name, params, actor=device_actor(ctx, source)).model_dump(mode="json")
    return out


def run_as_admin(
    store: HubStore, tenant_name: str, name: str, params: Mapping[str, object]
) -> dict[str, Any]:
    """Run hub action ``name`` for tenant ``tenant_name`` as the hub's admin (a command on the
    hub's own machine, with no device); its output as plain data."""
    tenant = store.get_tenant(tenant_name)
    kernel = hub_kernel(store, HubScope(store, tenant.name, tenant_id=tenant.id), HybridClock())
    out: dict[str, Any] = kernel.run(name, params, actor=Actor(HUB_ADMIN, "", tenant.id)).model_dump(
        mode="json"
    )
    return out


def hub_kernel(store: HubStore, scope: HubScope, clock: HybridClock) -> Kernel[HubScope]:
    """The kernel that runs the hub actions for ``scope``'s tenant."""
    return Kernel(
        HUB_ACTIONS,
        scope,
        policy=store.policy_engine(scope.tenant_id),
        broker=store.broker.broker(scope.tenant_id),
        audit=HubAuditSink(store.audit_queue),
        transaction=store.transaction,
        clock=clock.now,
    )
