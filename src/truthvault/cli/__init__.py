"""The ``truthvault`` command: a thin layer over the library, with one error boundary."""

from __future__ import annotations

import os
import sys
from importlib import import_module
from typing import NoReturn

import click

from .. import __version__
from ..errors import TruthvaultError

__all__ = ["COMMANDS", "cli", "load_commands", "main"]

_VAULT, _SYNC, _DEVICE, _UP = ("_vault_cmds",), ("_sync_cmds",), ("_device_cmds",), ("_up_cmd",)
_APPROVAL = ("_approval_cmds",)
_HUB = ("_hub_cmds", "_device_cmds")  # 'hub repin' is a device command that joins the hub group

#: each top-level command: the modules that add it, and the first paragraph of its help. A
#: command's modules are imported only when it runs (``note add`` pays for no hub or sync code),
#: and ``--help`` lists the commands from here, importing none; a test checks the table against
#: what the modules register.
COMMANDS: dict[str, tuple[tuple[str, ...], str]] = {
    "ai": (
        ("_ai_cmds",),
        "AI writers at their truth level: on this device (L3), the LAN (LN4) or the cloud (C5).",
    ),
    "action": (
        ("_action_cmds",),
        "The governed actions: every write goes through one, under policy, approvals and audit.",
    ),
    "accept": (_VAULT, "Accept a suggestion: it is merged in and becomes user truth (U1)."),
    "approvals": (
        _APPROVAL,
        "Requests waiting for your decision: what, who asked, why, the risk, when it expires.",
    ),
    "approve": (_APPROVAL, "Approve a pending request (ID or its first characters) as yourself (user:cli)."),
    "automation": (
        ("_automation_cmds",),
        "Automations: a trigger and an action, run durably at level 2 (what they change of yours becomes a suggestion).",
    ),
    "audit": (
        ("_audit_cmds",),
        "The tenant's tamper-evident audit log at the hub, checked from this device.",
    ),
    "backup": (("_backup_cmds",), "Encrypted backups of this vault into a folder, now or on a schedule."),
    "conflicts": (_SYNC, "U1-vs-U1 conflicts: the losing user version is kept here until you decide."),
    "contract": (
        ("_contract_cmds",),
        "Entity contracts: each entity type's versioned JSON Schema, checked on every write.",
    ),
    "delete": (
        _VAULT,
        "Delete an entity (a tombstone that syncs). Below user level it is only a suggestion.",
    ),
    "deny": (_APPROVAL, "Deny a pending request (ID or its first characters), saying why."),
    "devices": (_DEVICE, "The devices of this vault's tenant, with when each was last seen."),
    "dlq": (("_dlq_cmds",), "This device's dead letters: what failed for good here, until you decide."),
    "doctor": (
        ("_doctor_cmd",),
        "Check this device: vault file, schema, keys, hub and its TLS pin, clock, queue, audit.",
    ),
    "edit": (_VAULT, "Change an entity. A user edit of AI or automation content makes it user truth."),
    "enroll": (
        _DEVICE,
        "Enrol this device with a hub: make its key pair, register the public half, join the vault.",
    ),
    "entity": (_VAULT, "Operations on one entity."),
    "events": (_VAULT, "Events, newest first: truth upgrades, suggestions, conflicts, syncs."),
    "export": (_VAULT, "Export every entity with its truth fields as JSON Lines ('-' or nothing: stdout)."),
    "hub": (_HUB, "The sync hub: serve it, manage tenants and devices."),
    "import": (_VAULT, "Import entities from JSON Lines (one SyncItem a line; '-' reads stdin)."),
    "init": (_SYNC, "Create the local vault; with --hub, join it to a hub."),
    "keys": (_DEVICE, "This device's keys, and the tenant's end-to-end data key (local-first tenants)."),
    "list": (_VAULT, "List entities, newest first. When there are more than are shown, stderr says so."),
    "note": (_VAULT, "Notes: free text, at user level unless --source says otherwise."),
    "parked": (
        ("_offline_cmds",),
        "Items parked at a sync: written under a contract version a newer major version broke.",
    ),
    "policy": (
        ("_policy_cmds",),
        "The tenant's policy (Cedar): who may run which action, and which need your approval.",
    ),
    "pin": (
        _APPROVAL,
        "Your PIN: what a destructive action asked by voice (user:voice) needs to be approved.",
    ),
    "put": (_VAULT, "Write an entity of any type. DATA is a JSON object ('-' reads it from stdin)."),
    "reject": (_VAULT, "Reject a suggestion; it stays retrievable with status rejected."),
    "search": (
        _VAULT,
        "Full-text search over the text of every entity: entities holding every word of QUERY.",
    ),
    "show": (_VAULT, "Show one entity with its truth fields and open suggestions."),
    "suggestions": (_VAULT, "Suggestions: what automations and AI proposed against higher truth."),
    "sync": (_SYNC, "Sync this vault with its hub."),
    "task": (_VAULT, "Tasks: things to do."),
    "workflow": (
        ("_automation_cmds",),
        "This device's durable workflows (automation runs, ...): list, show, resume, cancel.",
    ),
    "up": (_UP, "Start a hub on SQLite at 127.0.0.1 and enrol this vault to it (Ctrl-C stops)."),
}


class _LazyGroup(click.Group):
    """The root group: a command's module is loaded when the command is looked up, and every
    one when they are listed, so that ``--version`` costs no import of the library behind them."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        load_commands(cmd_name)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        load_commands()
        return super().list_commands(ctx)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and what each does, as click lists them, from COMMANDS."""
        # as click.Group.format_commands, which would import every command's module
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [
            (name, click.Command(name, help=summary).get_short_help_str(limit))
            for name, (_, summary) in sorted(COMMANDS.items())
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=_LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="truthvault")
def cli() -> None:
    """truthvault: a local-first vault in which you, the user, are the source of truth.

    Everything carries who wrote it: you (U1), an automation (A2), or an AI on this
    device (L3), the LAN (LN4) or the cloud (C5). Lower levels never silently replace
    what you wrote; they become suggestions you accept or reject.

    The vault lives in $TRUTHVAULT_HOME (default: your user data folder).
    """


_loaded: set[str] = set()


def load_commands(name: str | None = None) -> None:
    """Add command ``name`` to the root group, or every command (each module once)."""
    # an unknown name loads them all, so that click's "No such command" knows every one
    wanted = COMMANDS[name][0] if name in COMMANDS else None
    for module in wanted or dict.fromkeys(m for modules, _ in COMMANDS.values() for m in modules):
        if module not in _loaded:
            _loaded.add(module)
            import_module(f".{module}", __name__).register(cli)
    hub = cli.commands.get("hub")
    if "_device_cmds" in _loaded and isinstance(hub, click.Group) and "repin" not in hub.commands:
        import_module("._device_cmds", __name__).register_repin(cli)


def _fail(message: str, hint: str | None = None, code: int = 1) -> NoReturn:
    from ._common import err_console
    from ._output import escape

    # soft_wrap: an error is one line however long (a fingerprint is 95 characters); the
    # terminal wraps it, so a script reading the first line of stderr gets all of it.
    err_console.print(
        f"[bold red]error:[/bold red] {escape(message)}", markup=True, highlight=False, soft_wrap=True
    )
    if hint:
        err_console.print(f"hint: {hint}", markup=False, highlight=False, soft_wrap=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Run the command line; errors become one line on stderr and a non-zero exit."""
    # pydantic looks for plugins (scanning every installed package's entry points, ~15 ms) the
    # first time it builds an action's schema; a command line has none to load. Set
    # PYDANTIC_DISABLE_PLUGINS yourself (to "" or a list) to have them.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        cli.main(args=argv, prog_name="truthvault", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail("aborted", code=130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except TruthvaultError as exc:
        _fail(exc.message, exc.hint)
    except KeyboardInterrupt:
        _fail("interrupted", code=130)
    except OSError as exc:
        _fail(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
    except Exception as exc:
        # sqlite3 is looked for, not imported: a command that never opened the vault loaded none
        sqlite3 = sys.modules.get("sqlite3")
        if sqlite3 is not None and isinstance(exc, sqlite3.Error):
            _fail(f"the vault's database failed: {exc}", "is another process holding it, or the disk full?")
        # A bug, not bad input: still one line, with the traceback on request.
        if os.environ.get("TRUTHVAULT_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        _fail(
            f"internal error: {type(exc).__name__}" + (f": {first}" if first else ""),
            "this is a bug in truthvault; run again with TRUTHVAULT_DEBUG=1 to see where it happened",
        )
