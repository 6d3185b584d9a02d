"""``truthvault action``: the kernel's actions, listed, described and run by name."""

from __future__ import annotations

import sys

import click

from ..errors import InvalidInput
from ._common import json_option, open_vault, out, print_json, run_action, table
from ._output import Cell

__all__ = ["register"]


def _input(text: str) -> dict[str, object]:
    import msgspec

    raw = sys.stdin.read() if text == "-" else text
    try:
        data = msgspec.json.decode(raw.encode())
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"--input is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"--input must be a JSON object, got {type(data).__name__}")
    return data


def register(cli: click.Group) -> None:
    """Add ``action list|show|run``."""

    @cli.group()
    def action() -> None:
        """The governed actions: every write goes through one, under policy, approvals and audit."""

    @action.command("list")
    @json_option
    def action_list(as_json: bool) -> None:
        """List the actions this device runs, with contract version and risk."""
        from ..sync import device_kernel

        with open_vault() as vault:
            specs = list(device_kernel(vault).registry)
        if as_json:
            print_json(
                [
                    {"name": s.name, "version": s.version, "risk": str(s.risk), "summary": s.summary}
                    for s in specs
                ]
            )
            return
        rows: list[list[Cell]] = [[s.name, s.version, str(s.risk), s.summary] for s in specs]
        out.print(table(None, ["action", "version", "risk", "what it does"], rows, squeeze=3))

    @action.command("show")
    @click.argument("name")
    def action_show(name: str) -> None:
        """Print an action's contract: its input and output as JSON Schema, version and risk."""
        from ..sync import device_kernel

        with open_vault() as vault:
            print_json(device_kernel(vault).spec(name).schema())

    @action.command("run")
    @click.argument("name")
    @click.option(
        "--input",
        "input_",
        default="{}",
        metavar="JSON|-",
        help="The input as a JSON object ('-' reads stdin).",
    )
    @click.option("--source", help="Who acts (default user:cli); the truth level follows from it.")
    @click.option(
        "--approval", metavar="ID", help="Redeem this approved request (see 'truthvault approvals')."
    )
    def action_run(name: str, input_: str, source: str | None, approval: str | None) -> None:
        """Run action NAME with --input; prints its result as JSON."""
        params = _input(input_)
        with open_vault() as vault:
            result = run_action(vault, name, params, source, approval=approval)
        print_json(result.model_dump(mode="json"))
