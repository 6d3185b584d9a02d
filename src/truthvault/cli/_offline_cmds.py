"""Offline governance at the command line: each device's offline risk (``hub device list
--stale``) and the items this device parked at a sync (``truthvault parked``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ._common import json_option, open_vault, out, print_json, run_action

if TYPE_CHECKING:
    from ..hub import HubStore

__all__ = ["register", "stale_devices"]


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


def register(cli: click.Group) -> None:
    """Add ``parked`` to the top-level group."""

    @cli.group(invoke_without_command=True)
    @json_option
    @click.pass_context
    def parked(ctx: click.Context, as_json: bool) -> None:
        """Items parked at a sync: written under a contract version a newer major version broke.

        A parked item is not pushed and not lost: it stays in this vault as it was written.
        Edit it to fit the new version ('truthvault edit ID ...'), then 'truthvault parked
        apply N'; one that already fits (or that the contracts can upcast) applies as it is.
        """
        if ctx.invoked_subcommand is not None:
            return
        with open_vault() as vault:
            found = vault.offline.parked()
        if as_json:
            import dataclasses

            print_json([dataclasses.asdict(p) for p in found])
            return
        if not found:
            out.print("nothing is parked")
            return
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for column in ("id", "when", "type", "version", "entity", "why"):
            table.add_column(column, overflow="fold" if column == "why" else "ellipsis")
        for p in found:
            table.add_row(str(p.id), p.at[:19], p.entity_type, str(p.contract_version), p.entity_id, p.reason)
        out.print(table)

    @parked.command("apply")
    @click.argument("parked_id", metavar="N", type=click.IntRange(1))
    def parked_apply(parked_id: int) -> None:
        """Bring parked item N back under its type's newest contract; the next sync pushes it."""
        with open_vault() as vault:
            done = run_action(vault, "parked.apply", {"id": parked_id})
        said = done.model_dump()
        if said["outcome"] == "applied":
            out.print(f"applied {said['entity_id']}: queued for the hub under the newest contract")
        else:
            out.print(f"{said['entity_id']} was edited since: the edit goes to the hub; the note is dropped")
