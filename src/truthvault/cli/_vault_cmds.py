"""Commands on the local vault: write, read, search, decide on suggestions."""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING

import click

from ..errors import InvalidInput
from ._common import (
    entity_action,
    entity_table,
    err_console,
    home_dir,
    json_option,
    level_name,
    open_vault,
    out,
    plural,
    print_json,
    record_action,
    record_table,
    write_action,
)

if TYPE_CHECKING:
    from ..vault import Written

__all__ = ["register"]

source_option = click.option(
    "--source",
    default="user:cli",
    show_default=True,
    help="Who is writing: user:*, automation:<rule>, ai-local:<model>, ai-lan:<model>, ai-cloud:<provider/model>. "
    "The truth level follows from it.",
)


def _parse_json_object(text: str, what: str) -> dict[str, object]:
    import msgspec

    try:
        value = msgspec.json.decode(text.encode())
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidInput(f"{what}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise InvalidInput(f"{what}: must be a JSON object")
    return value


def _parse_fields(fields: tuple[str, ...]) -> dict[str, object]:
    """key=value pairs; a value that parses as JSON (number, true, [..]) is taken as such."""
    import msgspec

    result: dict[str, object] = {}
    for field in fields:
        key, sep, raw = field.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--set {field!r}: expected key=value")
        try:
            result[key] = msgspec.json.decode(raw.encode())
        except msgspec.DecodeError:
            result[key] = raw
    return result


def _report(result: Written, as_json: bool) -> None:
    """Say what a write action did (its output: outcome, record_id, item)."""
    from ..truth import Outcome

    if as_json:
        print_json({"outcome": result.outcome, "record_id": result.record_id, "item": result.item})
        return
    item = result.item
    if result.outcome == Outcome.SUGGESTION:
        out.print(
            f"kept as a suggestion [bold]{result.record_id}[/bold] for {item.entity_id} "
            f"({level_name(item.truth_level)} cannot replace higher truth; "
            f"'truthvault accept {result.record_id}' makes it yours)",
            markup=True,
        )
    elif result.outcome == Outcome.CONFLICT:
        # Only when the vault holds a version stamped later than this machine's clock.
        out.print(
            f"kept as a conflict [bold]{result.record_id}[/bold] for {item.entity_id}: the vault holds a "
            f"later version; 'truthvault conflicts resolve {result.record_id} --restore' makes this one current",
            markup=True,
        )
    else:
        verb = "deleted" if item.deleted else "saved"
        out.print(
            f"{verb} {item.entity_type} [bold]{item.entity_id}[/bold] ({level_name(item.truth_level)})",
            markup=True,
        )


#: entities ``list`` shows unless --limit or --all says otherwise
_LIST_LIMIT = 50


def _say_part_shown(offset: int, shown: int, total: int) -> None:
    """Tell (on stderr, so --json output stays clean) that a listing shows only part of the matches."""
    where = f"{shown:,}" if not offset else f"{offset + 1:,}-{offset + shown:,}"
    more = offset + shown < total
    err_console.print(
        f"{where} of {total:,} shown"
        + (
            f"; --offset {offset + shown} for the next page, --limit N for longer ones, --all for every one"
            if more
            else ""
        ),
        markup=False,
        soft_wrap=True,
    )


def register(cli: click.Group) -> None:
    """Add the vault commands to the top-level group."""

    @cli.group()
    def note() -> None:
        """Notes: free text, at user level unless --source says otherwise."""

    @note.command("add")
    @click.argument("text")
    @click.option("--title", help="A title for the note.")
    @click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
    @source_option
    @json_option
    def note_add(text: str, title: str | None, tags: tuple[str, ...], source: str, as_json: bool) -> None:
        """Add a note."""
        payload: dict[str, object] = {"text": text}
        if title:
            payload["title"] = title
        if tags:
            payload["tags"] = list(tags)
        with open_vault() as vault:
            _report(write_action(vault, "notes.create", payload, source), as_json)

    @cli.group()
    def task() -> None:
        """Tasks: things to do."""

    @task.command("add")
    @click.argument("title")
    @click.option("--due", help="When it is due (free text or an ISO date).")
    @source_option
    @json_option
    def task_add(title: str, due: str | None, source: str, as_json: bool) -> None:
        """Add a task."""
        payload: dict[str, object] = {"title": title}
        if due:
            payload["due"] = due
        with open_vault() as vault:
            _report(write_action(vault, "tasks.create", payload, source), as_json)

    @cli.command()
    @click.argument("entity_type")
    @click.argument("data", required=False)
    @click.option("--set", "fields", multiple=True, metavar="KEY=VALUE", help="A payload field (repeatable).")
    @click.option("--id", "entity_id", help="Write this entity id (default: a new one).")
    @source_option
    @json_option
    def put(
        entity_type: str,
        data: str | None,
        fields: tuple[str, ...],
        entity_id: str | None,
        source: str,
        as_json: bool,
    ) -> None:
        """Write an entity of any type. DATA is a JSON object ('-' reads it from stdin).

        Writing as a lower level (--source ai-...) over something you wrote keeps it as a
        suggestion; only 'accept', your own edit or 'entity upgrade-truth' make it yours.
        """
        payload: dict[str, object] = {}
        if data is not None:
            payload = _parse_json_object(sys.stdin.read() if data == "-" else data, "DATA")
        payload.update(_parse_fields(fields))
        with open_vault() as vault:
            params = {"type": entity_type, "data": payload, "id": entity_id}
            _report(write_action(vault, "entity.put", params, source), as_json)

    @cli.command("list")
    @click.option("--type", "entity_type", help="Only this entity type (any case).")
    @click.option("--level", type=click.IntRange(1, 5), help="Only this truth level (1=user ... 5=cloud AI).")
    @click.option(
        "--accepted/--not-accepted", default=None, help="Only entities the user has (not) accepted."
    )
    @click.option("--deleted", is_flag=True, help="Include tombstones.")
    @click.option(
        "--limit", type=click.IntRange(1), default=None, help=f"At most this many.  [default: {_LIST_LIMIT}]"
    )
    @click.option("--offset", type=click.IntRange(0), default=0, help="Skip this many first (to page).")
    @click.option("--all", "everything", is_flag=True, help="List every match (no --limit).")
    @json_option
    def list_(
        entity_type: str | None,
        level: int | None,
        accepted: bool | None,
        deleted: bool,
        limit: int | None,
        offset: int,
        everything: bool,
        as_json: bool,
    ) -> None:
        """List entities, newest first. When there are more than are shown, stderr says so."""
        if everything and limit is not None:
            raise InvalidInput("--all and --limit exclude each other: give one")
        limit = None if everything else limit or _LIST_LIMIT
        with open_vault() as vault:
            items = vault.list(
                entity_type=entity_type,
                level=level,
                accepted=accepted,
                include_deleted=deleted,
                limit=limit,
                offset=offset,
            )
            # Counted only when the page is full or not the first: the count reads every match.
            full = limit is not None and (len(items) == limit or offset)
            total = (
                vault.count(entity_type=entity_type, level=level, accepted=accepted, include_deleted=deleted)
                if full
                else None
            )
        if as_json:
            print_json(items)
        elif items:
            out.print(entity_table(items))
        elif offset:
            out.print(f"nothing past the first {plural(offset, 'match', 'matches')}")
        else:
            out.print("nothing here yet — try: truthvault note add 'hello'")
        if total is not None and items and (offset or offset + len(items) < total):
            _say_part_shown(offset, len(items), total)

    @cli.command()
    @click.argument("entity_id")
    @json_option
    def show(entity_id: str, as_json: bool) -> None:
        """Show one entity with its truth fields and open suggestions."""
        import msgspec

        from ..truth import TruthLevel

        with open_vault() as vault:
            item = vault.get(entity_id, include_deleted=True)
            pending = vault.records(entity_id=entity_id, status="open")
            if as_json:
                print_json({"item": item, "records": pending})
                return
            payload = msgspec.json.decode(item.payload)
            out.print(
                f"[bold]{item.entity_type} {item.entity_id}[/bold]"
                + ("  [red](deleted)[/red]" if item.deleted else ""),
                markup=True,
            )
            out.print(
                f"truth: {level_name(item.truth_level)} ({TruthLevel(item.truth_level).name.lower()}) "
                f"from {item.origin_source}; accepted by user: {'yes' if item.accepted_by_user else 'no'}"
            )
            out.print(f"version {item.version}, modified {item.last_modified_at} by device {item.device_id}")
            for step in item.origin_chain:
                out.print(
                    f"  came from {level_name(step.level)} {step.source} at {step.at}"
                    + (f" ({step.ref})" if step.ref else "")
                )
            print_json(payload)
            if pending:
                out.print(record_table(pending, title="open suggestions and conflicts"))

    @cli.command()
    @click.argument("entity_id")
    @click.argument("data", required=False)
    @click.option(
        "--set", "fields", multiple=True, metavar="KEY=VALUE", help="Change one payload field (repeatable)."
    )
    @click.option("--replace", is_flag=True, help="Replace the whole payload with DATA instead of merging.")
    @source_option
    @json_option
    def edit(
        entity_id: str, data: str | None, fields: tuple[str, ...], replace: bool, source: str, as_json: bool
    ) -> None:
        """Change an entity. A user edit of AI or automation content makes it user truth."""
        changes: dict[str, object] = {}
        if data is not None:
            changes = _parse_json_object(sys.stdin.read() if data == "-" else data, "DATA")
        changes.update(_parse_fields(fields))
        if data is None and not fields:
            # --replace alone would empty the payload: that takes an explicit '{}'.
            raise InvalidInput(
                "nothing to change: give DATA or --set key=value",
                hint="to empty the payload, pass '{}' --replace" if replace else None,
            )
        with open_vault() as vault:
            params = {"id": entity_id, "changes": changes, "replace": replace}
            _report(write_action(vault, "entity.edit", params, source), as_json)

    @cli.command()
    @click.argument("entity_id")
    @source_option
    @json_option
    def delete(entity_id: str, source: str, as_json: bool) -> None:
        """Delete an entity (a tombstone that syncs). Below user level it is only a suggestion."""
        with open_vault() as vault:
            _report(write_action(vault, "entity.delete", {"id": entity_id}, source), as_json)

    @cli.command()
    @click.argument("query")
    @click.option("--limit", type=click.IntRange(1), default=20, show_default=True)
    @click.option(
        "--fts",
        is_flag=True,
        help='QUERY is SQLite FTS5 syntax: "phrases", AND / OR / NOT, NEAR(...), prefix*.',
    )
    @json_option
    def search(query: str, limit: int, fts: bool, as_json: bool) -> None:
        """Full-text search over the text of every entity: entities holding every word of QUERY.

        Words are searched as typed (e-mail, ada@example.com and C++ are words, not syntax);
        a word ending in * matches as a prefix.
        """
        with open_vault() as vault:
            items = vault.search(query, limit=limit, fts=fts)
            if as_json:
                print_json(items)
            elif items:
                out.print(entity_table(items))
            else:
                out.print(f"no matches for {query!r}")

    @cli.command()
    @click.option("--entity", "entity_id", help="Only suggestions for this entity.")
    @click.option(
        "--status",
        type=click.Choice(["open", "accepted", "rejected", "all"]),
        default="open",
        show_default=True,
    )
    @json_option
    def suggestions(entity_id: str | None, status: str, as_json: bool) -> None:
        """Suggestions: what automations and AI proposed against higher truth."""
        with open_vault() as vault:
            found = vault.records(
                kind="suggestion", status=None if status == "all" else status, entity_id=entity_id
            )
            if as_json:
                print_json(found)
            elif found:
                out.print(record_table(found))
            else:
                out.print("no suggestions")

    @cli.command()
    @click.argument("suggestion_id")
    @click.option(
        "--force",
        is_flag=True,
        help="When the entity changed since the suggestion and the vault cannot tell what the "
        "suggestion changed, lay all its fields over the current ones.",
    )
    @json_option
    def accept(suggestion_id: str, force: bool, as_json: bool) -> None:
        """Accept a suggestion: it is merged in and becomes user truth (U1).

        What the suggestion changed is applied; edits you made to other fields since it was
        made are kept.
        """
        with open_vault() as vault:
            item = entity_action(vault, "suggestion.accept", {"id": suggestion_id, "force": force})
            if as_json:
                print_json(item)
            else:
                out.print(
                    f"accepted: {item.entity_type} [bold]{item.entity_id}[/bold] is user truth now (U1)",
                    markup=True,
                )

    @cli.command()
    @click.argument("suggestion_id")
    @json_option
    def reject(suggestion_id: str, as_json: bool) -> None:
        """Reject a suggestion; it stays retrievable with status rejected."""
        with open_vault() as vault:
            record = record_action(vault, "suggestion.reject", {"id": suggestion_id})
            if as_json:
                print_json(record)
            else:
                out.print(f"rejected suggestion {record.id} for {record.entity_id}")

    @cli.group()
    def entity() -> None:
        """Operations on one entity."""

    @entity.command("upgrade-truth")
    @click.argument("entity_id")
    @json_option
    def upgrade_truth(entity_id: str, as_json: bool) -> None:
        """Confirm AI or automation content as your own: it becomes user truth (U1)."""
        with open_vault() as vault:
            item = entity_action(vault, "entity.upgrade_truth", {"id": entity_id})
            if as_json:
                print_json(item)
            else:
                out.print(
                    f"{item.entity_type} [bold]{item.entity_id}[/bold] is user truth now (U1)",
                    markup=True,
                )

    @cli.command()
    @click.option("--limit", type=click.IntRange(1), default=30, show_default=True)
    @click.option("--type", "event_type", help="Only this event type, in any case (e.g. truth_upgrade).")
    @click.option(
        "--hub",
        "from_hub",
        is_flag=True,
        help="Show the hub's sync events (with the device of each) instead of this device's.",
    )
    @json_option
    def events(limit: int, event_type: str | None, from_hub: bool, as_json: bool) -> None:
        """Events, newest first: truth upgrades, suggestions, conflicts, syncs."""
        import dataclasses

        from rich.table import Table

        from ..sync import connect

        with open_vault() as vault:
            if from_hub:
                with connect(vault) as client:
                    rows = client.events(limit=limit, type=event_type, newest_first=True)
            else:
                rows = [dataclasses.asdict(e) for e in vault.events(limit=limit, type=event_type)]
        if as_json:
            print_json(rows)
            return
        table = Table(header_style="bold")
        columns = ("at", "type", *(("device",) if from_hub else ()), "entity", "detail")
        for col in columns:
            table.add_column(col)
        for row in rows:
            detail = row.get("detail") or {}
            device = (row.get("device_name") or row.get("device_id") or "",) if from_hub else ()
            table.add_row(
                str(row.get("at", ""))[:23],
                str(row.get("type", "")),
                *(str(d) for d in device),
                str(row.get("entity_id") or ""),
                ", ".join(f"{k}={v}" for k, v in detail.items()) if isinstance(detail, dict) else str(detail),
            )
        out.print(table if rows else f"no {event_type.upper()} events" if event_type else "no events yet")

    @cli.command("import")
    @click.argument("source", type=click.File("rb"))
    @click.option("--no-push", is_flag=True, help="Do not queue the imported entities for the hub.")
    @json_option
    def import_(source: IO[bytes], no_push: bool, as_json: bool) -> None:
        """Import entities from JSON Lines (one SyncItem a line; '-' reads stdin).

        All or nothing: a bad line (named in the error) imports nothing. It runs the action
        entity.import: policy decides, and one audit entry records it.
        """
        from ._progress import progress_bar

        with open_vault() as vault, progress_bar("importing", unit="entities") as advance:
            count = vault.import_jsonl(source, queue_for_push=not no_push, progress=advance)
        if as_json:
            print_json({"imported": count, "vault": str(home_dir())})
        else:
            out.print(f"imported {plural(count, 'entity')} into {home_dir()}")

    @cli.command("export")
    @click.argument("target", type=click.File("wb"), default="-")
    @click.option("--live", is_flag=True, help="Leave tombstones out.")
    def export_(target: IO[bytes], live: bool) -> None:
        """Export every entity with its truth fields as JSON Lines ('-' or nothing: stdout)."""
        with open_vault() as vault:
            count = vault.export_jsonl(target, include_deleted=not live)
        click.echo(f"exported {plural(count, 'entity')}", err=True)
