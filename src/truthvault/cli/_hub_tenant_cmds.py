"""``truthvault hub tenant add|code|list`` and ``hub device add|list|revoke`` (and ``hub
devices``): a hub's tenants and their devices, on the database --db names."""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

import click

from ._common import err_console, json_option, out, plural, print_json
from ._hub_cmds import DEFAULT_URL, as_dict, db_option, default_hub_db, open_hub_store, url_option

if TYPE_CHECKING:
    from ..hub import HubStore

__all__ = ["register_tenants"]

#: minutes an enrolment code is valid unless --ttl says otherwise
_CODE_TTL_MIN = 15


def register_tenants(hub: click.Group) -> None:
    """Add the tenant and device groups to the hub group."""

    @hub.group()
    def tenant() -> None:
        """Tenants: each has its own data, devices and vault mode."""

    @tenant.command("add")
    @click.argument("name")
    @click.option(
        "--mode",
        type=click.Choice(["local_first", "cloud_first"]),
        default="local_first",
        show_default=True,
        help="local_first: the devices hold the canonical data; cloud_first: the hub does.",
    )
    @click.option(
        "--policy",
        "policy_file",
        type=click.File("r"),
        help="The tenant's first policy (Cedar, '-' reads stdin; default: the built-in one).",
    )
    @db_option
    @url_option
    @json_option
    def tenant_add(
        name: str,
        mode: str,
        policy_file: IO[str] | None,
        db_url: str | None,
        hub_url: str | None,
        as_json: bool,
    ) -> None:
        """Create a tenant and print a one-time enrolment code for its first device (the
        tenant.provision workflow: tenant, policy, contracts; then the code)."""
        from ..hub import provision_tenant

        policy = policy_file.read() if policy_file is not None else None
        with open_hub_store(db_url) as store:
            results = provision_tenant(store, db_url or default_hub_db(), name, mode, policy)
            created = store.get_tenant(name)
            code = str(results["code"]["code"])
        if as_json:
            print_json({**as_dict(created), "enrol_code": code, "code_ttl_minutes": _CODE_TTL_MIN})
        else:
            out.print(f"tenant {created.name!r} created ({created.vault_mode}, id {created.id})")
            _print_code(code, _CODE_TTL_MIN, hub_url)

    @tenant.command("code")
    @click.argument("name")
    @click.option(
        "--ttl",
        type=click.FloatRange(1, 7 * 24 * 60),
        default=_CODE_TTL_MIN,
        show_default=True,
        help="Minutes the code stays valid.",
    )
    @db_option
    @url_option
    @json_option
    def tenant_code(name: str, ttl: float, db_url: str | None, hub_url: str | None, as_json: bool) -> None:
        """Issue another one-time enrolment code for a tenant's next device."""
        with open_hub_store(db_url) as store:
            code = str(_admin_action(store, name, "tenant.code", {"ttl_s": ttl * 60})["code"])
        if as_json:
            print_json({"tenant": name, "enrol_code": code, "code_ttl_minutes": ttl})
        else:
            _print_code(code, ttl, hub_url)

    @tenant.command("list")
    @db_option
    @json_option
    def tenant_list(db_url: str | None, as_json: bool) -> None:
        """List tenants."""
        with open_hub_store(db_url) as store:
            tenants = store.list_tenants()
        if as_json:
            print_json([as_dict(t) for t in tenants])
            return
        from rich.table import Table

        table = Table(header_style="bold")
        for col in ("name", "mode", "id", "created"):
            table.add_column(col)
        for t in tenants:
            table.add_row(t.name, t.vault_mode, t.id, t.created_at[:19])
        out.print(table if tenants else "no tenants yet")

    @hub.group()
    def device() -> None:
        """Devices added by token (enrolled devices sign instead; see 'truthvault enroll')."""

    @device.command("add")
    @click.option("--tenant", "tenant_name", required=True, help="The tenant the device belongs to.")
    @click.option("--name", "device_name", required=True, help="A name for the device, e.g. laptop.")
    @db_option
    @url_option
    @json_option
    def device_add(
        tenant_name: str, device_name: str, db_url: str | None, hub_url: str | None, as_json: bool
    ) -> None:
        """Register a device that syncs with a bearer token (for scripts); print it, once."""
        with open_hub_store(db_url) as store:
            created, token = store.add_device(tenant_name, device_name)
            created_mode = store.get_tenant(tenant_name).vault_mode
        if as_json:
            print_json({**as_dict(created), "token": token})
            return
        out.print(f"device {created.name!r} added to tenant {tenant_name!r} (id {created.id})")
        out.print(f"token (shown once, keep it secret): {token}")
        if created_mode == "local_first":
            err_console.print(
                f"note: {tenant_name!r} is local-first (end-to-end encrypted): a device added with a token "
                "has no key pair, so it can read the tenant's data only after 'truthvault keys recover' "
                "with the recovery passphrase. To add a device people use, give it a code instead: "
                f"'truthvault hub tenant code {tenant_name}', then 'truthvault enroll' on it.",
                soft_wrap=True,
            )
        out.print(_device_command(f"init --hub {{hub}} --tenant {tenant_name} --token <token>", hub_url))

    @device.command("list")
    @click.option("--tenant", "tenant_name", required=True)
    @click.option(
        "--stale",
        is_flag=True,
        help="Show each device's offline risk (days offline, contract lag, unsynced changes) "
        "and what it may still do; riskiest first.",
    )
    @db_option
    @json_option
    def device_list(tenant_name: str, stale: bool, db_url: str | None, as_json: bool) -> None:
        """List a tenant's devices with when they were last seen."""
        if stale:
            from ._offline_cmds import stale_devices

            with open_hub_store(db_url) as store:
                stale_devices(store, tenant_name, as_json)
            return
        with open_hub_store(db_url) as store:
            devices = store.list_devices(tenant_name)
        if as_json:
            print_json([as_dict(d) for d in devices])
            return
        from rich.table import Table

        table = Table(header_style="bold")
        for col in ("name", "id", "last seen", "status", "last mutation"):
            table.add_column(col)
        for d in devices:
            status = "revoked" if d.revoked else "signs" if d.fingerprint else "token"
            table.add_row(d.name, d.id, (d.last_seen_at or "never")[:19], status, str(d.last_mutation))
        out.print(table if devices else "no devices yet")

    # the name for it: 'truthvault hub devices --tenant t --stale'
    hub.add_command(device_list, "devices")

    @device.command("revoke")
    @click.option("--tenant", "tenant_name", required=True, help="The tenant the device belongs to.")
    @click.option("--name", "device_name", required=True, help="The device to revoke.")
    @db_option
    def device_revoke(tenant_name: str, device_name: str, db_url: str | None) -> None:
        """Revoke a device: its every later request is refused."""
        with open_hub_store(db_url) as store:
            _admin_action(store, tenant_name, "device.revoke", {"name": device_name})
        out.print(f"device {device_name!r} of tenant {tenant_name!r} revoked")


def _admin_action(
    store: HubStore, tenant_name: str, name: str, params: dict[str, object]
) -> dict[str, object]:
    """Run a hub action as the hub's admin (the kernel's one governed path)."""
    from ..hub import run_as_admin

    return run_as_admin(store, tenant_name, name, params)


def _device_command(command: str, hub_url: str | None) -> str:
    """The line that tells what to run on the device, with the hub's URL as --url gave it."""
    if hub_url is not None:
        return f"on the device: truthvault {command.format(hub=hub_url)}"
    return (
        f"on the device: truthvault {command.format(hub=DEFAULT_URL)}   "
        "(hub serve's default address; --url prints the one your devices use)"
    )


def _print_code(code: str, ttl_min: float, hub_url: str | None) -> None:
    out.print(f"enrolment code (single use, valid {plural(ttl_min, 'minute')}): {code}")
    out.print(_device_command(f"enroll --hub {{hub}} --code {code}", hub_url))
