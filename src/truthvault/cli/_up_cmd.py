"""``truthvault up``: the Quickstart: a hub on SQLite and a vault enrolled to it."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import ConflictState, NotFound
from ._common import home_dir, open_vault, out
from ._hub_cmds import DEFAULT_PORT, serve_hub

if TYPE_CHECKING:
    from ..hub import HubStore

__all__ = ["register"]

TENANT = "personal"


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def register(cli: click.Group) -> None:
    """Add ``up``."""

    @cli.command()
    @click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True)
    def up(port: int) -> None:
        """Start a hub on SQLite at 127.0.0.1 and enrol this vault to it (Ctrl-C stops)."""
        from ..hub import open_store
        from ..hub.app import HubSettings

        host = "127.0.0.1"
        hub_url = f"http://{host}:{port}"
        home = home_dir()
        db = str(home / "hub.db")
        if not _port_free(host, port):
            raise ConflictState(
                f"port {port} on {host} is in use", hint="is a hub already running? try --port"
            )
        store = open_store(db, create=True)
        try:
            _enrol(store, hub_url)
            _hints(home)
            serve_hub(store, db, host, port, HubSettings())
        finally:
            store.close()
        out.print(f"your vault is kept in {home}; './scripts/up' or 'truthvault up' starts it all again")


def _enrol(store: HubStore, hub_url: str) -> None:
    """Make sure the vault exists and is enrolled with this hub as a device of TENANT.

    As a user enrols one: an enrolment code spent on this device's own key pair, so the
    device signs its requests and can be given the tenant's data key. The hub is not
    serving yet, so the code is spent on its store directly rather than over HTTP.
    """
    import socket

    from ..crypto import DeviceKeys

    with open_vault(create=True) as vault:
        if vault.replica.hub_url == hub_url and (vault.replica.key_path or vault.replica.hub_token):
            return
        try:
            store.get_tenant(TENANT)
        except NotFound:
            store.add_tenant(TENANT, "local_first")
        name = socket.gethostname() or "this-device"
        taken = {d.name for d in store.list_devices(TENANT)}
        base, n = name, 2
        while name in taken:
            name, n = f"{base}-{n}", n + 1
        from ..vault import KEY_FILE

        key_path = home_dir() / KEY_FILE
        # A key left by an enrolment that failed half way is used again, as 'enroll' does.
        keys = DeviceKeys.load(key_path) if key_path.exists() else DeviceKeys.generate()
        if not key_path.exists():
            keys.save(key_path)
        bundle = keys.public_bundle()
        device, tenant = store.enroll(store.create_enrol_code(TENANT), name, bundle["sign"], bundle["box"])
        vault.replica.join(
            hub_url=hub_url,
            token=None,
            tenant_id=tenant.id,
            tenant_name=tenant.name,
            device_id=device.id,
            vault_mode=tenant.vault_mode,
            key_path=str(key_path),
        )
        out.print(f"enrolled this vault as device {name!r} of tenant {TENANT!r} (key {keys.fingerprint()})")


def _hints(home: Path) -> None:
    """Say where things are and what to try."""
    out.print(f"vault: {home / 'vault.db'}")
    exe = Path(sys.executable).parent / "truthvault"
    on_path = str(exe.parent) in os.environ.get("PATH", "").split(os.pathsep)
    tv = "truthvault" if on_path or not exe.exists() else str(exe)
    out.print(
        "\nTry, in another terminal:\n"
        f"  {tv} note add 'my first note'\n"
        f'  {tv} put note --source ai-cloud:demo/model \'{{"text": "an AI draft"}}\'\n'
        f"  {tv} list                 # the truth level of everything\n"
        f"  {tv} edit <id> --set text='rewritten by me'   # AI content becomes yours (U1)\n"
        f"  {tv} sync now             # push and pull through this hub\n"
        f"  {tv} search first\n"
        f"  {tv} --help\n"
        "Ctrl-C stops the hub.\n",
        markup=False,
    )
