"""Offline governance at the command line: each device's offline risk (``hub device list
--stale``) and the items this device parked at a sync (``truthvault parked``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ._common import out, print_json

if TYPE_CHECKING:
    from ..hub import HubStore

__all__ = ["add_offline_commands", "stale_devices"]


def stale_devices(store: HubStore, tenant_name: str, as_json: bool) -> None:
    """Print each active device's offline risk, reasons and what it may still do."""
    from ..hub import device_risks

    found = device_risks(store, tenant_name)
    if as_json:
        print_json(
            [
                {
                    "name": d.device.name,
                    "id": d.device.id,
                    "last_sync_at": d.last_sync_at,
                    "days_offline": d.risk.days_offline,
                    "app_version": d.app_version,
                    "contracts": d.held,
                    "pending": d.pending,
                    "parked": d.parked,
                    "risk": str(d.risk.level),
                    "reasons": list(d.risk.reasons),
                    "allowed": list(d.risk.allowed),
                }
                for d in found
            ]
        )
        return
    from rich.table import Table

    table = Table(header_style="bold")
    for col in ("name", "last sync", "days", "app", "pending", "risk", "reasons", "allowed"):
        table.add_column(col, overflow="fold" if col == "reasons" else "ellipsis")
    for d in found:
        table.add_row(
            d.device.name,
            (d.last_sync_at or "never")[:19],
            "-" if d.risk.days_offline is None else str(d.risk.days_offline),
            d.app_version or "?",
            str(d.pending + d.parked),
            str(d.risk.level),
            "; ".join(d.risk.reasons) or "-",
            ", ".join(d.risk.allowed),
        )
    out.print(table if found else "no active devices")


