"""What every command shares: where the vault lives, output, and the one error boundary."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import InvalidInput, NotFound, TruthvaultError
from ._output import Grid, Output, Struck

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ..model import Record, SyncItem
    from ..vault import Vault, VaultRecord, Written

__all__ = [
    "confirm",
    "entity_action",
    "err_console",
    "home_dir",
    "interactive",
    "json_option",
    "open_vault",
    "out",
    "pin_hub",
    "pin_option",
    "plural",
    "print_json",
    "record_action",
    "run_action",
    "summary",
    "table",
    "write_action",
]

out = Output(soft_wrap=True)
err_console = Output(stderr=True)

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
def open_vault(*, create: bool = False) -> Iterator[Vault]:
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


def run_action(
    vault: Vault,
    name: str,
    params: Mapping[str, object],
    source: str | None = None,
    approval: str | None = None,
) -> BaseModel:
    """Run a device action through the kernel (the one governed path for writes) as
    ``source``, or as the vault's own source. The vault's own actions need no hub code; the
    others (policy, devices, keys) are the sync layer's."""
    if name in vault.kernel.registry:
        return vault.kernel.run(name, params, actor=vault.actor(source), approval=approval)
    from ..sync import device_kernel

    return device_kernel(vault).run(name, params, actor=vault.actor(source), approval=approval)


def write_action(vault: Vault, name: str, params: Mapping[str, object], source: str | None = None) -> Written:
    """Run a write action; its result says what became of the version written."""
    from ..vault import Written

    result = run_action(vault, name, params, source)
    assert isinstance(result, Written), result
    return result


def entity_action(vault: Vault, name: str, params: Mapping[str, object]) -> SyncItem:
    """Run an action that answers one entity; that entity's version."""
    from ..vault import EntityResult

    result = run_action(vault, name, params)
    assert isinstance(result, EntityResult), result
    return result.item


def record_action(vault: Vault, name: str, params: Mapping[str, object]) -> VaultRecord:
    """Run an action that answers a kept record; that record."""
    from ..vault import RecordResult

    result = run_action(vault, name, params)
    assert isinstance(result, RecordResult), result
    return result.record


def plain(obj: object) -> object:
    """Plain data for JSON output: every field of a struct (defaults too), payloads decoded."""
    from ..payload import plain as to_plain

    return to_plain(obj)


def print_json(data: object) -> None:
    """Print data (wire structs included) as indented JSON on stdout."""
    import msgspec

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
    """A truth level's short name (U1, A2, L3, LN4, C5)."""
    from ..truth import TruthLevel

    return TruthLevel(level).short


def summary(item: SyncItem, width: int = 60) -> str:
    """A one-line gist of an entity's payload."""
    import msgspec

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


def entity_table(items: Sequence[SyncItem], title: str | None = None) -> Grid:
    """A table of entities (ids in full: commands take them)."""
    wide = out.width >= 110
    rows = []
    for item in items:
        level = level_name(item.truth_level) + (" ✓" if item.accepted_by_user else "")
        what: str | Struck = Struck("deleted") if item.deleted else summary(item)
        row = [item.entity_id, item.entity_type, level, what]
        if wide:
            row.append(item.last_modified_at[:16].replace("T", " "))
        rows.append(row)
    headers = ["id", "type", "level", "what", *(["modified"] if wide else [])]
    return table(title, headers, rows, squeeze=3)


def record_table(records: Sequence[Record], title: str | None = None) -> Grid:
    """A table of suggestions or conflict records (record ids in full: commands take them)."""
    wide = out.width >= 130
    rows = []
    for record in records:
        item = record.item
        what: str | Struck = Struck("delete") if item.deleted else summary(item, 50)
        if wide:
            source = f"{level_name(item.truth_level)} {item.origin_source}"
            rows.append([record.id, record.kind, record.entity_id, source, what, record.status])
        else:
            if record.status != "open":  # no status column here: say it where it matters
                what = f"({record.status}) {_text(what)}"
            rows.append([record.id, record.entity_id[:8] + "…", level_name(item.truth_level), what])
    headers = ["id", "kind", "entity", "from", "what", "status"] if wide else ["id", "entity", "from", "what"]
    return table(title, headers, rows, squeeze=4 if wide else 3)


def table(title: str | None, headers: list[str], rows: list[list[str | Struck]], squeeze: int) -> Grid:
    """A table that fits the terminal by cutting column ``squeeze`` short (with an ellipsis),
    never the others: Rich would otherwise narrow the small columns to nothing."""
    widths = [max([len(h), *(len(_text(r[n])) for r in rows)]) for n, h in enumerate(headers)]
    # a table of n columns spends 3n + 1 characters on borders and padding
    room = out.width - 3 * len(headers) - 1 - sum(w for n, w in enumerate(widths) if n != squeeze)
    return Grid(headers, rows, title=title, squeeze=squeeze, squeeze_width=max(12, room))


def _text(cell: str | Struck) -> str:
    return cell.text if isinstance(cell, Struck) else cell
