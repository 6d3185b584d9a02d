"""Commands on entity contracts: the versioned JSON Schema of each entity type."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import InvalidInput
from ._common import json_option, open_vault, out, print_json, run_action
from ._output import Grid, Struck

if TYPE_CHECKING:
    from ..kernel import Contract

__all__ = ["register"]


def _read_schema(file: str) -> object:
    import msgspec

    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"FILE: cannot read {file!r} ({exc.strerror})") from None
    try:
        return msgspec.json.decode(text.encode())
    except msgspec.DecodeError as exc:
        raise InvalidInput(f"FILE: not valid JSON ({exc})") from None


def _table(found: list[Contract]) -> Grid:
    rows: list[list[str | Struck]] = []
    for c in found:
        fields = sorted(c.schema.get("properties", {}))
        required = set(c.schema.get("required", ()))
        said = ", ".join(f"{f}*" if f in required else f for f in fields)
        rows.append([c.entity_type, str(c.version), str(c.major), said or "-"])
    return Grid(["type", "version", "major", "fields (* required)"], rows, squeeze=3, squeeze_width=60)


def register(cli: click.Group) -> None:
    """Add the contract commands to the top-level group."""

    @cli.group()
    def contract() -> None:
        """Entity contracts: each entity type's versioned JSON Schema, checked on every write."""

    @contract.command("list")
    @json_option
    def contract_list(as_json: bool) -> None:
        """Every version of every type's contract (types without one are free-form)."""
        with open_vault() as vault:
            found = vault.contracts.list()
        if as_json:
            print_json([c.to_dict() for c in found])
            return
        out.print(_table(found))

    @contract.command("show")
    @click.argument("entity_type", metavar="TYPE")
    @click.option("--version", "version", type=click.IntRange(min=1), help="A version (default: the newest).")
    def contract_show(entity_type: str, version: int | None) -> None:
        """Print a type's contract as its JSON Schema."""
        with open_vault() as vault:
            found = vault.contracts.get(entity_type, version)
        print_json(dict(found.schema))

    @contract.command("add")
    @click.argument("entity_type", metavar="TYPE")
    @click.argument("file", metavar="FILE")
    @click.option("--major", is_flag=True, help="A new major version: breaking changes are allowed.")
    @click.option(
        "--source", default="user:cli", show_default=True, help="Who adds it: a user source (level 1)."
    )
    @json_option
    def contract_add(entity_type: str, file: str, major: bool, source: str, as_json: bool) -> None:
        """Add the next version of TYPE's contract from the JSON Schema in FILE ('-': stdin).

        It is checked for breaking changes (a removed field, a changed type, a new required
        field, a narrowed enum, a tightened bound) against the newest version and, when this
        vault is joined to a hub, every version a device of the tenant writes under; a breaking
        one is refused unless --major. The hub passes it on to the other devices at their sync.
        """
        schema = _read_schema(file)
        with open_vault() as vault:
            params = {"type": entity_type, "schema": schema, "major": major}
            taken = run_action(vault, "contract.add", params, source).model_dump()
            added = vault.contracts.get(str(taken["type"]), int(taken["version"]))
        if as_json:
            print_json(added.to_dict())
            return
        out.print(f"added {added.entity_type} contract v{added.version} (major {added.major})")
