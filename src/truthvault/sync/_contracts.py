"""The sync step of entity contracts: the versions the hub has that this vault lacks come in
(so a version added on one device reaches the others), and the hub learns what this device
writes under (so it checks a new version against it)."""

from __future__ import annotations

from typing import Any

from ..errors import Forbidden, InvalidInput, NotFound
from ..kernel import Contract, ContractBook, check_schema
from ..truth import TruthLevel, level_of_source
from ..vault import Vault
from ._transport import HubClient

__all__ = ["add_contract", "fetch_contracts", "report_use", "sync_contracts"]


def add_contract(
    vault: Vault,
    entity_type: str,
    schema: Any,
    *,
    major: bool = False,
    source: str = "user:cli",
    client: HubClient | None = None,
) -> Contract:
    """Add the next version of a type's contract; only a user source (level 1) adds one.

    It is checked here against what this vault knows (BreakingChange, listing what breaks,
    unless compatible or ``major``). A joined vault (``client``, or one ``connect`` opens)
    first fetches the hub's versions, then sends it to the hub, which checks it against every
    version a device of the tenant uses and numbers it; it is stored here as the hub took it.
    The other devices get it at their next sync.
    """
    if level_of_source(source) != TruthLevel.USER:
        raise Forbidden(f"only the user (level 1) adds a contract version: {source!r} is not a user source")
    if client is None and vault.replica.hub_url:
        from ._connect import connect

        with connect(vault) as opened:
            return add_contract(vault, entity_type, schema, major=major, source=source, client=opened)
    if client is not None:
        _fetch(vault, client)
    proposed = vault.contracts.propose(entity_type, schema, major=major)
    if client is None:
        vault.contracts.store([(None, proposed)])
        return proposed
    taken = _contract(client.add_contract(proposed.entity_type, schema, major=major, source=source))
    if taken is None:
        raise InvalidInput("the hub answered with a contract this device cannot use")
    vault.contracts.store([taken])
    return taken[1]


def _fetch(vault: Vault, client: HubClient) -> int | None:
    """Store the hub's versions this vault lacks; how many (None: the hub has no contracts).

    A version this device cannot use (a schema its code does not understand) is not stored;
    when it starts a newer major version than the device writes under, the device notes that
    it is behind (its kernel then only reads and captures) and, from then on, fetches every
    version again, so that once updated it takes that one in and is behind no more."""
    noted = vault.offline.behind()
    try:
        body = client.contracts(0 if noted else vault.contracts.marker)
    except NotFound:
        return None
    raw = body.get("contracts", [])
    added = vault.contracts.store(pair for one in raw if (pair := _contract(one)))
    book = vault.contracts.book()
    behind = [b for b in (*noted, *_unusable(raw)) if _major(book, b[0]) < b[2]]
    if sorted(set(behind)) != noted:
        vault.offline.note_behind(behind)
    return added


def _major(book: ContractBook, entity_type: str) -> int:
    current = book.current(entity_type)
    return 1 if current is None else current.major


def _unusable(raw: list[Any]) -> list[tuple[str, int, int]]:
    """(type, version, major) of each version the hub sent that this device cannot use."""
    found = []
    for one in raw:
        if _contract(one) is not None:
            continue
        try:
            found.append((str(one["entity_type"]), int(one["version"]), int(one["major"])))
        except (KeyError, TypeError, ValueError):
            continue
    return found


def fetch_contracts(vault: Vault, client: HubClient) -> int | None:
    """Fetch the hub's contract versions after this vault's marker: how many were new here
    (None: the hub has no contract endpoints). A sync does it before it pushes, so that what
    waits under a version a new major version broke is upcast or parked, never pushed."""
    return _fetch(vault, client)


def report_use(vault: Vault, client: HubClient) -> None:
    """Tell the hub what this device writes under now, its app version, its last sync and the
    changes it holds unsynced (queued and parked): what the hub's risk of it is made of."""
    from .. import __version__

    last = vault.offline.last_sync_at
    status = {
        "app_version": __version__,
        "last_sync_at": None if last is None else _iso(last),
        "pending": vault.replica.pending_count(),
        "parked": vault.offline.parked_count(),
    }
    client.report_contract_use(vault.contracts.held(), status)


def _iso(seconds: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, UTC).isoformat()


def sync_contracts(vault: Vault, client: HubClient, *, fetched: int | None = 0, fetch: bool = True) -> int:
    """Fetch the hub's contract versions after this vault's marker and tell the hub what this
    device writes under now; how many versions were new here. A hub without contract endpoints
    (an older one) is left alone. ``fetch=False``: the sync fetched them already (``fetched``).

    The report goes at every sync, after its push: it replaces what the hub noted of this
    device, including versions of queued items it noted from the push (now pushed), so that a
    version this device no longer writes under stops counting as in use.
    """
    added = _fetch(vault, client) if fetch else fetched
    if added is None:
        return 0
    report_use(vault, client)
    return added


def _contract(raw: Any) -> tuple[int, Contract] | None:
    """A version as the hub sent it, or None for one this device cannot use (kept out: every
    write of its type would be checked against it)."""
    try:
        schema = check_schema(raw["schema"])
        contract = Contract(str(raw["entity_type"]), int(raw["version"]), int(raw["major"]), schema)
        return int(raw["marker"]), contract
    except (InvalidInput, KeyError, TypeError, ValueError):
        return None
