"""Commands for a local-first tenant's data key: keys status, rotate, recovery set, recover."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import InvalidInput
from ._common import json_option, open_vault, out, plural, print_json

if TYPE_CHECKING:
    from ..vault import Vault

__all__ = ["PASSPHRASE_ENV", "add_key_commands", "passphrase_file_option", "read_passphrase", "rotate_keys"]

#: Scripts pass the recovery passphrase here (or in a file), never in argv.
PASSPHRASE_ENV = "TRUTHVAULT_RECOVERY_PASSPHRASE"

passphrase_file_option = click.option(
    "--passphrase-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=f"Read the recovery passphrase from this file (or set {PASSPHRASE_ENV}; else you are asked).",
)


def read_passphrase(path: Path | None, *, confirm: bool = False, required: bool = True) -> str | None:
    """The recovery passphrase from a file, the environment, or a hidden prompt (never argv)."""
    if path is not None:
        text = path.read_text(encoding="utf-8").rstrip("\r\n")
    elif os.environ.get(PASSPHRASE_ENV):
        text = os.environ[PASSPHRASE_ENV]
    elif required:
        text = click.prompt("recovery passphrase", hide_input=True, confirmation_prompt=confirm)
    else:
        return None
    if not text:
        raise InvalidInput("the recovery passphrase is empty")
    return text


def recover_keys(vault: Vault, passphrase: str) -> str:
    """Fetch the recovery copy of the tenant keyring and open it here; its current key id."""
    from ..sync import connect, key_exchange

    with connect(vault) as client:
        return str(key_exchange(vault, client).recover(passphrase).current)


def rotate_keys(vault: Vault, passphrase: str | None, approval: str | None = None) -> None:
    """Rotate the tenant's data key (the ``keys.rotate`` workflow) and say what became of it;
    ``approval`` redeems an approved request when the tenant's policy holds the rotation for one."""
    from ..kernel import ApprovalRequired
    from ..sync import rotate_data_key

    try:
        done = rotate_data_key(vault, passphrase, approval=approval)
    except ApprovalRequired as exc:
        if exc.request_id:  # run again means with --approval here
            exc.hint = (
                f"approve it with 'truthvault approve {exc.request_id}', then "
                f"'truthvault keys rotate --approval {exc.request_id}'"
            )
        raise
    note = "; recovery copy re-wrapped" if done.recovery_rewrapped else ""
    out.print(
        f"rotated the tenant data key: new writes use {done.current}, wrapped for "
        f"{plural(done.devices, 'device')}{note} (workflow {done.workflow_id})"
    )


def add_key_commands(keys: click.Group) -> None:
    """Add status, rotate, recovery set and recover to the ``keys`` group."""

    @keys.command("status")
    @json_option
    def keys_status(as_json: bool) -> None:
        """The tenant's data keys here and which devices hold a wrapped copy."""
        from ..sync import connect, key_exchange, unfinished_rotations

        with open_vault() as vault, connect(vault) as client:
            exchange = key_exchange(vault, client)
            keyring = vault.replica.keyring()
            unfinished = unfinished_rotations(vault)
            holders = exchange.holders()
            exposed = exchange.exposed_to(holders)
            recovery = exchange.has_recovery()
            tenant = vault.tenant_name
        devices = [
            {
                "name": h["name"],
                "key": h["kid"],
                "can_receive": bool(h["box_public"]),
                "revoked": bool(h.get("revoked")),
            }
            for h in holders
        ]
        status = {
            "tenant": tenant,
            "current_key": keyring.current if keyring else None,
            "keys": len(keyring.kids) if keyring else 0,
            "recovery_passphrase_set": recovery,
            "devices": devices,
            "revoked_devices_hold_current_key": exposed,
            "unfinished_rotations": unfinished,
        }
        if as_json:
            print_json(status)
            return
        if keyring is None:
            out.print(
                "this device has no tenant key yet: sync a device that has it, or 'truthvault keys recover'"
            )
        else:
            out.print(f"current key {keyring.current} ({plural(len(keyring.kids), 'key')} in the keyring)")
        out.print(f"recovery passphrase: {'set' if recovery else 'not set'}")
        for workflow_id in unfinished:
            out.print(
                f"a key rotation was left unfinished ({workflow_id}): run 'truthvault workflow resume "
                f"{workflow_id}' to finish or undo it (until then the recovery copy may lack the new key)"
            )
        for h in devices:
            if not h["revoked"]:
                out.print(f"  {h['name']}: {h['key'] or 'no copy yet'}")
            elif h["name"] in exposed:
                out.print(f"  {h['name']}: revoked, holds the current key {h['key']}")
            else:
                out.print(
                    f"  {h['name']}: revoked, " + (f"held {h['key']}" if h["key"] else "never had a copy")
                )
        if exposed:
            out.print(
                f"revoked devices hold the current key ({', '.join(exposed)}): run 'truthvault keys rotate' "
                "so new writes use a key they never had"
            )

    @keys.command("rotate")
    @passphrase_file_option
    @click.option(
        "--approval",
        metavar="ID",
        help="Redeem this approved request, when the tenant's policy holds a rotation for one.",
    )
    def keys_rotate(passphrase_file: Path | None, approval: str | None) -> None:
        """Rotate the tenant's data key: new writes use it, old entries stay readable, every device gets it.

        When a recovery passphrase is set, its copy is re-wrapped too (the passphrase is asked
        for, or read from --passphrase-file / $TRUTHVAULT_RECOVERY_PASSPHRASE). When the tenant's
        policy holds the rotation for an approval, approve the request it names ('truthvault
        approve ID'), then run it again with --approval ID.
        """
        from ..sync import connect, key_exchange

        with open_vault() as vault:
            with connect(vault) as client:
                has_recovery = key_exchange(vault, client).has_recovery()
            passphrase = read_passphrase(passphrase_file) if has_recovery else None
            rotate_keys(vault, passphrase, approval)

    @keys.group("recovery")
    def recovery() -> None:
        """The recovery passphrase: a lost-device way back to the tenant's data."""

    @recovery.command("set")
    @passphrase_file_option
    def recovery_set(passphrase_file: Path | None) -> None:
        """Store the tenant key at the hub wrapped with a recovery passphrase (scrypt; the hub cannot open it)."""
        from ..sync import connect, key_exchange

        passphrase = read_passphrase(passphrase_file, confirm=True)
        assert passphrase is not None
        with open_vault() as vault, connect(vault) as client:
            key_exchange(vault, client).set_recovery(passphrase)
        out.print("recovery passphrase set: a new device can read everything with 'truthvault keys recover'")

    @keys.command("recover")
    @passphrase_file_option
    def keys_recover(passphrase_file: Path | None) -> None:
        """Get the tenant key on this device with the recovery passphrase."""
        passphrase = read_passphrase(passphrase_file)
        assert passphrase is not None
        with open_vault() as vault:
            current = recover_keys(vault, passphrase)
        out.print(f"recovered the tenant key (current {current}); run 'truthvault sync now'")
