"""What every command shares: where the vault lives, output, and the one error boundary."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click
import msgspec

from ..errors import ConflictState, InvalidInput, NotFound, TruthvaultError
from ..model import Record, SyncItem
from ..truth import TruthLevel

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

__all__ = [
    "confirm",
    "err_console",
    "home_dir",
    "hub_client",
    "interactive",
    "json_option",
    "open_vault",
    "out",
    "pin_hub",
    "pin_option",
    "plural",
    "print_json",
    "summary",
]

#: Control characters (C0 but tab and newline, DEL, C1) and the bidirectional overrides, each shown
#: as U+FFFD: text synced from any device of the tenant must never drive the user's terminal
#: (an escape sequence can set the title, clear the screen or, on some terminals, write the
#: clipboard) nor reorder what the user reads.
_UNPRINTABLE = {
    code: "\ufffd"
    for code in [
        *range(0x00, 0x09),
        *range(0x0B, 0x20),
        *range(0x7F, 0xA0),
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    ]
}


def _console(**options: Any) -> Console:
    """A console that takes no markup from text unless asked (``markup=True``, for the CLI's own
    messages) and shows no control character: what it prints comes from other devices."""
    from rich.console import Console

    class _Console(Console):
        def render_str(self, text: str, **kwargs: Any) -> Text:
            return super().render_str(text.translate(_UNPRINTABLE), **kwargs)

    return _Console(**options)


class _LazyConsole:
    """A console made when first used: Rich costs tens of milliseconds to import, which
    ``--version``, ``--help`` and commands that print JSON need not pay."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._made: Console | None = None

    def real(self) -> Console:
        if self._made is None:
            self._made = _console(**self._options)
        return self._made

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real(), name)


def real_console(console: Console) -> Console:
    """The Rich console behind ``out`` or ``err_console`` (for Rich objects that take one)."""
    return console.real() if isinstance(console, _LazyConsole) else console


# emoji off: rich would turn ":AB:" in a certificate fingerprint (or any id) into a picture.
# markup off: "[/]" in a note would break every listing; the few styled lines say markup=True
# and put only ids (which hold no brackets) into the markup.
out = cast("Console", _LazyConsole(highlight=False, soft_wrap=True, emoji=False, markup=False))
err_console = cast("Console", _LazyConsole(stderr=True, highlight=False, emoji=False, markup=False))

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")

pin_option = click.option(
    "--pin",
    default=None,
    metavar="SHA256",
    help="The https hub certificate's SHA-256 fingerprint ('hub serve' prints it): refuse any other. "
    "Either way an https hub's certificate is pinned from now on.",
)


def home_dir() -> Path:
    """$TRUTHVAULT_HOME, or the platform's user data folder."""
    env = os.environ.get("TRUTHVAULT_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("truthvault"))


@contextmanager
def open_vault(*, create: bool = False) -> Iterator[Any]:
    """Open the vault in the home folder; NotFound (with a hint) if there is none yet."""
    from ..vault import Vault

    home = home_dir()
    if not create and not (home / "vault.db").exists():
        raise NotFound(f"no vault at {home}", hint="create one with 'truthvault init'")
    vault = Vault.open(home, source="user:cli")
    try:
        yield vault
    finally:
        vault.close()


def hub_client(vault: Any) -> Any:
    """A HubClient for the hub this vault is joined to: signing if enrolled, else with its token."""
    from ..sync import HubClient

    if vault.replica.hub_url and vault.replica.key_path:
        from ..crypto import DeviceKeys

        return HubClient(
            vault.replica.hub_url,
            keys=DeviceKeys.load(vault.replica.key_path),
            device_id=vault.device_id,
            cert_pem=vault.replica.hub_cert,
        )
    if not vault.replica.hub_url or not vault.replica.hub_token:
        raise ConflictState(
            "this vault is not joined to a hub",
            hint="enrol it with 'truthvault enroll --hub URL --code CODE' "
            "(or, for a script: 'truthvault init --hub URL --tenant NAME --token -')",
        )
    return HubClient(vault.replica.hub_url, vault.replica.hub_token, cert_pem=vault.replica.hub_cert)


def confirm(question: str, yes: bool, what: str) -> None:
    """Go on only if ``yes`` (--yes) or the user agrees at a terminal; ``what`` names the action."""
    if yes:
        return
    if not interactive():
        raise InvalidInput(
            f"{what} needs confirmation", hint="run it at a terminal to be asked, or pass --yes"
        )
    if not click.confirm(question, default=False):
        raise TruthvaultError(f"{what}: not confirmed, nothing changed")


def interactive() -> bool:
    """Whether a person can be asked: stdin is a terminal."""
    return sys.stdin.isatty()


def pin_hub(hub_url: str, pin: str | None) -> str | None:
    """An https hub's certificate (PEM) to pin, checked against ``pin``; None for plain HTTP."""
    if not hub_url.lower().startswith("https://"):
        if pin:
            raise InvalidInput(
                "--pin needs an https:// hub URL", hint="serve the hub with --tls-cert and --tls-key"
            )
        return None
    from ..sync import pin_certificate

    pem, fingerprint = pin_certificate(hub_url, pin)
    out.print(
        f"hub certificate SHA256 {fingerprint}" + (" (matches --pin)" if pin else " (pinned on first use)")
    )
    return pem


def plain(obj: Any) -> Any:
    """Plain data for JSON output: every field of a struct (defaults too), payloads decoded."""
    if isinstance(obj, msgspec.Raw):
        return msgspec.json.decode(obj)
    if isinstance(obj, msgspec.Struct):
        fields = {name: plain(getattr(obj, name)) for name in obj.__struct_fields__}
        # push and pull numbers belong to the wire, not to what a user looks at
        return {k: v for k, v in fields.items() if not (k in ("mutation", "seq") and v is None)}
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return plain(dataclasses.asdict(obj))
    return obj


def print_json(data: Any) -> None:
    """Print data (wire structs included) as indented JSON on stdout."""
    text = msgspec.json.format(msgspec.json.encode(plain(data)), indent=2)
    sys.stdout.write(text.decode() + "\n")


def plural(count: float, word: str, many: str | None = None) -> str:
    """A count with its noun in the right number: ``1 entity``, ``1,203 entities``, ``2.5 minutes``."""
    if count == 1:
        noun = word
    elif many is not None:
        noun = many
    elif word.endswith("y") and word[-2:-1] not in ("a", "e", "i", "o", "u"):
        noun = word[:-1] + "ies"
    else:
        noun = word + "s"
    number = f"{count:,}" if isinstance(count, int) else f"{count:,g}"
    return f"{number} {noun}"


def level_name(level: int) -> str:
    return TruthLevel(level).short


def summary(item: SyncItem, width: int = 60) -> str:
    """A one-line gist of an entity's payload."""
    try:
        payload = msgspec.json.decode(item.payload)
    except msgspec.DecodeError:
        return "<unreadable payload>"
    if not isinstance(payload, dict):
        return str(payload)[:width]
    for key in ("title", "text", "name", "command", "body"):
        value = payload.get(key)
        if isinstance(value, str) and value:
            text = value
            break
    else:
        text = msgspec.json.encode(payload).decode()
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _struck(word: str) -> Text:
    from rich.text import Text

    return Text(word, style="strike")


def entity_table(items: list[SyncItem], title: str | None = None) -> Table:
    """A table of entities (ids in full: commands take them)."""
    wide = out.width >= 110
    rows = []
    for item in items:
        level = level_name(item.truth_level) + (" ✓" if item.accepted_by_user else "")
        what: str | Text = _struck("deleted") if item.deleted else summary(item)
        row = [item.entity_id, item.entity_type, level, what]
        if wide:
            row.append(item.last_modified_at[:16].replace("T", " "))
        rows.append(row)
    headers = ["id", "type", "level", "what", *(["modified"] if wide else [])]
    return _table(title, headers, rows, squeeze=3)


def record_table(records: list[Record], title: str | None = None) -> Table:
    """A table of suggestions or conflict records (record ids in full: commands take them)."""
    wide = out.width >= 130
    rows = []
    for record in records:
        item = record.item
        what: str | Text = _struck("delete") if item.deleted else summary(item, 50)
        if wide:
            source = f"{level_name(item.truth_level)} {item.origin_source}"
            rows.append([record.id, record.kind, record.entity_id, source, what, record.status])
        else:
            if record.status != "open":  # no status column here: say it where it matters
                what = f"({record.status}) {what}"
            rows.append([record.id, record.entity_id[:8] + "…", level_name(item.truth_level), what])
    headers = ["id", "kind", "entity", "from", "what", "status"] if wide else ["id", "entity", "from", "what"]
    return _table(title, headers, rows, squeeze=4 if wide else 3)


def _table(title: str | None, headers: list[str], rows: list[list[str | Text]], squeeze: int) -> Table:
    """A table that fits the terminal by cutting column ``squeeze`` short (with an ellipsis),
    never the others: Rich would otherwise narrow the small columns to nothing."""
    from rich.table import Table

    table = Table(title=title, header_style="bold")
    widths = [max([len(h), *(len(r[n]) for r in rows)]) for n, h in enumerate(headers)]
    # a table of n columns spends 3n + 1 characters on borders and padding
    room = out.width - 3 * len(headers) - 1 - sum(w for n, w in enumerate(widths) if n != squeeze)
    for n, header in enumerate(headers):
        if n == squeeze:
            table.add_column(header, overflow="ellipsis", no_wrap=True, max_width=max(12, room))
        else:
            table.add_column(header, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table
