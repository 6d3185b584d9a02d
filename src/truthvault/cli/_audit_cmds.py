"""The audit log's commands: ``hub audit verify`` on the hub's database, and ``audit proof`` and
``audit verify`` on a device, against its hub."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ._common import json_option, open_vault, out, plural, print_json

if TYPE_CHECKING:
    from ..hub import HubStore

__all__ = ["hub_verify", "register"]


def hub_verify(store: HubStore, tenant_name: str | None, as_json: bool) -> None:
    """``hub audit verify``: check every entry, node and head of the tenants' logs."""
    from ..kernel import AuditTampered

    tenants = {t.id: t.name for t in store.list_tenants()}
    ids = [store.get_tenant(tenant_name).id] if tenant_name else store.audit.tenant_ids()
    done: list[tuple[str, int, str]] = []
    for tid in ids:
        try:
            size = store.audit.verify(tid)
        except AuditTampered as exc:
            # kept for /diagz: when the logs were last checked, and how that went
            store.admin.record_verification(
                False, len(done) + 1, sum(n for _, n, _ in done),
                {"tenant": tenants.get(tid, tid), "error": exc.message, "index": exc.index},
            )  # fmt: skip
            raise AuditTampered(
                f"tenant {tenants.get(tid, tid)!r}: {exc.message}",
                index=exc.index,
                hint="the hub's database was changed outside truthvault; restore it from a backup",
            ) from None
        _, head_root = store.audit.head(tid)
        done.append((tenants.get(tid, tid), size, head_root.hex()))
    store.admin.record_verification(
        True, len(done), sum(n for _, n, _ in done), {"tenants": {name: n for name, n, _ in done}}
    )
    if as_json:
        print_json([{"tenant": name, "entries": size, "root": root} for name, size, root in done])
        return
    for name, size, root in done:
        out.print(f"tenant {name!r}: {plural(size, 'entry', 'entries')} verified, root {root[:16]}")
    if not done:
        out.print("no audit logs yet")


def register(cli: click.Group) -> None:
    """Add the audit group (a device's view of its tenant's audit log at the hub)."""

    @cli.group()
    def audit() -> None:
        """The tenant's tamper-evident audit log at the hub, checked from this device."""

    @audit.command("proof")
    @click.argument("entry", type=click.IntRange(0))
    @json_option
    def proof(entry: int, as_json: bool) -> None:
        """Fetch entry ENTRY (its index) with its inclusion proof and verify it here."""
        from ..sync import AuditStep, connect, device_keys

        with open_vault() as vault, connect(vault) as client:
            result = AuditStep(vault, client, device_keys(vault)).proof(entry)
        cp = result.checkpoint
        if as_json:
            print_json({"index": result.index, "entry": result.entry, "proof": result.proof,
                        "checkpoint": {"size": cp.size, "root": cp.root, "at": cp.at, "key": cp.key}})  # fmt: skip
            return
        e = result.entry
        who = f"{e['source']} on {e['device'][:8] or 'the hub'}"
        targets = ", ".join(f"{t[0]} v{t[1]}" for t in e["targets"]) or "-"
        out.print(
            f"entry {result.index}: {e['action']} {e['action_version']} by {who}: {e['decision']} at {e['at']}"
        )
        out.print(f"targets: {targets}")
        out.print(f"inclusion proof ({plural(len(result.proof), 'hash', 'hashes')}):")
        for h in result.proof:
            out.print(f"  {h}")
        out.print(f"verified against the hub's signed checkpoint: size {cp.size}, root {cp.root}")

    @audit.command("verify")
    @click.option("--full", is_flag=True, help="Re-hash every entry, not only those since the last check.")
    @json_option
    def verify(full: bool, as_json: bool) -> None:
        """Re-hash the log's entries against the hub's signed checkpoint (which must extend the
        one this device kept), from where the last check got to, or all with --full."""
        from ..sync import AuditStep, connect, device_keys

        with open_vault() as vault, connect(vault) as client:
            checked, start, cp = AuditStep(vault, client, device_keys(vault)).verify(full=full)
        if as_json:
            print_json({"checked": checked, "from": start, "size": cp.size, "root": cp.root})
            return
        out.print(
            f"audit log verified: {plural(checked, 'entry', 'entries')} checked from {start}; "
            f"size {cp.size}, root {cp.root[:16]}"
        )
