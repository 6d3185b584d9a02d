"""``truthvault ai provider add|list|remove|test``: the AI providers this device may use.

A provider's level is where it runs, as configured here (``--where local`` L3, ``lan`` LN4,
``cloud`` C5), never what its server says. Its API key is read from a file, from
$TRUTHVAULT_AI_API_KEY, or asked for hidden; it is kept in a 0600 file beside the vault and
never printed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ._common import home_dir, interactive, json_option, out, print_json, table

if TYPE_CHECKING:
    from ._output import Struck

__all__ = ["register"]

_KEY_ENV = "TRUTHVAULT_AI_API_KEY"


def _read_key(key_file: Path | None, where: str) -> str | None:
    """The API key: from ``key_file``, the environment, or asked for (hidden); None for none."""
    from ..errors import InvalidInput

    if key_file is not None:
        try:
            key = key_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read the API key file {key_file}: {exc.__class__.__name__}") from None
        if not key:
            raise InvalidInput(f"the API key file {key_file} is empty")
        return key
    env = os.environ.get(_KEY_ENV, "").strip()
    if env:
        return env
    if interactive():
        prompt = "API key" + (" (empty: none)" if where != "cloud" else "")
        key = click.prompt(prompt, default="", hide_input=True, show_default=False).strip()
        return key or None
    return None


def register(cli: click.Group) -> None:
    """Add ``ai`` and its ``provider`` commands."""

    @cli.group("ai")
    def ai() -> None:
        """AI writers at their truth level: on this device (L3), the LAN (LN4) or the cloud (C5)."""

    from ._ai_write_cmds import add_writer_commands

    add_writer_commands(ai)

    @ai.group("provider")
    def provider() -> None:
        """The OpenAI-compatible providers AI may use, each writing at the level of where it runs."""

    @provider.command("add")
    @click.argument("name")
    @click.option("--url", required=True, help="The API's base URL, e.g. http://127.0.0.1:11434/v1.")
    @click.option("--model", required=True, help="The model to ask for, e.g. llama3.1:8b.")
    @click.option(
        "--where",
        type=click.Choice(["local", "lan", "cloud"]),
        required=True,
        help="Where it runs: this device (L3), the LAN (LN4), the cloud (C5). This, not the server, sets its level.",
    )
    @click.option(
        "--provider", "label", default=None, help="A cloud provider's label in its source (default: NAME)."
    )
    @click.option("--timeout", type=click.FloatRange(0, 600, min_open=True), default=60.0, show_default=True)
    @click.option(
        "--api-key-file",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=f"Read the API key from this file (else ${_KEY_ENV}, else asked for at a terminal).",
    )
    @json_option
    def provider_add(
        name: str,
        url: str,
        model: str,
        where: str,
        label: str | None,
        timeout: float,
        api_key_file: Path | None,
        as_json: bool,
    ) -> None:
        """Add provider NAME: where it runs sets the level it writes at."""
        from ..ai import Provider, Providers

        fields: dict[str, object] = {"name": name, "url": url, "model": model, "where": where}
        fields["timeout_s"] = timeout
        if label is not None:
            fields["provider"] = label
        checked = Provider.configure(**fields)  # bad input is refused before a key is asked for
        key = _read_key(api_key_file, where)
        added = Providers(home_dir()).add(
            checked if key is None else Provider.configure(**fields, api_key=key)
        )
        if as_json:
            print_json(added.to_dict())
            return
        keyed = "with an API key" if added.api_key is not None else "without an API key"
        out.print(
            f"added AI provider {added.name} ({keyed}): writes at {added.level.short} as {added.source}"
        )

    @provider.command("list")
    @json_option
    def provider_list(as_json: bool) -> None:
        """List the providers: where each runs, its source and level (never its key)."""
        from ..ai import Providers

        providers = Providers(home_dir()).list()
        if as_json:
            print_json([p.to_dict() for p in providers])
            return
        if not providers:
            out.print("no AI providers (add one with 'truthvault ai provider add')")
            return
        rows: list[list[str | Struck]] = [
            [p.name, p.where, p.level.short, p.source, p.url] for p in providers
        ]
        out.print(table(None, ["name", "where", "level", "source", "url"], rows, squeeze=4))

    @provider.command("remove")
    @click.argument("name")
    def provider_remove(name: str) -> None:
        """Forget provider NAME and its API key."""
        from ..ai import Providers

        Providers(home_dir()).remove(name)
        out.print(f"removed AI provider {name}")

    @provider.command("test")
    @click.argument("name")
    @json_option
    def provider_test(name: str, as_json: bool) -> None:
        """Try provider NAME: list its models, send a tiny chat, say the level it would write at."""
        from ..ai import Providers, check_provider

        check = check_provider(Providers(home_dir()).get(name))
        if as_json:
            print_json(check.to_dict())
            return
        if check.models is None:
            out.print(f"{name}: lists no models")
        else:
            out.print(
                f"{name}: {len(check.models)} model(s) in {check.models_ms:.0f} ms: {', '.join(check.models[:10])}"
            )
        claimed = (
            f" (the server says model {check.answer.model_claimed!r})" if check.answer.model_claimed else ""
        )
        out.print(
            f"chat answered in {check.chat_ms:.0f} ms{claimed}: {check.answer.text.strip()[:60]!r}",
            markup=False,
        )
        out.print(f"writes at {check.level.short} as {check.source}")
