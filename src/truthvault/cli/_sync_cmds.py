"""Commands that join a vault to a hub and sync it: init, sync, conflicts."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from ..errors import DecryptionFailed, HubUnavailable, InvalidInput, SyncIncomplete
from ._common import (
    err_console,
    home_dir,
    json_option,
    open_vault,
    out,
    pin_hub,
    pin_option,
    plural,
    print_json,
    record_action,
    record_table,
)
from ._progress import progress_bar

if TYPE_CHECKING:  # the sync client (httpx and all) is imported by the commands that sync
    from ..sync import SyncStats
    from ..vault import Vault

__all__ = ["register"]


def _read_token(token: str | None) -> str | None:
    """The token from --token, '-' (stdin) or $TRUTHVAULT_TOKEN, so it need not sit in argv."""
    if token == "-":
        token = sys.stdin.readline().strip()
    token = token or os.environ.get("TRUTHVAULT_TOKEN")
    return token or None


_RESYNCED = {
    "purged": "re-synced from scratch: the hub had purged deletions older than this device's cursor",
    "reset": "the hub had lost changes (restored from a backup?): re-synced and sent it what it lacked",
    "asked": "re-synced from scratch",
}


def _print_stats(stats: SyncStats, as_json: bool) -> None:
    if as_json:
        import dataclasses

        import msgspec

        print_json(
            {
                "pushed": stats.pushed,
                "outcomes": stats.push_outcomes or {},
                "pulled": stats.pulled,
                "applied": stats.applied,
                "records": stats.records,
                "new_records": stats.new_records,
                "cursor": stats.cursor,
                "resynced": stats.resynced,
                "resync_reason": stats.resync_reason,
                "checksum": stats.checksum,
                "records_checksum": stats.records_checksum,
                "refused_pushes": [{"entity_id": e, "reason": r} for e, r in stats.refused_pushes],
                "parked": [{"entity_id": e, "reason": r} for e, r in stats.parked],
                "upcast": stats.upcast,
                "refused_pulls": [msgspec.structs.asdict(r) for r in stats.refused_pulls],
                "overruled": [dataclasses.asdict(o) for o in stats.overruled],
                "diverged": stats.diverged,
                "approvals": None if stats.approvals is None else dataclasses.asdict(stats.approvals),
            }
        )
        return
    parts = []
    if stats.push_outcomes is not None:
        detail = ", ".join(f"{n} {k}" for k, n in sorted(stats.push_outcomes.items()))
        parts.append(f"pushed {stats.pushed:,}" + (f" ({detail})" if detail else ""))
    # what was new here: the hub also sends back what this device itself pushed
    parts.append(
        f"pulled {plural(stats.applied, 'new change')} and {plural(stats.new_records, 'new suggestion or conflict', 'new suggestions or conflicts')}"
    )
    if stats.upcast:
        parts.append(f"upcast {plural(len(stats.upcast), 'item')} to the newest version of its contract")
    if stats.resync_reason:
        parts.append(_RESYNCED[stats.resync_reason])
    out.print("; ".join(parts) + f"; cursor {stats.cursor}")
    for overruled in stats.overruled:
        err_console.print(f"note: {overruled.describe()}", markup=False)


def _some(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _check_unreadable(stats: SyncStats) -> None:
    """One error line (exit 1) for what synced only in part, or a state that differs from the
    hub's; everything else was applied."""
    bad = stats.unreadable
    if bad:
        raise DecryptionFailed(
            f"{plural(len(bad), 'pulled item')} could not be decrypted and were kept out of the vault, "
            f"as dead letters: {_some([u.describe() for u in bad])}",
            hint="everything else synced; 'truthvault dlq list --kind event' shows them, and "
            "'truthvault dlq retry ID' applies one once its key is here",
            reason=bad[0].reason,
        )
    if stats.refused_pushes:
        raise SyncIncomplete(
            f"the hub refused {plural(len(stats.refused_pushes), 'item')}, kept here out of the push queue: "
            f"{_some([f'{eid} ({why})' for eid, why in stats.refused_pushes])}",
            hint="everything else was pushed; see 'truthvault sync rejected'",
        )
    if stats.parked:
        raise SyncIncomplete(
            f"{plural(len(stats.parked), 'item')} written under a contract version a newer major version "
            f"broke {'was' if len(stats.parked) == 1 else 'were'} parked here, not pushed: "
            f"{_some([f'{eid} ({why})' for eid, why in stats.parked])}",
            hint="everything else synced; 'truthvault parked' lists them: edit each to fit, then "
            "'truthvault parked apply N'",
        )
    if stats.refused_pulls:
        raise SyncIncomplete(
            f"{plural(len(stats.refused_pulls), 'pulled item')} could not be taken in and were kept aside: "
            f"{_some([f'{r.entity_id} ({r.reason})' for r in stats.refused_pulls])}",
            hint="everything else was applied; see 'truthvault sync rejected'",
        )
    if stats.diverged == ["policy"]:
        raise SyncIncomplete(
            "this device's policy differs from the hub's after the sync: it cannot read the hub's "
            "newest version and decides with the one it holds",
            hint="'truthvault policy show' shows the version in force here; a newer truthvault reads it",
        )
    if stats.diverged:
        raise SyncIncomplete(
            f"this device's {' and '.join(stats.diverged)} differ from the hub's after the sync",
            hint="'truthvault sync check' compares them; 'truthvault sync rejected' and 'truthvault "
            "parked' list what was kept aside; 'truthvault sync resync' pulls the hub's state again",
        )


def register(cli: click.Group) -> None:
    """Add init, sync and conflicts to the top-level group."""

    @cli.command()
    @click.option("--hub", "hub_url", help="The hub's URL, e.g. http://127.0.0.1:8787.")
    @click.option("--tenant", help="The tenant this device belongs to (checked against the token).")
    @click.option(
        "--token",
        help="The device token from 'truthvault hub device add' ('-' reads stdin; or set TRUTHVAULT_TOKEN).",
    )
    @pin_option
    def init(hub_url: str | None, tenant: str | None, token: str | None, pin: str | None) -> None:
        """Create the local vault; with --hub, join it to a hub."""
        token = _read_token(token)
        if hub_url:
            from ..sync import check_hub_url

            hub_url = check_hub_url(hub_url)
        if pin and not hub_url:
            raise InvalidInput("--pin needs --hub")
        if hub_url and not token:
            raise InvalidInput("--hub needs --token (or TRUTHVAULT_TOKEN)")
        if (tenant or token) and not hub_url:
            raise InvalidInput("--tenant and --token need --hub")
        existed = (home_dir() / "vault.db").exists()
        with open_vault(create=True) as vault:
            if not existed:
                out.print(f"created a vault at {home_dir()} (device {vault.device_id})")
            if not hub_url:
                if existed:
                    out.print(f"a vault already exists at {home_dir()}")
                return
            from ..sync import join_with_token

            cert = pin_hub(hub_url, pin)
            joined = join_with_token(vault, hub_url, token or "", tenant=tenant, cert_pem=cert)
            out.print(
                f"joined hub {hub_url} as device {joined.device_name!r} of tenant "
                f"{joined.tenant_name!r} ({joined.vault_mode}); run 'truthvault sync now'"
            )

    @cli.group()
    def sync() -> None:
        """Sync this vault with its hub."""

    @sync.command("push")
    @json_option
    def sync_push(as_json: bool) -> None:
        """Push queued local changes to the hub."""
        from ..sync import connect, syncer_for

        with open_vault() as vault, connect(vault) as client, progress_bar("pushing") as bar:
            stats = syncer_for(vault, client).push(bar)
        _print_stats(stats, as_json)
        _check_unreadable(stats)

    @sync.command("pull")
    @click.option(
        "--wait", type=click.FloatRange(0, 60), default=0, help="Wait up to this many seconds for a change."
    )
    @json_option
    def sync_pull(wait: float, as_json: bool) -> None:
        """Pull the hub's changes since the last pull."""
        from ..sync import connect, syncer_for

        with open_vault() as vault, connect(vault) as client, progress_bar("pulling") as bar:
            stats = syncer_for(vault, client).pull(bar, wait=wait)
        _print_stats(stats, as_json)
        _check_unreadable(stats)

    @sync.command("now")
    @json_option
    def sync_now(as_json: bool) -> None:
        """Push, then pull."""
        from ..sync import connect, syncer_for

        with open_vault() as vault, connect(vault) as client, progress_bar("syncing") as bar:
            stats = syncer_for(vault, client).sync(bar)
        _print_stats(stats, as_json)
        _check_unreadable(stats)

    @sync.command("check")
    @json_option
    def sync_check(as_json: bool) -> None:
        """Compare this vault's state checksum with the hub's (exit 1 if they differ)."""
        from ..sync import connect, syncer_for

        with open_vault() as vault, connect(vault) as client:
            result = syncer_for(vault, client).check()
        if as_json:
            print_json(
                {
                    "local": result.local,
                    "hub": result.hub,
                    "local_records": result.local_records,
                    "hub_records": result.hub_records,
                    "cursor": result.cursor,
                    "pending": result.pending,
                    "refused": result.refused,
                    "in_sync": result.in_sync,
                    "differs": result.differs,
                }
            )
        elif result.in_sync:
            out.print(
                f"in sync at cursor {result.cursor} (entities {result.local}, records {result.local_records})"
            )
        elif result.pending:
            out.print(
                f"{plural(result.pending, 'local change')} not pushed yet; run 'truthvault sync now' first"
            )
        else:
            sides = {
                "entities": f"entities local {result.local}, hub {result.hub}",
                "records": f"records local {result.local_records}, hub {result.hub_records}",
            }
            aside = (
                f"; {plural(result.refused, 'item')} kept aside ('truthvault sync rejected')"
                if result.refused
                else ""
            )
            out.print(
                f"DIVERGED at cursor {result.cursor}: {'; '.join(sides[d] for d in result.differs)}{aside}; "
                "re-sync with 'truthvault sync resync'"
            )
        if not result.in_sync:
            raise SystemExit(1)

    @sync.command("resync")
    @json_option
    def sync_resync(as_json: bool) -> None:
        """Re-sync from scratch: pull the hub's whole state again."""
        from ..sync import connect, syncer_for

        with open_vault() as vault, connect(vault) as client, progress_bar("re-syncing") as bar:
            syncer = syncer_for(vault, client)
            stats = syncer.resync(bar)
            stats.resync_reason = "asked"
            syncer.push(bar, stats)
        _print_stats(stats, as_json)
        _check_unreadable(stats)

    @sync.group("rejected", invoke_without_command=True)
    @json_option
    @click.pass_context
    def sync_rejected(ctx: click.Context, as_json: bool) -> None:
        """Items kept aside: refused by the hub when pushed, or by this device when pulled.

        One bad item never stops a sync: it is kept here, out of the way, and listed here.
        'retry' queues a refused push again (after you fixed it, or the hub's limits changed);
        'forget' drops the note of a refusal (the vault's data is not touched).
        """
        if ctx.invoked_subcommand is not None:
            return
        with open_vault() as vault:
            found = vault.replica.refusals()
        if as_json:
            import dataclasses

            print_json([dataclasses.asdict(r) for r in found])
            return
        if not found:
            out.print("nothing was refused")
            return
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for column in ("id", "when", "refused by", "kind", "entity", "why"):
            table.add_column(column, overflow="fold" if column == "why" else "ellipsis")
        for r in found:
            by = "the hub (push)" if r.direction == "push" else "this device (pull)"
            table.add_row(str(r.id), r.at[:19], by, r.kind, r.entity_id or "?", r.reason)
        out.print(table)

    def _refusal_ids(vault: Vault, ids: tuple[int, ...], every: bool, direction: str | None) -> list[int]:
        if every:
            return [r.id for r in vault.replica.refusals(direction)]
        if not ids:
            raise InvalidInput("name the refusals (ids from 'truthvault sync rejected') or pass --all")
        return list(ids)

    @sync_rejected.command("retry")
    @click.argument("ids", nargs=-1, type=int)
    @click.option("--all", "every", is_flag=True, help="Every refused push.")
    def sync_rejected_retry(ids: tuple[int, ...], every: bool) -> None:
        """Queue refused pushes again; the next sync sends them."""
        with open_vault() as vault:
            chosen = _refusal_ids(vault, ids, every, "push")
            queued = sum(vault.replica.retry_refused(rid) for rid in chosen)
        out.print(
            f"queued {plural(queued, 'item')} again"
            + (
                f"; {plural(len(chosen) - queued, 'other')} changed since and went as they are"
                if len(chosen) > queued
                else ""
            )
        )

    @sync_rejected.command("forget")
    @click.argument("ids", nargs=-1, type=int)
    @click.option("--all", "every", is_flag=True, help="Every refusal.")
    def sync_rejected_forget(ids: tuple[int, ...], every: bool) -> None:
        """Drop the note of refusals (what the vault holds stays as it is)."""
        with open_vault() as vault:
            chosen = _refusal_ids(vault, ids, every, None)
            for rid in chosen:
                vault.replica.forget_refused(rid)
        out.print(f"forgot {plural(len(chosen), 'refusal')}")

    @sync.command("status")
    @json_option
    def sync_status(as_json: bool) -> None:
        """Where this vault syncs to and what is queued."""
        with open_vault() as vault:
            status = {
                "home": str(home_dir()),
                "device_id": vault.device_id,
                "tenant_id": vault.tenant_id,
                "hub": vault.replica.hub_url,
                "cursor": vault.replica.cursor,
                "pending": vault.replica.pending_count(),
            }
        if as_json:
            print_json(status)
        else:
            for key, value in status.items():
                out.print(f"{key:>10}: {value if value is not None else '-'}")

    @cli.group(invoke_without_command=True)
    @click.option(
        "--status", type=click.Choice(["open", "resolved", "all"]), default="open", show_default=True
    )
    @json_option
    @click.pass_context
    def conflicts(ctx: click.Context, status: str, as_json: bool) -> None:
        """U1-vs-U1 conflicts: the losing user version is kept here until you decide."""
        if ctx.invoked_subcommand is not None:
            return
        with open_vault() as vault:
            found = vault.records(kind="conflict", status=None if status == "all" else status)
        if as_json:
            print_json(found)
        elif found:
            out.print(record_table(found))
        else:
            out.print("no conflicts")

    @conflicts.command("resolve")
    @click.argument("conflict_id")
    @click.option("--keep", is_flag=True, help="Keep the current version (the default).")
    @click.option("--restore", is_flag=True, help="Bring the losing version back as the current one.")
    @json_option
    def conflicts_resolve(conflict_id: str, keep: bool, restore: bool, as_json: bool) -> None:
        """Close a conflict: keep the current version or restore the one that lost.

        The decision is made here at once and reaches the hub now if it can be reached,
        otherwise on the next sync.
        """
        if keep and restore:
            raise InvalidInput("--keep and --restore exclude each other: give one")
        resolution = "restore" if restore else "keep"
        with open_vault() as vault:
            from ..sync import connect, syncer_for

            params = {"id": conflict_id, "resolution": resolution}
            record = record_action(vault, "conflict.resolve", params)
            synced, overruled = False, None
            if vault.replica.hub_url:
                try:
                    with connect(vault) as client:
                        stats = syncer_for(vault, client).sync()
                    synced = True
                    overruled = next((o for o in stats.overruled if o.record_id == record.id), None)
                except HubUnavailable as exc:
                    err_console.print(f"note: {exc.message}; the decision goes to the hub on the next sync")
            if overruled is not None:
                record = vault.get_record(record.id)
            if as_json:
                print_json({"record": record, "synced": synced, "overruled": overruled is not None})
                return
            if overruled is not None:
                # another device decided first; its decision stands everywhere
                out.print(f"conflict {overruled.describe()}")
                return
            done = "restored the losing version" if resolution == "restore" else "kept the current version"
            out.print(f"conflict {record.id} on {record.entity_id} resolved: {done}")
