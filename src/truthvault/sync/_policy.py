"""The tenant's policy between a device and its hub: fetched at each sync when its version
changed (so every device decides with the same rules), and pushed when the user sets one."""

from __future__ import annotations

from ..errors import NotFound
from ..kernel import InvalidPolicy, PolicyVersion
from ..vault import Vault, vault_policies
from ._transport import HubClient

__all__ = ["fetch_policy", "push_policy", "sync_policy"]


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


def sync_policy(vault: Vault, client: HubClient) -> PolicyVersion | None:
    """Take the hub's policy into the vault if its version changed; the version taken, or None.

    A hub without policy routes (older) is skipped, as is a client that is not a
    :class:`HubClient` (an in-process stand-in for one); a policy this device cannot read keeps
    the one it holds (and the next sync tries again).
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
        return None
