"""The hub: an ASGI app that relays and mirrors what the devices of each tenant push.

``Hub`` is the library's way in: ``Hub.open(url)``, then ``hub.app()`` or ``hub.serve()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._hub import Hub
from .store import Device, DeviceContext, Event, HubStore, Limits, Tenant, open_store

if TYPE_CHECKING:
    from ._serve import HubServer
    from .app import HubSettings, create_app

__all__ = [
    "Device",
    "DeviceContext",
    "Event",
    "Hub",
    "HubServer",
    "HubSettings",
    "HubStore",
    "Limits",
    "Tenant",
    "create_app",
    "open_store",
]

#: names whose modules load the web framework: imported when first asked for, so that opening
#: a hub's store (an admin command) does not pay for FastAPI
_LAZY = {"HubServer": "._serve", "HubSettings": ".app", "create_app": ".app"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
