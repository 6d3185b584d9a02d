"""The broker's sync step: this device's requests and decisions go to the hub, the tenant's
requests and decisions come back, so that an approval asked on one device can be decided on
another and then redeemed where it was asked.

Order: the requests this device asked (with what became of them here) are posted; decisions
taken here on other devices' requests are sent one by one (the hub takes the first decision,
and a later one is overruled: the pull brings the hub's); then every change after this
device's broker cursor is taken in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..errors import ConflictState, Forbidden, NotFound
from ..kernel import BrokerRequest
from ..vault import Vault, VaultBrokerStore
from ._transport import HubClient

__all__ = ["BrokerRemote", "BrokerSync", "HttpBrokerRemote", "sync_approvals"]

#: requests a fetch asks for at most
PAGE = 500


@runtime_checkable
class BrokerRemote(Protocol):
    """What the sync step needs of a hub (the HTTP client's adapter, or a test's in-process one)."""

    def post_requests(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]: ...

    def fetch_requests(self, since: int, limit: int) -> dict[str, Any]: ...

    def decide_request(
        self,
        request_id: str,
        decision: str,
        source: str,
        reason: str | None,
        *,
        decided_at: float | None = None,
        seal: str | None = None,
    ) -> dict[str, Any]: ...


class HttpBrokerRemote:
    """The hub's broker routes through a :class:`HubClient`."""

    def __init__(self, client: HubClient) -> None:
        self.client = client

    def post_requests(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        body: list[dict[str, Any]] = self.client._request(
            "POST", "/v1/approvals", json={"requests": requests}
        ).json()["requests"]
        return body

    def fetch_requests(self, since: int, limit: int) -> dict[str, Any]:
        page: dict[str, Any] = self.client._request(
            "GET", "/v1/approvals", params={"since": since, "limit": limit}
        ).json()
        return page

    def decide_request(
        self,
        request_id: str,
        decision: str,
        source: str,
        reason: str | None,
        *,
        decided_at: float | None = None,
        seal: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"request_id": request_id, "decision": decision, "source": source}
        body["reason"] = reason
        if seal is not None:  # an older hub forbids fields it does not know: sent only when sealed
            body |= {"decided_at": decided_at, "seal": seal}
        answer: dict[str, Any] = self.client._request("POST", "/v1/approvals/decide", json=body).json()
        return answer


@dataclass(slots=True)
class BrokerSync:
    """What one broker sync step did."""

    #: this device's requests posted (new, or changed here)
    sent: int = 0
    #: decisions taken here on other devices' requests that the hub took
    decided: int = 0
    #: ... and those another device's decision had overruled
    overruled: int = 0
    #: requests that came in new or changed
    received: int = 0


def remote_for(client: object) -> BrokerRemote | None:
    """The broker side of a sync client, or None when it has none."""
    if isinstance(client, BrokerRemote):
        return client
    if isinstance(client, HubClient):
        return HttpBrokerRemote(client)
    return None


def sync_approvals(vault: Vault, client: object) -> BrokerSync | None:
    """Run the broker sync step of ``vault`` through ``client``; None when the hub (or the
    client) knows no broker, so that an older hub still syncs entities."""
    remote = remote_for(client)
    store = vault.broker.store
    if remote is None or not isinstance(store, VaultBrokerStore):
        return None
    stats = BrokerSync()
    me, tenant = vault.device_id, vault.tenant_id
    unsent = store.unsent()
    own = [r for r in unsent if r.device_id == me]
    try:
        if own:
            held = remote.post_requests([r.to_wire() for r in own])
            store.mark_sent(own)
            store.take_in(BrokerRequest.from_wire(r, tenant) for r in held)
            stats.sent = len(own)
        for request in (r for r in unsent if r.device_id != me):
            _send_decision(remote, request, stats, me)
            store.mark_sent([request])
        stats.received = _fetch(remote, store, tenant)
    except NotFound:
        if own or stats.decided:
            raise
        return None  # a hub from before the broker
    return stats


def _send_decision(remote: BrokerRemote, request: BrokerRequest, stats: BrokerSync, me: str) -> None:
    own = next((a for a in request.approvals if a.device == me), None)
    decided: tuple[str, str, str | None, float | None, str | None]
    if request.is_multi and request.status != "denied":
        if own is None or request.status not in ("pending", "approved"):
            return  # no approval of this device's to send
        # one device's approval of several: it goes with its own time and seal
        decided = ("approve", own.by, None, own.at, own.seal)
    elif request.status not in ("approved", "denied") or request.decided_by is None:
        return  # used or expired: only the asker's device tells the hub that
    else:
        decision = "approve" if request.status == "approved" else "deny"
        decided = (decision, request.decided_by, request.deny_reason, request.decided_at, request.seal)
    try:
        remote.decide_request(
            request.id, decided[0], decided[1], decided[2], decided_at=decided[3], seal=decided[4]
        )
        stats.decided += 1
    except (ConflictState, Forbidden, NotFound):
        stats.overruled += 1  # the hub's state comes back with the fetch


def _fetch(remote: BrokerRemote, store: VaultBrokerStore, tenant: str) -> int:
    since, changed = store.cursor(), 0
    while True:
        page = remote.fetch_requests(since, PAGE)
        changed += store.take_in(BrokerRequest.from_wire(r, tenant) for r in page["requests"])
        since = int(page["cursor"])
        store.set_cursor(since)
        if not page.get("has_more"):
            return changed
