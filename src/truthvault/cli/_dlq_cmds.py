"""``truthvault hub dlq list|show|retry|quarantine|discard`` (the hub's dead letters),
``truthvault dlq ...`` (this device's) and ``truthvault hub admin-token`` (the credential of the
hub's admin views, such as ``/diagz``).

Deciding a dead letter goes through a governed action (``dlq.retry``, ``dlq.quarantine``,
``dlq.discard``): policy, approvals, audit; at the hub, its tenant's. A workflow's dead letter is
retried by running the workflow again from its first step, as a new workflow, where
``truthvault hub serve`` runs (now, or at its next start).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from ._common import json_option, out, plural, print_json, table

if TYPE_CHECKING:
    from ..kernel import DeadLetter
    from ._output import Struck

__all__ = ["register", "register_hub"]

_STATUSES = ("open", "quarantined", "retried", "discarded")
_KINDS = ("workflow", "event", "automation")


def _show(letter: DeadLetter) -> None:
    out.print(f"dead letter {letter.id}: {letter.kind} {letter.ref}, {letter.status}")
    out.print(f"source: {letter.source}")
    out.print(f"error: {letter.error}")
    out.print(
        f"{plural(letter.attempts, 'attempt')}; first failed {letter.first_failed_at}, last {letter.last_failed_at}"
    )
    if letter.tenant_id:
        out.print(f"tenant: {letter.tenant_id}")
    if letter.changed_by:
        out.print(f"{letter.status} by {letter.changed_by} at {letter.changed_at}")
    if letter.retried_as:
        out.print(f"retried as {letter.retried_as}")
    if letter.note:
        out.print(f"note: {letter.note}")
    out.print("input (secrets masked):")
    out.print(json.dumps(letter.input, indent=2, sort_keys=True), markup=False)


def _print_list(letters: list[DeadLetter], as_json: bool) -> None:
    if as_json:
        print_json([x.to_dict() for x in letters])
        return
    rows: list[list[str | Struck]] = [
        [x.id[:8], x.status, x.kind, x.source, str(x.attempts), x.last_failed_at, x.error] for x in letters
    ]
    headers = ["id", "status", "kind", "source", "attempts", "last failed", "error"]
    out.print(table(None, headers, rows, squeeze=6) if rows else "no dead letters")


def _print_decided(letter: DeadLetter, verb: str, as_json: bool, where: str) -> None:
    if as_json:
        print_json(letter.to_dict())
    elif verb == "retry" and letter.retried_as:
        out.print(f"dead letter {letter.id[:8]} retried as {letter.retried_as} ({where})")
    else:
        out.print(f"dead letter {letter.id[:8]} {letter.status}")


_status_option = click.option(
    "--status", type=click.Choice(_STATUSES), help="Only dead letters in this state."
)
_kind_option = click.option("--kind", type=click.Choice(_KINDS), help="Only dead letters of this kind.")
_limit_option = click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
_note_option = click.option("--note", default=None, help="Why (kept with the dead letter).")


def register(cli: click.Group) -> None:
    """Add ``dlq`` (this device's dead letters)."""
    from ._common import open_vault, run_action

    @cli.group("dlq")
    def dlq() -> None:
        """This device's dead letters: what failed for good here, until you decide."""

    @dlq.command("list")
    @_status_option
    @_kind_option
    @_limit_option
    @json_option
    def dlq_list(status: str | None, kind: str | None, limit: int, as_json: bool) -> None:
        """List this device's dead letters, the latest failure first."""
        with open_vault() as vault:
            _print_list(vault.dead_letters.list(status=status, kind=kind, limit=limit), as_json)

    @dlq.command("show")
    @click.argument("dead_letter_id")
    @json_option
    def dlq_show(dead_letter_id: str, as_json: bool) -> None:
        """Show a dead letter (ID or its first characters): its error, source and input."""
        with open_vault() as vault:
            letter = vault.dead_letters.get(dead_letter_id)
        if as_json:
            print_json(letter.to_dict())
        else:
            _show(letter)

    def decide(verb: str, dead_letter_id: str, note: str | None, as_json: bool) -> None:
        from contextlib import nullcontext

        from ..kernel import DeadLetter as Letter
        from ..sync import device_engine

        with open_vault() as vault:
            # a retry runs the workflow again here: this vault's engine (it registers every
            # kind's retry), launched for it; not for a pulled change's, which runs none (a
            # launch resumes what a killed process left, a key rotation that would be undone here)
            engine = device_engine(vault) if verb == "retry" else None
            if engine is not None and vault.dead_letters.get(dead_letter_id).kind == "event":
                engine = None
            with engine if engine is not None else nullcontext():
                done = run_action(vault, f"dlq.{verb}", {"id": dead_letter_id, "note": note})
                letter = Letter(**done.model_dump(mode="json")["dead_letter"])
                if engine is not None and letter.retried_as:
                    engine.result(letter.retried_as)  # run to its end before this process does
        _print_decided(letter, verb, as_json, "its engine runs it")

    for verb, summary in (
        ("retry", "Hand a dead letter back to its engine (a workflow runs again from its first step)."),
        ("quarantine", "Set a dead letter aside: kept, not retried, out of the open ones."),
        ("discard", "Decide a dead letter is not to be done (it stays listed, as discarded)."),
    ):
        _decision(dlq, verb, summary, decide)


def _decision(
    group: click.Group, verb: str, summary: str, decide: Callable[[str, str, str | None, bool], None]
) -> None:
    """Add command ``verb`` (ID, --note, --json) to ``group``: it calls ``decide``."""

    @group.command(verb, help=summary)
    @click.argument("dead_letter_id")
    @_note_option
    @json_option
    def command(dead_letter_id: str, note: str | None, as_json: bool) -> None:
        decide(verb, dead_letter_id, note, as_json)


def register_hub(hub: click.Group) -> None:
    """Add ``hub dlq`` and ``hub admin-token`` to the hub group."""
    from ._hub_cmds import db_option, default_hub_db, open_hub_store

    @hub.group("dlq")
    def dlq() -> None:
        """Dead letters: what failed for good (workflow steps, events, automation runs)."""

    @dlq.command("list")
    @_status_option
    @_kind_option
    @_limit_option
    @db_option
    @json_option
    def dlq_list(status: str | None, kind: str | None, limit: int, db_url: str | None, as_json: bool) -> None:
        """List dead letters, the latest failure first."""
        with open_hub_store(db_url) as store:
            _print_list(store.dead_letters.list(status=status, kind=kind, limit=limit), as_json)

    @dlq.command("show")
    @click.argument("dead_letter_id")
    @db_option
    @json_option
    def dlq_show(dead_letter_id: str, db_url: str | None, as_json: bool) -> None:
        """Show a dead letter (ID or its first characters): its error, source and input."""
        with open_hub_store(db_url) as store:
            letter = store.dead_letters.get(dead_letter_id)
        if as_json:
            print_json(letter.to_dict())
        else:
            _show(letter)

    def decide(verb: str, dead_letter_id: str, note: str | None, db_url: str | None, as_json: bool) -> None:
        from ..hub import decide_dead_letter, hub_engine

        with open_hub_store(db_url) as store:
            engine = hub_engine(store, db_url or default_hub_db())  # what retries a workflow's
            try:
                letter = decide_dead_letter(store, verb, dead_letter_id, note)
            finally:
                engine.close()
        _print_decided(
            letter, verb, as_json, "the serving hub runs it; 'truthvault hub workflow show' follows it"
        )

    @dlq.command("retry")
    @click.argument("dead_letter_id")
    @_note_option
    @db_option
    @json_option
    def dlq_retry(dead_letter_id: str, note: str | None, db_url: str | None, as_json: bool) -> None:
        """Hand a dead letter back to its engine: a workflow runs again from its first step."""
        decide("retry", dead_letter_id, note, db_url, as_json)

    @dlq.command("quarantine")
    @click.argument("dead_letter_id")
    @_note_option
    @db_option
    @json_option
    def dlq_quarantine(dead_letter_id: str, note: str | None, db_url: str | None, as_json: bool) -> None:
        """Set a dead letter aside: kept, not retried, out of the open ones."""
        decide("quarantine", dead_letter_id, note, db_url, as_json)

    @dlq.command("discard")
    @click.argument("dead_letter_id")
    @_note_option
    @db_option
    @json_option
    def dlq_discard(dead_letter_id: str, note: str | None, db_url: str | None, as_json: bool) -> None:
        """Decide a dead letter is not to be done (it stays listed, as discarded)."""
        decide("discard", dead_letter_id, note, db_url, as_json)

    @hub.command("admin-token")
    @click.option("--name", default="admin", show_default=True, help="What the token is for.")
    @click.option("--revoke", "revoke", default=None, metavar="ID|NAME", help="Revoke a token instead.")
    @db_option
    @json_option
    def admin_token(name: str, revoke: str | None, db_url: str | None, as_json: bool) -> None:
        """Make a token for the hub's admin views (/diagz), shown once and stored hashed."""
        with open_hub_store(db_url) as store:
            if revoke is not None:
                gone = store.admin.revoke_token(revoke)
                if as_json:
                    print_json({"id": gone.id, "name": gone.name, "revoked": True})
                else:
                    out.print(f"admin token {gone.name!r} ({gone.id[:8]}) revoked")
                return
            made, secret = store.admin.create_token(name)
        if as_json:
            print_json({"id": made.id, "name": made.name, "token": secret})
            return
        out.print(f"admin token {made.name!r} ({made.id[:8]}); shown once, keep it safe:")
        out.print(secret, markup=False)
        out.print("use it as: curl -H 'Authorization: Bearer <token>' <hub>/diagz")
