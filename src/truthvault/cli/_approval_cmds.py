"""Approvals: ``approvals``, ``approve``, ``deny`` and ``pin set``, over the vault's input broker.

When the vault is joined to a hub, each of them runs the broker's sync step first or after,
so that a request asked on another device shows here and a decision taken here reaches the
hub at once (or, when the hub cannot be reached, at the next sync).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

import click

from ..errors import ConflictState, HubUnavailable, InvalidInput, NotFound
from ._common import err_console, interactive, json_option, open_vault, out, print_json, run_action, table
from ._output import Struck

if TYPE_CHECKING:
    from ..kernel import BrokerRequest, InputBroker
    from ..vault import Vault

__all__ = ["register"]

_SOURCE = "user:cli"


def _sync(vault: Vault, quiet: bool = False) -> bool | None:
    """The broker's sync step when the vault is joined: True done, False the hub is out of
    reach (said on stderr), None not joined."""
    if not vault.replica.hub_url:
        return None
    from ..sync import connect, sync_approvals

    try:
        with connect(vault, timeout=10.0) as client:
            sync_approvals(vault, client)
    except HubUnavailable as exc:
        if not quiet:
            err_console.print(f"note: {exc.message}", markup=False)
        return False
    return True


def _find(broker: InputBroker, given: str) -> BrokerRequest:
    """A request by its id or an unambiguous start of it (at least 6 characters)."""
    try:
        return broker.get(given)
    except NotFound:
        if len(given) < 6:
            raise
    found = [r for r in broker.requests(limit=100_000) if r.id.startswith(given)]
    if len(found) != 1:
        what = "no request" if not found else f"{len(found)} requests"
        raise NotFound(
            f"{what} with an id starting {given!r}", hint="'truthvault approvals --all' lists them"
        )
    return found[0]


def _when(at: float, now: float) -> str:
    left = at - now
    if left <= 0:
        return "expired"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if left >= size:
            return f"in {int(left // size)} {unit}"
    return f"in {int(left)} s"


#: below this many columns the table leaves out when a request expires, and names the kind of
#: approval (pin, confirm) in "why" instead of "what"
_NARROW = 100


def _progress(vault: Vault, request: BrokerRequest) -> str:
    """How far a request that needs several approvals has come: "1 of 2 approvals (laptop)"
    (only approvals whose seals check here count; a device the hub names no name for shows its
    id's start)."""
    counted = vault.broker.counted(request)
    names = ", ".join(
        "this device" if a.device == vault.device_id else (a.name or a.device[:8]) for a in counted
    )
    return f"{len(counted)} of {request.needed} approvals" + (f" ({names})" if names else "")


def _row(vault: Vault, request: BrokerRequest, now: float, every: bool) -> list[str | Struck]:
    narrow = out.width < _NARROW
    kind = f"({request.kind})" if request.kind != "approval" else ""
    if request.is_multi and request.status == "pending":
        kind = f"({_progress(vault, request)})"
    what = request.action or request.kind
    if kind and not narrow:
        what += f" {kind}"
    # which device asked, when the terminal has room for it
    who = request.source + (f" on {request.device_id[:8]}" if request.device_id and out.width >= 140 else "")
    why = (f"{kind} " if kind and narrow else "") + (request.reason or "-")
    if every and request.status == "denied" and request.deny_reason:
        why += f" / denied: {request.deny_reason}"
    # the whole id where there is room; else its first characters, which every command takes
    shown = request.id if out.width >= 120 else request.id[:8]
    row: list[str | Struck] = [shown, what, who, why, request.risk]
    if not narrow:
        row.append(_when(request.expires_at, now))
    return [*row, request.status] if every else row


def _headers(every: bool) -> list[str]:
    headers = ["id", "what", "who", "why", "risk"] + ([] if out.width < _NARROW else ["expires"])
    return [*headers, "status"] if every else headers


def _json(request: BrokerRequest, vault: Vault | None = None) -> dict[str, object]:
    body = request.to_wire()
    body["tenant_id"] = request.tenant_id
    if vault is not None and request.is_multi:  # how many of its approvals count here
        body["counted"] = len(vault.broker.counted(request))
    return body


def _decided(vault: Vault, request: BrokerRequest, verb: str, as_json: bool) -> None:
    """Send the decision to the hub now when joined, and say what became of it."""
    sent = _sync(vault, quiet=True)
    now = vault.broker.get(request.id)
    # one approval of several: the others came in meanwhile, and this one completed it
    completed = request.is_multi and (request.status, now.status) == ("pending", "approved")
    if as_json:
        print_json({**_json(now, vault), "hub": {None: "not joined", True: "sent", False: "next sync"}[sent]})
    elif now.status != request.status and not completed:
        raise ConflictState(
            f"another device decided {request.id} first: it is {now.status}"
            + (f" by {now.decided_by}" if now.decided_by else "")
        )
    else:
        out.print(f"{verb} {request.id} ({request.action or request.kind})")
        if now.is_multi and now.status in ("pending", "approved"):
            more = "; approve it on another of your devices too" if now.status == "pending" else ""
            out.print(f"{_progress(vault, now)}{more}")
        if sent is False:
            err_console.print(
                "note: the hub is out of reach; the decision goes to it at the next sync", markup=False
            )


def _read_pin(prompt: str, *, twice: bool = False) -> str:
    """A PIN from a hidden prompt at a terminal, else the first line of stdin (never argv)."""
    if interactive():
        text: str = click.prompt(prompt, hide_input=True, confirmation_prompt=twice)
        return text
    line = sys.stdin.readline().rstrip("\r\n")
    if twice and sys.stdin.readline().rstrip("\r\n") != line:
        raise InvalidInput("the two PINs differ")
    if not line:
        raise InvalidInput("no PIN given", hint="run it at a terminal, or give the PIN on stdin")
    return line


def register(cli: click.Group) -> None:
    """Add ``approvals``, ``approve``, ``deny`` and ``pin``."""

    @cli.command()
    @click.option("--all", "every", is_flag=True, help="Every request, decided, used and expired ones too.")
    @click.option("--offline", is_flag=True, help="Do not ask the hub for other devices' requests first.")
    @json_option
    def approvals(every: bool, offline: bool, as_json: bool) -> None:
        """Requests waiting for your decision: what, who asked, why, the risk, when it expires."""
        with open_vault() as vault:
            if not offline:
                _sync(vault)
            broker = vault.broker
            shown = broker.requests() if every else broker.pending()
            if as_json:
                print_json([_json(r, vault) for r in shown])
                return
            if not shown:
                out.print("nothing waits for your decision" if not every else "no requests")
                return
            now = time.time()
            headers = _headers(every)
            out.print(table(None, headers, [_row(vault, r, now, every) for r in shown], headers.index("why")))

    @cli.command()
    @click.argument("request_id", metavar="ID")
    @click.option(
        "--pin", "with_pin", is_flag=True, help="Give your PIN (asked without echo; needed by a PIN request)."
    )
    @json_option
    def approve(request_id: str, with_pin: bool, as_json: bool) -> None:
        """Approve a pending request (ID or its first characters) as yourself (user:cli)."""
        with open_vault() as vault:
            broker = vault.broker
            request = _find(broker, request_id)
            pin = None
            if request.kind == "pin" or with_pin:
                if request.kind == "pin" and not with_pin and not interactive():
                    raise InvalidInput(
                        f"request {request.id} needs your PIN", hint="pass --pin and give the PIN on stdin"
                    )
                pin = _read_pin("PIN")
            params = {"id": request.id, "decision": "approve", "pin": pin}
            run_action(vault, "approval.decide", params, _SOURCE)
            _decided(vault, broker.get(request.id), "approved", as_json)

    @cli.command()
    @click.argument("request_id", metavar="ID")
    @click.option("--reason", required=True, help="Why you deny it (shown to whoever asked).")
    @json_option
    def deny(request_id: str, reason: str, as_json: bool) -> None:
        """Deny a pending request (ID or its first characters), saying why."""
        with open_vault() as vault:
            request = _find(vault.broker, request_id)
            params = {"id": request.id, "decision": "deny", "reason": reason}
            run_action(vault, "approval.decide", params, _SOURCE)
            _decided(vault, vault.broker.get(request.id), "denied", as_json)

    _register_pin(cli)


def _register_pin(cli: click.Group) -> None:
    """Add ``pin set``."""

    @cli.group()
    def pin() -> None:
        """Your PIN: what a destructive action asked by voice (user:voice) needs to be approved."""

    @pin.command("set")
    def pin_set() -> None:
        """Set or change your PIN (asked twice without echo, never an argument); kept hashed (scrypt)."""
        with open_vault() as vault:
            broker = vault.broker
            current = _read_pin("current PIN") if broker.has_pin() else None
            new = _read_pin("new PIN", twice=True)
            run_action(vault, "pin.set", {"pin": new, "current": current}, _SOURCE)
            out.print(
                "PIN " + ("changed" if current else "set") + "; it stays on this device, hashed with scrypt"
            )
