"""Commands of an enrolled device: enroll, devices, devices revoke, keys rotate-device."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import ConflictState, HubUnavailable, InvalidInput
from ._common import (
    confirm,
    err_console,
    interactive,
    json_option,
    open_vault,
    out,
    pin_hub,
    pin_option,
    print_json,
    run_action,
)
from ._key_cmds import add_key_commands, passphrase_file_option, read_passphrase, rotate_keys

if TYPE_CHECKING:
    from ..sync import HubClient
    from ..vault import Vault

__all__ = ["register", "register_repin"]


def _read_code(code: str) -> str:
    """The code from --code, or from stdin for '-' (so it need not sit in argv)."""
    return sys.stdin.readline().strip() if code == "-" else code.strip()


def register(cli: click.Group) -> None:
    """Add enroll, devices and keys to the top-level group."""

    @cli.command()
    @click.option(
        "--hub",
        "hub_url",
        default=None,
        help="The hub's URL, e.g. http://127.0.0.1:8787 (with --rejoin: the vault's own hub).",
    )
    @click.option(
        "--code",
        required=True,
        help="The one-time enrolment code from 'truthvault hub tenant add' or 'hub tenant code' "
        "('-' reads stdin).",
    )
    @click.option(
        "--name", "device_name", default=None, help="A name for this device (default: the host name)."
    )
    @pin_option
    @click.option(
        "--recover", is_flag=True, help="Also get the tenant's data key with the recovery passphrase."
    )
    @passphrase_file_option
    @click.option(
        "--rejoin",
        is_flag=True,
        help="Enrol this joined vault again as a new device of its tenant (after its device was "
        "revoked): what it synced stays, its unsynced changes are pushed by the new device.",
    )
    def enroll(
        hub_url: str | None,
        code: str,
        device_name: str | None,
        pin: str | None,
        recover: bool,
        passphrase_file: Path | None,
        rejoin: bool,
    ) -> None:
        """Enrol this device with a hub: make its key pair, register the public half, join the vault."""
        import socket

        from ..sync import check_hub_url, enrol_vault, recovery_keyring, rejoin_hub

        if hub_url is not None:
            hub_url = check_hub_url(hub_url)
        code = _read_code(code)
        if not code:
            raise InvalidInput("--code is empty")
        if not hub_url and not rejoin:
            raise InvalidInput("--hub is required", hint="or --rejoin, to enrol a joined vault again")
        passphrase = read_passphrase(passphrase_file) if recover else None
        name = device_name or socket.gethostname() or "this-device"
        if rejoin:
            with open_vault() as vault:
                url = rejoin_hub(vault, hub_url)
                # the certificate this vault pinned already, unless --pin names another
                cert = pin_hub(url, pin) if pin else vault.replica.hub_cert
                recovered = recovery_keyring(url, code, passphrase, cert) if passphrase is not None else None
                previous = vault.device_id
                done = enrol_vault(vault, url, code, name, cert_pem=cert, recovered=recovered, rejoin=True)
                queued = vault.replica.pending_count()
            if done.recovered_key:
                out.print(f"recovered the tenant data key (current {done.recovered_key})")
            out.print(
                f"rejoined as device {done.device_name!r} of tenant {done.tenant_name!r} at {url} "
                f"(this vault was device {previous}); key fingerprint {done.fingerprint}; "
                f"{queued} unsynced change(s) wait to be pushed: run 'truthvault sync now'"
            )
            if done.previous_active:
                err_console.print(
                    f"note: device {done.previous_active!r}, which this vault was until now, is not "
                    f"revoked: revoke it ('truthvault devices revoke {done.previous_active}') unless "
                    "another copy of this vault still uses it"
                )
            return
        assert hub_url is not None
        hub_url = hub_url.rstrip("/")
        # Both before anything is written: a wrong pin or passphrase leaves no trace, and the
        # code stays unspent for the next attempt.
        cert = pin_hub(hub_url, pin)
        recovered = recovery_keyring(hub_url, code, passphrase, cert) if passphrase is not None else None
        with open_vault(create=True) as vault:
            done = enrol_vault(vault, hub_url, code, name, cert_pem=cert, recovered=recovered)
        if done.recovered_key:
            out.print(f"recovered the tenant data key (current {done.recovered_key})")
        out.print(
            f"enrolled as device {done.device_name!r} of tenant {done.tenant_name!r} ({done.vault_mode}) "
            f"at {hub_url}; key fingerprint {done.fingerprint}; run 'truthvault sync now'"
        )

    @cli.group(invoke_without_command=True)
    @json_option
    @click.pass_context
    def devices(ctx: click.Context, as_json: bool) -> None:
        """The devices of this vault's tenant, with when each was last seen."""
        if ctx.invoked_subcommand is not None:
            return
        from ..sync import connect

        with open_vault() as vault, connect(vault) as client:
            found = client.devices()
        if as_json:
            print_json(found)
            return
        wide = out.width >= 110  # ids only where they fit: names are what commands take
        from rich.table import Table

        table = Table(header_style="bold")
        for col in ("name", *(("id",) if wide else ()), "last seen", "status", "key"):
            table.add_column(col, no_wrap=True)
        for d in found:
            status = "revoked" if d["revoked"] else ("this device" if d.get("this_device") else "active")
            seen = (d["last_seen_at"] or "never")[:16].replace("T", " ")
            key = (d["fingerprint"] or "token")[: None if wide else 9]
            table.add_row(d["name"], *((d["id"],) if wide else ()), seen, status, key)
        out.print(table if found else "no devices")

    @devices.command("revoke")
    @click.argument("name")
    @click.option("--yes", is_flag=True, help="Revoke this very device without asking (for scripts).")
    @click.option(
        "--rotate-key/--no-rotate-key",
        default=None,
        help="Then rotate the tenant's data key (local-first tenants), so new writes use a key the "
        "revoked device never had (default: asked at a terminal, else only advised).",
    )
    @passphrase_file_option
    def devices_revoke(name: str, yes: bool, rotate_key: bool | None, passphrase_file: Path | None) -> None:
        """Revoke a device of this tenant: its every later request is refused.

        Revoking this very device asks first (--yes for scripts): the vault can then no longer
        sync until 'truthvault enroll --rejoin' makes it a new device, keeping its unsynced
        changes. A revoked device of a local-first tenant still holds the data key: the command
        offers to rotate it (--rotate-key rotates without asking; the recovery passphrase, if
        one is set, is asked for or read from --passphrase-file / $TRUTHVAULT_RECOVERY_PASSPHRASE).
        """
        from ..sync import connect, key_exchange

        with open_vault() as vault, connect(vault) as client:
            e2e = vault.vault_mode == "local_first"
            if rotate_key and not e2e:
                raise InvalidInput(
                    f"--rotate-key: tenant {vault.tenant_name!r} is {vault.vault_mode}: "
                    "its payloads are not end-to-end encrypted"
                )
            if any(d["name"] == name and d.get("this_device") for d in client.devices()):
                _revoke_this_device(vault, client, name, yes, bool(rotate_key))
                return
            exchange = key_exchange(vault, client) if e2e else None
            # asked for before revoking: a rotation that cannot run should not follow a revocation
            passphrase = (
                read_passphrase(passphrase_file)
                if rotate_key and exchange and exchange.has_recovery()
                else None
            )
            run_action(vault, "device.revoke", {"name": name})
            out.print(f"device {name!r} revoked")
            if exchange is None or rotate_key is False:
                return
            if rotate_key is None:
                if name not in exchange.exposed_to():
                    return  # it never had the current key: nothing to rotate away from
                if not (
                    interactive()
                    and click.confirm(
                        f"rotate the tenant data key now, so new writes use a key {name!r} never had?",
                        default=True,
                    )
                ):
                    out.print(
                        f"{name!r} still holds the tenant's current data key: run 'truthvault keys rotate' "
                        "so new writes use a key it never had"
                    )
                    return
                passphrase = read_passphrase(passphrase_file) if exchange.has_recovery() else None
            rotate_keys(vault, passphrase)

    @cli.group()
    def keys() -> None:
        """This device's keys, and the tenant's end-to-end data key (local-first tenants)."""

    add_key_commands(keys)

    @keys.command("rotate-device")
    @click.option(
        "--grace",
        type=click.FloatRange(0, 720),
        default=24,
        show_default=True,
        help="Hours the old signing key keeps working (for requests already on their way).",
    )
    def keys_rotate_device(grace: float) -> None:
        """Replace this device's signing key; the hub accepts the old one during the grace period."""
        from ..crypto import DeviceKeys
        from ..sync import connect

        with open_vault() as vault:
            if not vault.replica.key_path:
                raise ConflictState("this vault has no device key", hint="enrol it with 'truthvault enroll'")
            key_path = Path(vault.replica.key_path)
            # The new key is on disk before the hub knows it, so an answer lost on the way back
            # cannot leave the device without the key the hub expects.
            pending = key_path.with_name(key_path.name + ".next")
            new = DeviceKeys.generate()
            new.save(pending, overwrite=True)
            try:
                with connect(vault) as client:
                    result = client.rotate_key(new, grace * 3600)
            except HubUnavailable as exc:
                exc.hint = f"the new key is kept at {pending}; if the hub took it, move it to {key_path}"
                raise
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(pending)
                raise
            os.replace(pending, key_path)
        out.print(
            f"rotated this device's key (new fingerprint {new.fingerprint()}); old key valid until {result['grace_until']}"
        )


def _revoke_this_device(vault: Vault, client: HubClient, name: str, yes: bool, rotate_key: bool) -> None:
    """Revoke the device this vault is, once the user agrees (it can no longer sync after)."""
    if rotate_key:
        raise InvalidInput(
            "--rotate-key: a revoked device cannot rotate the key",
            hint="revoke this device, then run 'truthvault keys rotate' on another one",
        )
    confirm(
        f"revoke THIS device ({name!r})? this vault can no longer sync until enrolled again",
        yes,
        "revoking this device",
    )
    client.revoke_device(name)
    e2e = vault.vault_mode == "local_first"
    _print_self_revoked(name, vault.tenant_name, vault.replica.pending_count(), e2e)


def _print_self_revoked(name: str, tenant: str, queued: int, e2e: bool) -> None:
    out.print(
        f"device {name!r} (this device) revoked: this vault can no longer sync. Its {queued} unsynced "
        f"change(s) stay here: to enrol it again as a new device, get a code ('truthvault hub tenant "
        f"code {tenant}' on the hub) and run 'truthvault enroll --rejoin --code -'"
    )
    if e2e:
        out.print(
            "it still holds the tenant's data key: run 'truthvault keys rotate' on another device so "
            "new writes use a key it never had"
        )


def register_repin(cli: click.Group) -> None:
    """Add ``hub repin`` to the hub group (a device-side command: it changes this device's vault)."""
    hub = cli.commands["hub"]
    assert isinstance(hub, click.Group)

    @hub.command("repin")
    @click.argument("fingerprint")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation (for scripts).")
    def hub_repin(fingerprint: str, yes: bool) -> None:
        """On this device: trust the hub's new TLS certificate, given its SHA-256 fingerprint.

        Acts on this device's vault, not on a hub database. Run it when the hub's operator has
        replaced its certificate: the device fetches what the hub now presents, refuses it unless
        its fingerprint is FINGERPRINT (get it from the operator: 'hub serve' prints it, never
        take it from the error message), asks you to confirm, and pins it in place of the old one.
        """
        from ..sync import cert_fingerprint, pin_certificate

        with open_vault() as vault:
            hub_url = vault.replica.hub_url
            if not hub_url:
                raise ConflictState(
                    "this vault is not joined to a hub", hint="enrol it with 'truthvault enroll'"
                )
            old = cert_fingerprint(vault.replica.hub_cert) if vault.replica.hub_cert else None
            pem, got = pin_certificate(hub_url, fingerprint)
            if got == old:
                out.print(
                    f"the hub at {vault.replica.hub_url} presents the certificate already pinned (SHA256 {got}): nothing to do"
                )
                return
            out.print(
                f"the hub at {vault.replica.hub_url} presents certificate SHA256 {got} (matches the one given)"
            )
            out.print(f"pinned until now: {old or 'none'}")
            confirm(
                "trust this certificate for this vault from now on?", yes, "re-pinning the hub's certificate"
            )
            vault.replica.set_hub_cert(pem)
        out.print(f"pinned SHA256 {got} for the hub at {hub_url}; run 'truthvault sync now'")
