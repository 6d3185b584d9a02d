"""Commands of an enrolled device: enroll, devices, devices revoke, keys rotate-device."""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from pathlib import Path

import click
from rich.table import Table

from ..errors import ConflictState, HubUnavailable, InvalidInput
from ._common import (
    confirm,
    hub_client,
    json_option,
    open_vault,
    out,
    pin_hub,
    pin_option,
    print_json,
)
from ._key_cmds import add_key_commands, passphrase_file_option, read_passphrase

__all__ = ["register", "register_repin"]


def _read_code(code: str) -> str:
    """The code from --code, or from stdin for '-' (so it need not sit in argv)."""
    return sys.stdin.readline().strip() if code == "-" else code.strip()


def register(cli: click.Group) -> None:
    """Add enroll, devices and keys to the top-level group."""

    @cli.command()
    @click.option("--hub", "hub_url", required=True, help="The hub's URL, e.g. http://127.0.0.1:8787.")
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
    def enroll(
        hub_url: str,
        code: str,
        device_name: str | None,
        pin: str | None,
        recover: bool,
        passphrase_file: Path | None,
    ) -> None:
        """Enrol this device with a hub: make its key pair, register the public half, join the vault."""
        from ..sync import enrol_vault, recovery_keyring

        code = _read_code(code)
        if not code:
            raise InvalidInput("--code is empty")
        passphrase = read_passphrase(passphrase_file) if recover else None
        hub_url = hub_url.rstrip("/")
        name = device_name or socket.gethostname() or "this-device"
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
        with open_vault() as vault, hub_client(vault) as client:
            found = client.devices()
        if as_json:
            print_json(found)
            return
        wide = out.width >= 110  # ids only where they fit: names are what commands take
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
    def devices_revoke(name: str) -> None:
        """Revoke a device of this tenant: its every later request is refused."""
        with open_vault() as vault, hub_client(vault) as client:
            client.revoke_device(name)
        out.print(f"device {name!r} revoked")

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

        with open_vault() as vault:
            if not vault.key_path:
                raise ConflictState("this vault has no device key", hint="enrol it with 'truthvault enroll'")
            key_path = Path(vault.key_path)
            # The new key is on disk before the hub knows it, so an answer lost on the way back
            # cannot leave the device without the key the hub expects.
            pending = key_path.with_name(key_path.name + ".next")
            new = DeviceKeys.generate()
            new.save(pending, overwrite=True)
            try:
                with hub_client(vault) as client:
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
            hub_url = vault.hub_url
            if not hub_url:
                raise ConflictState(
                    "this vault is not joined to a hub", hint="enrol it with 'truthvault enroll'"
                )
            old = cert_fingerprint(vault.hub_cert) if vault.hub_cert else None
            pem, got = pin_certificate(hub_url, fingerprint)
            if got == old:
                out.print(
                    f"the hub at {vault.hub_url} presents the certificate already pinned (SHA256 {got}): nothing to do"
                )
                return
            out.print(f"the hub at {vault.hub_url} presents certificate SHA256 {got} (matches the one given)")
            out.print(f"pinned until now: {old or 'none'}")
            confirm(
                "trust this certificate for this vault from now on?", yes, "re-pinning the hub's certificate"
            )
            vault.set_hub_cert(pem)
        out.print(f"pinned SHA256 {got} for the hub at {hub_url}; run 'truthvault sync now'")
