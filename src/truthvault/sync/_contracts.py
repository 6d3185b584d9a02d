"""The sync step of entity contracts: the versions the hub has that this vault lacks come in
(so a version added on one device reaches the others), and the hub learns what this device
writes under (so it checks a new version against it)."""

from __future__ import annotations

from typing import Any

from ..errors import Forbidden, InvalidInput, NotFound
from ..kernel import Contract, check_schema
from ..truth import TruthLevel, level_of_source
from ..vault import Vault
from ._transport import HubClient

__all__ = ["add_contract", "sync_contracts"]


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
    """Store the hub's versions this vault lacks; how many (None: the hub has no contracts)."""
    try:
        body = client.contracts(vault.contracts.marker)
    except NotFound:
        return None
    return vault.contracts.store(pair for raw in body.get("contracts", []) if (pair := _contract(raw)))


def sync_contracts(vault: Vault, client: HubClient) -> int:
    """Fetch the hub's contract versions after this vault's marker and tell the hub what this
    device writes under now; how many versions were new here. A hub without contract endpoints
    (an older one) is left alone.

    The report goes at every sync, after its push: it replaces what the hub noted of this
    device, including versions of queued items it noted from the push (now pushed), so that a
    version this device no longer writes under stops counting as in use.
    """
    added = _fetch(vault, client)
    if added is None:
        return 0
    client.report_contract_use(vault.contracts.held())
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
