"""Webhook triggers on a device: registering a rule's hook at the hub with a new secret, and the
sync step that takes the deliveries waiting there for the rules this device runs.

The secret is made here (32 random bytes), shown once to the user with the URL to call, and
sent to the hub only as its SHA-256: it is never in the rule entity (which syncs), in the vault,
in a log, an event or an audit entry. Lost, it is replaced (:func:`register_webhook` again).

A sync takes each hook's deliveries, keeps them in the vault (:meth:`Automations.receive`, one
transaction), and only then acks them, so the hub deletes a delivery once it is safe here. A
delivery taken twice (an ack lost) is kept once and runs once: its run is named by its id.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..errors import InvalidInput, NotFound
from ..vault import Vault
from ._transport import HubClient

__all__ = [
    "HttpWebhookRemote",
    "WebhookRemote",
    "WebhookSecret",
    "register_webhook",
    "remove_webhook",
    "sync_webhooks",
]

#: a webhook secret starts with this, so that a leaked one is recognised for what it is
SECRET_PREFIX = "tvwh_"
#: deliveries one fetch asks for
PAGE = 100


@dataclass(frozen=True, slots=True)
class WebhookSecret:
    """What the user needs to call a webhook: its URL and its secret (shown once, kept nowhere)."""

    rule_id: str
    hook_id: str
    url: str
    secret: str

    def __repr__(self) -> str:  # never the secret in a traceback or a log line
        return f"WebhookSecret(rule_id={self.rule_id!r}, hook_id={self.hook_id!r}, url={self.url!r})"


@runtime_checkable
class WebhookRemote(Protocol):
    """What webhooks need of a hub (the HTTP client's adapter, or a test's in-process one)."""

    def register_webhook(self, hook_id: str, secret_sha256: str, rule_id: str) -> dict[str, Any]: ...

    def remove_webhook(self, hook_id: str) -> dict[str, Any]: ...

    def webhooks(self) -> list[dict[str, Any]]: ...

    def webhook_deliveries(self, hook_id: str, limit: int) -> list[dict[str, Any]]: ...

    def ack_deliveries(self, ids: list[str]) -> int: ...


class HttpWebhookRemote:
    """The hub's webhook routes through a :class:`HubClient`."""

    def __init__(self, client: HubClient) -> None:
        self.client = client

    def register_webhook(self, hook_id: str, secret_sha256: str, rule_id: str) -> dict[str, Any]:
        body = {"secret_sha256": secret_sha256, "rule_id": rule_id}
        answer: dict[str, Any] = self.client._request("PUT", f"/v1/webhooks/{hook_id}", json=body).json()
        return answer

    def remove_webhook(self, hook_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self.client._request("DELETE", f"/v1/webhooks/{hook_id}").json()
        return answer

    def webhooks(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.client._request("GET", "/v1/webhooks").json()["hooks"]
        return found

    def webhook_deliveries(self, hook_id: str, limit: int) -> list[dict[str, Any]]:
        page = self.client._request("GET", f"/v1/webhooks/{hook_id}/deliveries", params={"limit": limit})
        found: list[dict[str, Any]] = page.json()["deliveries"]
        return found

    def ack_deliveries(self, ids: list[str]) -> int:
        return int(
            self.client._request("POST", "/v1/webhooks/deliveries/ack", json={"ids": ids}).json()["acked"]
        )


def _remote(client: object) -> WebhookRemote | None:
    if isinstance(client, WebhookRemote):
        return client
    if isinstance(client, HubClient):
        return HttpWebhookRemote(client)
    return None


def _hook(vault: Vault, rule_id: str) -> str:
    entry = vault.automations.get(rule_id)
    hook = None if entry.rule is None else getattr(entry.rule.trigger, "hook", None)
    if not isinstance(hook, str):
        raise InvalidInput(f"automation {rule_id} is not a webhook rule")
    return hook


def register_webhook(vault: Vault, rule_id: str, client: HubClient | None = None) -> WebhookSecret:
    """Give webhook rule ``rule_id`` a new secret and register it at the vault's hub (a secret
    it had stops working now); the URL and secret to give the sender, shown once. ConflictState
    if the vault is not joined to a hub."""
    hook_id = _hook(vault, rule_id)
    if client is None:
        from ._connect import connect

        with connect(vault) as opened:
            return register_webhook(vault, rule_id, opened)
    remote = _remote(client)
    if remote is None:
        raise InvalidInput("this hub client cannot register webhooks")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    remote.register_webhook(hook_id, hashlib.sha256(secret.encode()).hexdigest(), rule_id)
    base = getattr(client, "url", None) or vault.replica.hub_url or ""
    return WebhookSecret(rule_id, hook_id, f"{base}/v1/hooks/{hook_id}", secret)


def remove_webhook(vault: Vault, rule_id: str, client: HubClient | None = None) -> int:
    """Remove rule ``rule_id``'s hook at the hub (its URL answers 401 from now on, and what it
    held is dropped); how many deliveries it still held."""
    hook_id = _hook(vault, rule_id)
    if client is None:
        from ._connect import connect

        with connect(vault) as opened:
            return remove_webhook(vault, rule_id, opened)
    remote = _remote(client)
    if remote is None:
        raise InvalidInput("this hub client cannot remove webhooks")
    return int(remote.remove_webhook(hook_id).get("dropped") or 0)


def sync_webhooks(vault: Vault, client: object) -> int | None:
    """Take the deliveries waiting at the hub for the webhook rules this device runs: kept in
    the vault for the runner, then acked. How many were new here; None when the client or the
    hub knows no webhooks (an older hub) or this device runs none."""
    remote = _remote(client)
    # a vault that never held a rule pays one query, not the rules' parser (pydantic, RE2)
    if remote is None or not vault.list("automation", include_deleted=True, limit=1):
        return None
    _unhook_deleted(vault, remote)
    rules = vault.automations.webhooks()
    if not rules:
        return None
    taken = 0
    for entry in rules:
        hook_id = _hook(vault, entry.id)
        while True:
            try:
                page = remote.webhook_deliveries(hook_id, PAGE)
            except NotFound:
                break  # not registered (yet): 'truthvault automation webhook ID' does it
            if not page:
                break
            taken += vault.automations.receive(entry.id, page)
            remote.ack_deliveries([str(d["id"]) for d in page])
            if len(page) < PAGE:
                break
    return taken


def _unhook_deleted(vault: Vault, remote: WebhookRemote) -> None:
    """Drop at the hub the hooks of rules deleted here (once each): a deleted rule's URL stops
    working, and what it would have held is not kept for no one."""
    deleted = vault.automations.deleted_unhooked()
    if not deleted:
        return
    try:
        hooks = remote.webhooks()
    except NotFound:
        return  # a hub from before webhooks
    gone = set(deleted)
    for hook in hooks:
        if hook.get("rule_id") in gone:
            with contextlib.suppress(NotFound):
                remote.remove_webhook(str(hook["hook_id"]))
    vault.automations.note_unhooked(deleted)
