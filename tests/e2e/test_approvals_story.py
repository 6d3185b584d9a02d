"""An approval survives a hub restart and is decided from a second device (real processes, each
backend): the laptop asks, the hub restarts, the phone decides with the CLI, the laptop syncs
and redeems."""

from __future__ import annotations

import pytest

from truthvault.kernel import ActionForbidden, Actor, ApprovalRequired, Risk
from truthvault.vault import Vault

from .conftest import Cli, HubProc


def _ask(laptop: Cli, kind: str, h: str) -> str:
    with Vault.open(laptop.home) as vault:
        actor = Actor("ai-local:llama3", vault.device_id, vault.tenant_id)
        return vault.broker.ask_approval(
            actor=actor, action="notes.delete", risk=Risk.DESTRUCTIVE, kind=kind,
            input_hash=h, targets=(), reason="an AI deletes a note you wrote",
        )  # fmt: skip


def _redeem(laptop: Cli, rid: str, h: str) -> str:
    with Vault.open(laptop.home) as vault:
        actor = Actor("ai-local:llama3", vault.device_id, vault.tenant_id)
        return vault.broker.redeem(rid, actor=actor, action="notes.delete", input_hash=h)


def test_an_approval_survives_a_hub_restart_and_is_decided_from_a_second_device(
    hub: HubProc, laptop: Cli, phone: Cli
) -> None:
    approve_me, deny_me, pin_me = (
        _ask(laptop, "approve", "h1"),
        _ask(laptop, "approve", "h2"),
        _ask(laptop, "pin", "h3"),
    )
    assert laptop.sync()["approvals"]["sent"] == 3

    hub.stop()
    hub.start()

    pending = {r["id"]: r for r in phone.json("approvals")}  # fetched from the restarted hub
    assert set(pending) == {approve_me, deny_me, pin_me}
    assert pending[approve_me]["source"] == "ai-local:llama3" and pending[approve_me]["risk"] == "destructive"
    table = phone.run("approvals").stdout
    assert approve_me in table and "an AI deletes a note you wrote" in table and "destructive" in table
    # at 80 columns every column stays readable: the id's first characters (all a command needs)
    phone.env["COLUMNS"] = "80"
    narrow = phone.run("approvals").stdout
    phone.env["COLUMNS"] = "200"
    assert all(len(line) <= 80 for line in narrow.splitlines())
    assert approve_me[:8] in narrow and "destructive" in narrow and "ai-local:llama3" in narrow

    assert f"approved {approve_me}" in phone.run("approve", approve_me[:8]).stdout
    phone.run("deny", deny_me, "--reason", "keep that one")
    # the PIN request: a PIN set on the phone (asked twice, never an argument), given without echo
    phone.run("pin", "set", stdin="2468\n2468\n")
    wrong = phone.run("approve", pin_me, "--pin", stdin="1111\n", check=False)
    assert wrong.returncode == 1 and wrong.stderr.startswith("error: wrong PIN")
    phone.run("approve", pin_me, "--pin", stdin="2468\n")
    assert phone.json("approvals") == []

    stats = laptop.sync()["approvals"]
    assert stats["received"] >= 3
    assert _redeem(laptop, approve_me, "h1") == "user:cli"
    with pytest.raises(ActionForbidden, match="was used"):
        _redeem(laptop, approve_me, "h1")
    with pytest.raises(ActionForbidden, match="denied: keep that one"):
        _redeem(laptop, deny_me, "h2")
    assert _redeem(laptop, pin_me, "h3") == "user:cli"

    # and the hub knows it was used, and by which device it was decided
    laptop.sync()
    seen = {r["id"]: r for r in phone.json("approvals", "--all")}
    assert seen[approve_me]["status"] == "used" and seen[deny_me]["status"] == "denied"
    assert (
        seen[approve_me]["decided_device"] == seen[pin_me]["decided_device"] != seen[approve_me]["device_id"]
    )


def test_a_decision_taken_while_the_hub_is_down_reaches_it_at_the_next_sync(
    hub: HubProc, laptop: Cli, phone: Cli
) -> None:
    rid = _ask(laptop, "approve", "h9")
    laptop.sync()
    assert [r["id"] for r in phone.json("approvals")] == [rid]
    hub.stop()
    offline = phone.run("approve", rid)
    assert f"approved {rid}" in offline.stdout and "at the next sync" in offline.stderr
    hub.start()
    assert phone.sync()["approvals"]["decided"] == 1
    laptop.sync()
    assert _redeem(laptop, rid, "h9") == "user:cli"


def test_an_approval_that_needs_two_devices_with_the_cli(hub: HubProc, laptop: Cli, phone: Cli) -> None:
    """The phone approves (1 of 2), approving there again is refused, the laptop (which asked)
    sees whose approval it has and gives the second; only then does it redeem."""
    rid = _ask(laptop, "two-devices", "h4")
    laptop.sync()
    assert "(0 of 2 approvals)" in phone.run("approvals").stdout  # fetched from the hub
    said = phone.run("approve", rid[:8]).stdout
    assert f"approved {rid}" in said and "1 of 2 approvals (this device); approve it on another" in said
    again = phone.run("approve", rid, check=False)
    assert again.returncode == 1
    assert again.stderr.startswith(
        f"error: request {rid} is already approved on this device; approve it on another"
    )
    assert "1 of 2 approvals (phone)" in laptop.run("approvals").stdout
    (shown,) = laptop.json("approvals")
    assert (shown["needed"], shown["counted"], shown["approvals"][0]["name"]) == (2, 1, "phone")
    with pytest.raises(ApprovalRequired, match="1 of 2"):
        _redeem2(laptop, rid, "h4")
    assert "2 of 2 approvals (phone, this device)" in laptop.run("approve", rid).stdout
    assert _redeem2(laptop, rid, "h4") == "user:cli"


def _redeem2(laptop: Cli, rid: str, h: str) -> str:
    with Vault.open(laptop.home) as vault:
        actor = Actor("ai-local:llama3", vault.device_id, vault.tenant_id)
        return vault.broker.redeem(rid, actor=actor, action="notes.delete", input_hash=h, kind="two-devices")
