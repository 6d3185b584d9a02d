"""The hub: an ASGI app that relays and mirrors what the devices of each tenant push."""

from __future__ import annotations

from .store import Device, DeviceContext, Event, HubStore, Limits, Tenant, open_store

__all__ = ["Device", "DeviceContext", "Event", "HubStore", "Limits", "Tenant", "open_store"]
