"""The ``truthvault`` command: a thin layer over the library, with one error boundary."""

from __future__ import annotations

import os
import sqlite3
import sys

import click

from .. import __version__
from ..errors import TruthvaultError

__all__ = ["cli", "load_commands", "main"]


class _LazyGroup(click.Group):
    """The root group: its commands are loaded when one is looked up or listed, so that
    ``--version`` costs no import of the library behind them."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        load_commands()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        load_commands()
        return super().list_commands(ctx)


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


_loaded = False


def load_commands() -> None:
    """Add every command to the root group (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from . import _device_cmds, _hub_cmds, _sync_cmds, _up_cmd, _vault_cmds

    _vault_cmds.register(cli)
    _sync_cmds.register(cli)
    _device_cmds.register(cli)
    _hub_cmds.register(cli)
    _device_cmds.register_repin(cli)  # after the hub group it joins
    _up_cmd.register(cli)


def _fail(message: str, hint: str | None = None, code: int = 1) -> None:
    from rich.markup import escape

    from ._common import err_console

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
    except sqlite3.Error as exc:
        _fail(f"the vault's database failed: {exc}", "is another process holding it, or the disk full?")
    except OSError as exc:
        _fail(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
    except Exception as exc:
        # A bug, not bad input: still one line, with the traceback on request.
        if os.environ.get("TRUTHVAULT_DEBUG"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else ""
        _fail(
            f"internal error: {type(exc).__name__}" + (f": {first}" if first else ""),
            "this is a bug in truthvault; run again with TRUTHVAULT_DEBUG=1 to see where it happened",
        )
