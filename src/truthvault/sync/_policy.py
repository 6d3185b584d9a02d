"""The tenant's policy between a device and its hub: fetched at each sync when its version
changed (so every device decides with the same rules), and pushed when the user sets one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import NotFound
from ..kernel import InvalidPolicy, PolicyVersion, check_policy
from ..vault import Vault, check_setter, vault_policies
from ._transport import HubClient

if TYPE_CHECKING:
    import httpx

__all__ = ["fetch_policy", "push_policy", "set_tenant_policy", "sync_policy"]


def fetch_policy(client: HubClient, known: int | None = None) -> PolicyVersion | None:
    """The tenant's policy at the hub, or None when it is version ``known`` still."""
    params = {} if known is None else {"known": known}
    body = client._request("GET", "/v1/policy", params=params).json()
    if not body.get("changed", True):
        return None
    return PolicyVersion(int(body["version"]), body["text"], body.get("set_by", ""), body.get("set_at", ""))


def push_policy(client: HubClient, text: str, source: str) -> PolicyVersion:
    """Set the tenant's policy at the hub (a new version there); the version as stored."""
    body = client._request("PUT", "/v1/policy", json={"text": text, "source": source}).json()
    return PolicyVersion(int(body["version"]), text, body.get("set_by", source), body.get("set_at", ""))


def sync_policy(vault: Vault, client: HubClient, diverged: list[str] | None = None) -> PolicyVersion | None:
    """Take the hub's policy into the vault if its version changed; the version taken, or None.

    A hub without policy routes (older) is skipped, as is a client that is not a
    :class:`HubClient` (an in-process stand-in for one); a policy this device cannot read keeps
    the one it holds (and the next sync tries again), and says so in ``diverged`` ("policy").
    """
    if not isinstance(client, HubClient):
        return None
    policies = vault_policies(vault)
    try:
        found = fetch_policy(client, policies.current().version)
    except NotFound:
        return None
    if found is None:
        return None
    try:
        return found if policies.adopt(found) else None
    except InvalidPolicy:
        if diverged is not None:
            diverged.append("policy")  # this device decides with another version than the hub
        return None


def set_tenant_policy(
    vault: Vault, text: str, set_by: str, *, transport: httpx.BaseTransport | None = None
) -> PolicyVersion:
    """Set the tenant's policy: checked (InvalidPolicy naming the line, nothing changes), then,
    for a vault joined to a hub, stored there first (the hub numbers the version) and taken in
    here; else stored here as the next version. ``set_by`` must be a level-1 source.

    This is the plain function behind ``truthvault policy set`` (and the ``policy.set`` action).
    """
    policies = vault_policies(vault)
    check_setter(set_by)
    check_policy(text)
    if not vault.replica.hub_url:
        return policies.set(text, set_by)
    from ._connect import connect  # _connect imports the syncer, which imports this module

    with connect(vault, transport=transport) as client:
        stored = push_policy(client, text, set_by)
    policies.adopt(stored)
    return stored
