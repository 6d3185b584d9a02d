"""Commands that join a vault to a hub and sync it: init, sync, conflicts."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from ..errors import ConflictState, DecryptionFailed, HubUnavailable, InvalidInput
from ..sync import Syncer, SyncStats, check_hub_url
from ._common import (
    err_console,
    home_dir,
    hub_client,
    json_option,
    open_vault,
    out,
    pin_hub,
    pin_option,
    print_json,
    record_table,
)
from ._progress import progress_bar

__all__ = ["register"]


def _read_token(token: str | None) -> str | None:
    """The token from --token, '-' (stdin) or $TRUTHVAULT_TOKEN, so it need not sit in argv."""
    if token == "-":
        token = sys.stdin.readline().strip()
    token = token or os.environ.get("TRUTHVAULT_TOKEN")
    return token or None


def _print_stats(stats: SyncStats, as_json: bool) -> None:
    if as_json:
        print_json(
            {
                "pushed": stats.pushed,
                "outcomes": stats.push_outcomes or {},
                "pulled": stats.pulled,
                "records": stats.records,
                "cursor": stats.cursor,
                "resynced": stats.resynced,
                "checksum": stats.checksum,
            }
        )
        return
    parts = []
    if stats.push_outcomes is not None:
        detail = ", ".join(f"{n} {k}" for k, n in sorted(stats.push_outcomes.items()))
        parts.append(f"pushed {stats.pushed}" + (f" ({detail})" if detail else ""))
    parts.append(f"pulled {stats.pulled} changes and {stats.records} suggestions/conflicts")
    if stats.resynced:
        parts.append("re-synced from scratch (the hub had purged old tombstones)")
    out.print("; ".join(parts) + f"; cursor {stats.cursor}")


def make_syncer(vault: Any, client: Any) -> Syncer:
    """A Syncer for this vault, with the device's keys when it is enrolled (to open wrapped keys)."""
    keys = None
    if vault.key_path:
        from ..crypto import DeviceKeys

        keys = DeviceKeys.load(vault.key_path)
    return Syncer(vault, client, device_keys=keys)


def _check_unreadable(stats: SyncStats) -> None:
    """One error line (exit 1) when pulled payloads did not decrypt; the rest was applied."""
    bad = stats.unreadable
    if bad:
        named = ", ".join(u.describe() for u in bad[:5]) + (
            f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        )
        raise DecryptionFailed(
            f"{len(bad)} pulled item(s) could not be decrypted and were kept out of the vault: {named}",
            hint="everything else synced; see 'truthvault events' (DECRYPTION_FAILED)",
            reason=bad[0].reason,
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
            from ..sync import HubClient

            cert = pin_hub(hub_url, pin)
            with HubClient(hub_url, token or "", cert_pem=cert) as client:
                me = client.whoami()
            if tenant and tenant != me["tenant_name"]:
                raise ConflictState(f"this token belongs to tenant {me['tenant_name']!r}, not {tenant!r}")
            vault.join(
                hub_url=hub_url,
                token=token,
                tenant_id=me["tenant_id"],
                tenant_name=me["tenant_name"],
                device_id=me["device_id"],
                vault_mode=me["vault_mode"],
                hub_cert=cert,
            )
            out.print(
                f"joined hub {hub_url} as device {me['device_name']!r} of tenant "
                f"{me['tenant_name']!r} ({me['vault_mode']}); run 'truthvault sync now'"
            )

    @cli.group()
    def sync() -> None:
        """Sync this vault with its hub."""

    @sync.command("push")
    @json_option
    def sync_push(as_json: bool) -> None:
        """Push queued local changes to the hub."""
        with open_vault() as vault, hub_client(vault) as client, progress_bar("pushing") as bar:
            stats = make_syncer(vault, client).push(bar)
        _print_stats(stats, as_json)
        _check_unreadable(stats)

    @sync.command("pull")
    @click.option(
        "--wait", type=click.FloatRange(0, 60), default=0, help="Wait up to this many seconds for a change."
    )
    @json_option
    def sync_pull(wait: float, as_json: bool) -> None:
        """Pull the hub's changes since the last pull."""
        with open_vault() as vault, hub_client(vault) as client, progress_bar("pulling") as bar:
            stats = make_syncer(vault, client).pull(bar, wait=wait)
        _print_stats(stats, as_json)
        _check_unreadable(stats)

    @sync.command("now")
    @json_option
    def sync_now(as_json: bool) -> None:
        """Push, then pull."""
        with open_vault() as vault, hub_client(vault) as client, progress_bar("syncing") as bar:
            stats = make_syncer(vault, client).sync(bar)
        _print_stats(stats, as_json)
        _check_unreadable(stats)

    @sync.command("check")
    @json_option
    def sync_check(as_json: bool) -> None:
        """Compare this vault's state checksum with the hub's (exit 1 if they differ)."""
        with open_vault() as vault, hub_client(vault) as client:
            result = make_syncer(vault, client).check()
        if as_json:
            print_json(
                {
                    "local": result.local,
                    "hub": result.hub,
                    "cursor": result.cursor,
                    "pending": result.pending,
                    "in_sync": result.in_sync,
                }
            )
        elif result.in_sync:
            out.print(f"in sync at cursor {result.cursor} (checksum {result.local})")
        elif result.pending:
            out.print(f"{result.pending} local changes are not pushed yet; run 'truthvault sync now' first")
        else:
            out.print(
                f"DIVERGED at cursor {result.cursor}: local {result.local}, hub {result.hub}; "
                "re-sync with 'truthvault sync resync'"
            )
        if not result.in_sync:
            raise SystemExit(1)

    @sync.command("resync")
    @json_option
    def sync_resync(as_json: bool) -> None:
        """Re-sync from scratch: pull the hub's whole state again."""
        with open_vault() as vault, hub_client(vault) as client, progress_bar("re-syncing") as bar:
            syncer = make_syncer(vault, client)
            stats = syncer.resync(bar)
            syncer.push(bar, stats)
        _print_stats(stats, as_json)
        _check_unreadable(stats)

    @sync.command("status")
    @json_option
    def sync_status(as_json: bool) -> None:
        """Where this vault syncs to and what is queued."""
        with open_vault() as vault:
            status = {
                "home": str(home_dir()),
                "device_id": vault.device_id,
                "tenant_id": vault.tenant_id,
                "hub": vault.hub_url,
                "cursor": vault.cursor,
                "pending": vault.pending_count(),
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
            record = vault.resolve_conflict(conflict_id, resolution)
            synced = False
            if vault.hub_url:
                try:
                    with hub_client(vault) as client:
                        make_syncer(vault, client).sync()
                    synced = True
                except HubUnavailable as exc:
                    err_console.print(f"note: {exc.message}; the decision goes to the hub on the next sync")
            if as_json:
                print_json({"record": record, "synced": synced})
                return
            done = "restored the losing version" if resolution == "restore" else "kept the current version"
            out.print(f"conflict {record.id} on {record.entity_id} resolved: {done}")
