"""Pulled changes that did not open, as dead letters of kind ``event``.

A pulled payload sealed under a key this device lacks, or changed on its way, is skipped: the
rest of its page is applied and the cursor moves past it (pulling it again would not heal a bad
ciphertext). It is not dropped. The item (or the record), still sealed, is kept as a dead letter
with why it did not open, and ``truthvault dlq retry ID`` opens it again with the keys this
device holds then (after a sync brought the key, or ``truthvault keys recover``) and applies it.
A tampered one never opens: it stays, to be looked at and discarded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import msgspec

from ..errors import ConflictState, DecryptionFailed
from ..kernel import DeadLetter
from ..model import PullResponse, Record, SyncItem
from ._e2e import Unreadable, open_page

if TYPE_CHECKING:
    from ..vault import Vault

__all__ = ["keep_unreadable", "reopen_unreadable"]

KIND = "event"
#: open event letters that keep their sealed copy: past this many (a device pushing garbage by
#: the thousand), a letter keeps only what failed and why, and 'truthvault sync resync' pulls
#: the change again
MAX_SEALED = 1000


def _ref(f: Unreadable) -> str:
    """What names a letter: a record by its id, a version by its clock and writer too (two
    devices' concurrent edits have one number, and the hub's feed may bring both)."""
    if f.record_id:  # (a record's id is its version's: entity, clock, writer)
        return f"pull: record {f.record_id} v{f.version}"
    who = ""
    if f.wire is not None:
        with contextlib.suppress(msgspec.DecodeError):
            item = msgspec.json.decode(f.wire, type=SyncItem)
            who = f" at {item.last_modified_at} by {item.device_id}"
    return f"pull: {f.entity_type} {f.entity_id} v{f.version}{who}"


def keep_unreadable(vault: Vault, failed: Sequence[Unreadable]) -> None:
    """Keep each pulled item or record that did not open as a dead letter (the same one pulled
    again joins its letter)."""
    # counted, not listed: a list reads every letter's sealed copy (up to MAX_SEALED of a MiB each)
    room = MAX_SEALED - vault.dead_letters.counts(kind=KIND)["open"]
    for f in failed:
        if f.wire is None:
            continue  # a suggestion's base: the record itself was applied
        sealed = f.wire.decode() if room > 0 else None  # ciphertext: what a retry opens again
        room -= 1
        vault.dead_letters.add(
            KIND,
            _ref(f),
            f"sync.pull ({f.reason})",
            f"{f.reason}: {f.message}",
            {
                "entity_type": f.entity_type,
                "entity_id": f.entity_id,
                "version": f.version,
                "record_id": f.record_id,
                "sealed": sealed,
            },
            1,
        )


def reopen_unreadable(vault: Vault) -> Callable[[DeadLetter], str]:
    """What retries an ``event`` dead letter of ``vault``: open it with the keys held now and
    apply it as a pulled change is applied, checked alike (the cursor stays where it is, and a
    version the hub's later changes beat is left). DecryptionFailed
    while it still does not open; the letter then stays as it was."""

    def retry(letter: DeadLetter) -> str:
        kept = letter.input if isinstance(letter.input, dict) else {}
        sealed = kept.get("sealed")
        if not isinstance(sealed, str):
            raise ConflictState(
                f"dead letter {letter.id[:8]} keeps no copy of the change (more than {MAX_SEALED} "
                "were open when it failed)",
                hint="'truthvault sync resync' pulls every change again",
            )
        keyring = vault.replica.keyring()
        if keyring is None:
            raise DecryptionFailed(
                "this device holds no tenant key to open it with",
                reason="unknown_key",
                hint="sync (a device with the key shares it), or run 'truthvault keys recover'",
            )
        # (late: the cursor is not the page's to move, and what the hub made current since wins)
        if kept.get("record_id"):
            page = PullResponse([], [msgspec.json.decode(sealed, type=Record)], 0, False, 0)
        else:
            page = PullResponse([msgspec.json.decode(sealed, type=SyncItem)], [], 0, False, 0)
        opened, failed = open_page(page, keyring, vault.tenant_id)
        if failed:
            raise DecryptionFailed(
                f"it still does not open: {failed[0].reason} ({failed[0].message})",
                reason=failed[0].reason,
                hint="a key this device lacks arrives by sync or 'truthvault keys recover'; "
                "a tampered one never opens: 'truthvault dlq discard ID'",
            )
        applied = vault.replica.apply_pull(opened, late=True)
        return f"applied {applied.applied + applied.new_records} change(s) of {kept.get('entity_id')}"

    return retry
