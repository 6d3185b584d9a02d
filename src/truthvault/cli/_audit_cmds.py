"""The audit log's commands: ``hub audit verify`` on the hub's database, and ``audit proof`` and
``audit verify`` on a device, against its hub."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from ..errors import TruthvaultError
from ._common import out, plural, print_json

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
            raise AuditTampered(
                f"tenant {tenants.get(tid, tid)!r}: {exc.message}",
                index=exc.index,
                hint="the hub's database was changed outside truthvault; restore it from a backup",
            ) from None
        _, head_root = store.audit.head(tid)
        done.append((tenants.get(tid, tid), size, head_root.hex()))
    if as_json:
        print_json([{"tenant": name, "entries": size, "root": root} for name, size, root in done])
        return
    for name, size, root in done:
        out.print(f"tenant {name!r}: {plural(size, 'entry', 'entries')} verified, root {root[:16]}")
    if not done:
        out.print("no audit logs yet")


def register(cli: click.Group) -> None:  # pragma: no cover - filled in with the device side
    del cli
    raise TruthvaultError("not yet")
