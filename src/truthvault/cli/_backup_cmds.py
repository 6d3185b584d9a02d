"""``truthvault backup now|schedule|open``: encrypted backups of the vault into a folder."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from ..errors import InvalidInput
from ._common import json_option, open_vault, out, print_json

__all__ = ["register"]


def register(cli: click.Group) -> None:
    """Add the backup group."""

    @cli.group()
    def backup() -> None:
        """Encrypted backups of this vault into a folder, now or on a schedule."""

    @backup.command("now")
    @click.option(
        "--to", "folder", required=True, type=click.Path(file_okay=False), help="The folder to back up into."
    )
    @click.option(
        "--keep", type=click.IntRange(1, 10_000), default=7, show_default=True, help="Backups kept there."
    )
    @json_option
    def backup_now(folder: str, keep: int, as_json: bool) -> None:
        """Back up now (the vault.export.scheduled workflow, run once)."""
        from ..sync import device_engine
        from ..vault import BACKUP_KEY_FILE

        slot = datetime.now(UTC).isoformat()
        with open_vault() as vault, device_engine(vault) as engine:
            params = {"to": str(Path(folder).expanduser().resolve()), "keep": keep, "slot": slot}
            actor = {"source": vault.source or "user:cli", "device_id": vault.device_id}
            outcome = engine.run("vault.export.scheduled", params, actor=actor, workflow_id=f"backup:{slot}")
            key = vault.home / BACKUP_KEY_FILE
        if outcome["status"] != "completed":
            failed = outcome.get("failed") or {}
            raise InvalidInput(f"the backup failed at {failed.get('step')}: {failed.get('error')}")
        made = outcome["results"]["export"]
        if as_json:
            print_json({**made, "key": str(key), "deleted": outcome["results"]["prune"]["deleted"]})
            return
        out.print(f"backed up to {made['file']} ({made['bytes']} bytes)")
        out.print(f"its key is {key}: keep a copy elsewhere, no backup can be read without it")

    @backup.command("schedule")
    @click.option("--to", "folder", type=click.Path(file_okay=False), help="The folder to back up into.")
    @click.option("--every", metavar="N[mhd]", help="Every N minutes, hours or days (1d).")
    @click.option("--cron", metavar="EXPR", help="On a cron schedule ('0 3 * * *').")
    @click.option(
        "--keep", type=click.IntRange(1, 10_000), default=7, show_default=True, help="Backups kept there."
    )
    @click.option("--off", is_flag=True, help="End the schedule.")
    def backup_schedule(
        folder: str | None, every: str | None, cron: str | None, keep: int, off: bool
    ) -> None:
        """Back up on a schedule, run by 'truthvault automation run --watch' (this device's
        schedule: it does not sync)."""
        from ..vault import set_schedule

        with open_vault() as vault:
            if off:
                set_schedule(vault, None)
                out.print("backups are no longer scheduled")
                return
            if folder is None or (every is None) == (cron is None):
                raise InvalidInput("give --to DIR and one of --every or --cron (or --off)")
            to = str(Path(folder).expanduser().resolve())
            set_schedule(vault, {"to": to, "every": every, "cron": cron, "keep": keep})
        out.print(
            f"backups into {to} {'every ' + every if every else 'at ' + str(cron)}, the newest {keep} kept"
        )
        out.print("they run while 'truthvault automation run --watch' runs")

    @backup.command("open")
    @click.argument("file", type=click.Path(dir_okay=False, exists=True))
    @click.option(
        "--key",
        "key_file",
        type=click.Path(dir_okay=False, exists=True),
        help="The backup key file (default: this vault's).",
    )
    @click.option(
        "--out", "target", default="-", show_default=True, help="Where the JSON Lines go ('-': stdout)."
    )
    def backup_open(file: str, key_file: str | None, target: str) -> None:
        """Open a backup: its JSON Lines, which 'truthvault import' takes."""
        from ..vault import backup_key, open_backup, open_backup_to, read_key

        if key_file is not None:
            key = read_key(Path(key_file))
        else:
            with open_vault() as vault:
                key = backup_key(vault)
        if target == "-":
            open_backup(Path(file), key, sys.stdout.buffer)
            return
        size = open_backup_to(Path(file), key, Path(target))
        out.print(f"{size} bytes of JSON Lines in {target}")
