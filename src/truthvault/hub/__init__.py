"""The hub: an ASGI app that relays and mirrors what the devices of each tenant push.

``Hub`` is the library's way in: ``Hub.open(url)``, then ``hub.app()`` or ``hub.serve()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names as _lazy_names
from ._hub import Hub
from .store import Device, DeviceContext, Event, HubStore, Limits, Tenant, open_store

if TYPE_CHECKING:
    from ._actions import HUB_ACTIONS, HubScope
    from ._contracts import DeviceReport
    from ._device_risk import DeviceRisk, device_risks
    from ._dlq_actions import decide_dead_letter
    from ._governance import hub_kernel, run_as_admin
    from ._serve import HubServer
    from ._workflows import hub_engine, provision_tenant, run_workflows
    from .app import HubSettings, create_app

__all__ = [
    "HUB_ACTIONS",
    "Device",
    "DeviceContext",
    "DeviceReport",
    "DeviceRisk",
    "Event",
    "Hub",
    "HubScope",
    "HubServer",
    "HubSettings",
    "HubStore",
    "Limits",
    "Tenant",
    "create_app",
    "decide_dead_letter",
    "device_risks",
    "hub_engine",
    "hub_kernel",
    "open_store",
    "provision_tenant",
    "run_as_admin",
    "run_workflows",
]

#: names whose modules load the web framework: imported when first asked for, so that opening
#: a hub's store (an admin command) does not pay for FastAPI
_LAZY = {
    "HubServer": "._serve",
    "HubSettings": ".app",
    "create_app": ".app",
    # the kernel's actions load pydantic
    "HUB_ACTIONS": "._actions",
    "HubScope": "._actions",
    "decide_dead_letter": "._dlq_actions",
    "hub_kernel": "._governance",
    "run_as_admin": "._governance",
    # sagas load DBOS only when an engine launches
    "hub_engine": "._workflows",
    "provision_tenant": "._workflows",
    "run_workflows": "._workflows",
    "DeviceReport": "._contracts",
    "DeviceRisk": "._device_risk",
    "device_risks": "._device_risk",
}


__getattr__, __dir__ = _lazy_names(__name__, _LAZY, __all__)
